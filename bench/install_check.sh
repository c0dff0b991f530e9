#!/usr/bin/env bash
# Does `pip install -e .` keep a torch the user already has?  A scratch venv gets
# torch==2.13.0 first (this machine's local CPU build), then clbudget; the torch must still be
# the same build afterwards (pyproject declares torch>=2.4, not a pin).  Not a test: it builds
# a venv, about a minute or two.  Usage: bench/install_check.sh [SCRATCH_DIR]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
scratch="${1:-$(mktemp -d)}"
python3 -m venv "$scratch/venv"
py="$scratch/venv/bin/python"
"$py" -m pip install -q torch==2.13.0
before="$("$py" -c 'import torch; print(torch.__version__, torch.__file__)')"
echo "before: torch $before"
"$py" -m pip install -q -e "$repo"
after="$("$py" -c 'import torch; print(torch.__version__, torch.__file__)')"
echo "after:  torch $after"
"$py" -c 'import clbudget, clbudget.cli; print("clbudget imports from", clbudget.__file__)'
if [ "$before" != "$after" ]; then
    echo "FAIL: pip install -e . replaced the torch of the environment"; exit 1
fi
case "$after" in 2.13.0*) ;; *) echo "FAIL: torch is not 2.13.0 any more"; exit 1;; esac
echo "OK: torch kept ($after)"
