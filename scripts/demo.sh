#!/usr/bin/env bash
# `npm run demo`: sets up what is missing, then rehearses the pipeline locally (scripts/demo.ts).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
exec bash "$root/scripts/with-env.sh" tsx scripts/demo.ts
