# Sourced by scripts/setup.sh. The example app's Python stack, from Debian only (no pip): the
# app's runtime (flask, numpy, pil, waitress), scikit-learn for train.py (its digits data set
# ships inside the package), and pytest for scripts/test.d/pytest.sh.
need_packages python3 python3-flask python3-numpy python3-pil python3-waitress python3-sklearn \
  python3-pytest
