#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need, then runs them.
# System packages: the real FashionMNIST (Debian's dataset-fashion-mnist) and Chromium for the browser test.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -e /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || [ ! -x /usr/bin/chromium ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist chromium >/dev/null
fi
python3 -m pip install -q -r requirements-dev.txt
# pyproject.toml's [tool.pytest.ini_options] (named, so no stray pytest.ini can take its place); quick set only:
# bash tests/run.sh -m "not app and not slow"
exec python3 -m pytest -c pyproject.toml -q "$@"
