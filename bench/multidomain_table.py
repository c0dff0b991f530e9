"""The "Multi-domain streams" table of docs/streams.md from a results store
(bench/multidomain_table.sh).

Per method: last accuracy, task-agnostic and task-aware, as mean +- the 95% Student-t CI half
width over seeds (analysis/stats.py `seed_stats`), the seeds, the strict ledger held and the
wall time.  `--vs OTHER_STORE`: for each method in both stores, the paired t-test over their
common seeds of this store's last accuracies minus the other's (analysis/stats.py
`paired_test`), e.g. BMC's default against a store of `--option variant=paper-sgd` runs.
Reads the stores only; trains nothing.
"""
from __future__ import annotations

import argparse
import sys

from clbudget.analysis.stats import paired_test, seed_stats
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


def versus(rows, other) -> str:
    """One line per method in both row sets: paired differences (rows - other) of last TAG
    and TAW in percentage points over their common seeds."""
    lines = []
    for method in ("replay", "derpp", "bmc", "clr", "mind"):
        mine = {r["seed"]: r["accuracy"] for r in rows if r["method"] == method}
        theirs = {r["seed"]: r["accuracy"] for r in other if r["method"] == method}
        seeds = sorted(set(mine) & set(theirs))
        if not seeds:
            continue
        parts = []
        for name, get in (("TAG", lambda a: a["last"]), ("TAW", lambda a: a["task_aware"]["last"])):
            if mine[seeds[0]].get("setting") == "task-aware" and name == "TAG":
                continue
            c = paired_test([100 * get(mine[s]) for s in seeds],
                            [100 * get(theirs[s]) for s in seeds])
            parts.append(f"{name} {c.diff:+.1f} pp, 95% CI [{c.ci_low:.1f}, {c.ci_high:.1f}], "
                         f"p = {c.p_value:.3f}")
        lines.append(f"{method} (seeds {','.join(map(str, seeds))}), this store minus the "
                     f"other: " + "; ".join(parts))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("store")
    p.add_argument("--has", nargs=2, metavar=("METHOD", "SEED"),
                   help="print 'yes' when a finished run of METHOD and SEED is stored")
    p.add_argument("--vs", metavar="OTHER_STORE",
                   help="also print paired differences against the runs of another store")
    args = p.parse_args(argv)
    rows = ResultStore(args.store).rows("finished")
    if args.has:
        method, seed = args.has[0], int(args.has[1])
        if any(r["method"] == method and r["seed"] == seed for r in rows):
            print("yes")
        return 0
    print(table(rows))
    if args.vs:
        print(versus(rows, ResultStore(args.vs).rows("finished")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
