#!/usr/bin/env bash
# clbudget's one set-up command: the virtual environment, and every data file the tests need
# that can come from a package registry.  Run from anywhere; it works in this folder.
#
#   ./setup.sh            # .venv with torch==2.13.0 and clbudget[test]; Debian's Fashion-MNIST
#
# Says what it did.  Safe to run again: what is there already is kept.
set -euo pipefail
cd "$(dirname "$0")"

# Fashion-MNIST's IDX files, where clbudget looks by default (streams/multidomain.py,
# DEFAULT_ROOTS); tests/test_multidomain.py reads them and fails without them
FASHION=/usr/share/datasets/fashion-mnist
if [ -f "$FASHION/t10k-images-idx3-ubyte.gz" ]; then
  echo "setup: Fashion-MNIST already in $FASHION"
else
  if [ "$(id -u)" -eq 0 ]; then SUDO=""
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"
  else
    echo "setup: Fashion-MNIST is missing from $FASHION, and installing Debian's" \
         "dataset-fashion-mnist needs root; run: sudo apt-get install -y dataset-fashion-mnist" >&2
    exit 1
  fi
  echo "setup: installing Debian's dataset-fashion-mnist (real Fashion-MNIST, 30 MB) into $FASHION"
  # a fresh machine may have no package lists yet: update only when the first try fails
  $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null \
    || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null; }
  echo "setup: Fashion-MNIST installed"
fi

# torch==2.13.0 is named because pip finds a CPU build of it locally; an unnamed torch pulls a
# multi-GB CUDA build.  clbudget itself accepts torch>=2.4 (pyproject.toml).
echo "setup: virtual environment .venv with torch==2.13.0 and clbudget[test] (editable)"
python3 -m venv .venv
.venv/bin/pip install -q torch==2.13.0 -e ".[test]"
echo "setup: done; test with: .venv/bin/python -m pytest"
