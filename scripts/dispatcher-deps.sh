#!/usr/bin/env bash
# Installs the model-upload dispatcher's own npm packages (it is its own npm package, what gets
# deployed to Azure Functions). The root type-check, and so every ncc bundle, reads its sources,
# which import @azure/functions and the Octokit packages. npm ci only when node_modules is
# missing or older than the lock. Run by scripts/setup.sh and scripts/bundle.mjs.
set -euo pipefail
dispatcher="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/examples/model-upload-dispatcher"
if [ ! -d "$dispatcher/node_modules" ] ||
  [ "$dispatcher/package-lock.json" -nt "$dispatcher/node_modules/.package-lock.json" ]; then
  printf '\n== %s\n' "npm ci in examples/model-upload-dispatcher" >&2
  (cd "$dispatcher" && npm ci --no-audit --no-fund >&2)
fi
