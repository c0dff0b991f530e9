"""The "Multi-domain streams" table of docs/streams.md from a results store
(bench/multidomain_table.sh).

Per method: last accuracy, task-agnostic and task-aware, as mean +- the 95% Student-t CI half
width over seeds (analysis/stats.py `seed_stats`), the seeds, the strict ledger held and the
wall time.  Reads the store only; trains nothing.
"""
from __future__ import annotations

import argparse
import sys

from clbudget.analysis.stats import seed_stats
from clbudget.experiment.store import ResultStore


def fmt(values) -> str:
    s = seed_stats([100 * v for v in values])
    return f"{s.mean:.1f}" if s.n < 2 else f"{s.mean:.1f} +- {s.half_width:.1f}"


def table(rows) -> str:
    by_method: dict[str, list[dict]] = {}
    for row in rows:
        by_method.setdefault(row["method"], []).append(row)
    lines = ["| method | seeds | last TAG (%) | last TAW (%) | held (strict, MiB) | wall (s) |",
             "|---|---|---|---|---|---|"]
    for method in ("replay", "derpp", "bmc", "clr", "mind"):
        got = sorted(by_method.get(method, []), key=lambda r: r["seed"])
        if not got:
            continue
        acc = [r["accuracy"] for r in got]
        tag = ("n/a (task-aware only)" if acc[0]["setting"] == "task-aware"
               else fmt([a["last"] for a in acc]))
        held = max(r["ledger"]["total_bytes"] for r in got) / 2**20
        wall = sum(r["wall_s"] for r in got) / len(got)
        lines.append(f"| {method} | {','.join(str(r['seed']) for r in got)} | {tag} | "
                     f"{fmt([a['task_aware']['last'] for a in acc])} | {held:.2f} | {wall:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("store")
    p.add_argument("--has", nargs=2, metavar=("METHOD", "SEED"),
                   help="print 'yes' when a finished run of METHOD and SEED is stored")
    args = p.parse_args(argv)
    rows = ResultStore(args.store).rows("finished")
    if args.has:
        method, seed = args.has[0], int(args.has[1])
        if any(r["method"] == method and r["seed"] == seed for r in rows):
            print("yes")
        return 0
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
