#!/usr/bin/env bash
# The "Multi-domain streams" table of docs/streams.md: BMC, CLR, MIND, replay and DER++ on one
# multi-domain stream (CIFAR-10 + Fashion-MNIST + glyphs, 6 tasks, 12 classes), 3 seeds each,
# on the CPU at 1 torch thread, one run at a time; then the table (bench/multidomain_table.py).
# Usage: bench/multidomain_table.sh [STORE_DIR] (default multidomain-table/); CIFAR10=PATH
# overrides the CIFAR-10 folder; Fashion-MNIST: apt-get install -y dataset-fashion-mnist.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-multidomain-table}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=1
STREAM="cifar10/4:2+fashion-mnist/4:2+glyphs/4:2"
COMMON=(--stream "$STREAM" --data-root "cifar10=${CIFAR10:-../shared/data/cifar10}"
        --max-per-class 60 --max-test-per-class 40 --epochs 4 --batch-size 32 --budget 2.5MiB
        --device cpu --out "$OUT")
for seed in 0 1 2; do
  for m in replay derpp bmc clr mind; do
    case $m in   # the non-task phases, shortened to the task phases' 4 epochs (named in the table)
      bmc) extra=(--recipe-option consolidation.epochs=4) ;;
      clr) extra=(--recipe-option pretrain.epochs=4) ;;
      mind) extra=(--recipe-option teacher.epochs=4) ;;
      *) extra=() ;;
    esac
    if [ -n "$("$PY" -m bench.multidomain_table "$OUT" --has "$m" "$seed")" ]; then continue; fi
    "$PY" -m clbudget run --method "$m" --seed "$seed" "${COMMON[@]}" "${extra[@]}" --json \
      > /dev/null
  done
done
"$PY" -m bench.multidomain_table "$OUT"
