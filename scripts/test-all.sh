#!/usr/bin/env bash
# Everything CI checks, from a fresh Debian machine: set-up, lint, type-check, every test
# (unit and integration, against the real components and the test doubles), and that the
# committed dist/ bundles match src/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/setup.sh

step() { printf '\n== %s\n' "$*"; }
step "lint"
npm run -s lint
step "type-check"
npm run -s build
step "tests"
bash scripts/with-env.sh npx jest --ci
for extra in "$root"/scripts/test.d/*.sh; do
  [ -e "$extra" ] || continue
  step "$(basename "$extra" .sh)"
  bash "$extra"
done
step "check-dist"
npm run -s check-dist
