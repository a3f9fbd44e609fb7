#!/usr/bin/env bash
# The example app's tests (examples/image-classifier/tests), with Debian's python3. Trains the
# model into a temporary directory first (train.py fails if the model classifies held-out
# digits badly), then runs pytest against it; exits non-zero when either fails.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
app="$root/examples/image-classifier"
python=/usr/bin/python3

model_dir="$(mktemp -d)"
trap 'rm -rf "$model_dir"' EXIT

cd "$app"
echo "training the example model into $model_dir"
"$python" train.py --output "$model_dir"
# -p no:cacheprovider: leave no .pytest_cache behind in the source tree.
TEST_MODEL_DIR="$model_dir" PYTHONDONTWRITEBYTECODE=1 "$python" -m pytest -p no:cacheprovider -q tests
