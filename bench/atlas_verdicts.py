"""Measured verdicts of the atlas' scaled-down claims: run every cell of every setting in
ATLAS/scaled/*.yaml into one results store, then print each claim's verdict at equal bytes.

    OMP_NUM_THREADS=1 python -m bench.atlas_verdicts --data-root CIFAR10_DIR --store STORE
    python -m bench.atlas_verdicts --data-root CIFAR10_DIR --store STORE --dry-run   # commands only

Each cell is one `clbudget run --out STORE` per seed (the runs the `clbudget sweep` commands
printed beside each verdict make, without the sweep's finetune reference, which a verdict
does not read), seed-major: every cell's first seed, then every cell's second, so a stopped
run leaves comparable cells.  Resumable: a cell and seed with a finished row in the store is
skipped, and an interrupted run resumes from its last finished task (checkpoints beside the
store).  The verdicts are then `clbudget atlas ATLAS --store STORE --out OUT` (docs/atlas.md
"Scaled-down measurements"); BENCHMARKS.md "Atlas: measured verdicts" holds one run's numbers.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path


def planned_runs(atlas: str, store: str, data_root: str, convention: str) -> list[dict]:
    """Every (setting, method, cell budget, seed), seed-major, with its command and whether
    the store already holds it finished."""
    from clbudget.analysis import rows as R
    from clbudget.analysis.atlas_claims import load_atlas
    from clbudget.analysis.atlas_scaled import load_settings, plan_setting, run_command, \
        setting_rows
    rows = []
    if (Path(store) / "results.sqlite").is_file():
        from clbudget.experiment.store import ResultStore
        rows = ResultStore(store).rows()
    claims = load_atlas(atlas)
    by_id = {c.id: c for c in claims}
    out = []
    for setting in load_settings(atlas, claims):
        cells = plan_setting(by_id, setting, convention)
        mine = setting_rows(setting, rows)
        for seed in setting.seeds:
            for method, budgets in cells.items():
                for budget in budgets:
                    argv = shlex.split(run_command(setting, method, budget, seed, store))
                    argv[argv.index("--data-root") + 1] = data_root
                    argv += ["--convention", convention]
                    done = any(r["method"] == method and r["budget_bytes"] == budget
                               and r.get("seed") == seed
                               and R.spec_of(r).get("dataset") == setting.dataset
                               and R.spec_of(r).get("init") == setting.init
                               and R.spec_of(r).get("inc") == setting.inc
                               and R.spec_of(r).get("convention", "strict") == convention
                               for r in mine)
                    out.append({"argv": [sys.executable, "-m", "clbudget"] + argv[1:],
                                "done": done, "label": f"{method} {budget} B seed {seed}"})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--atlas", default="atlas", help="folder of claims with scaled/ (default atlas)")
    p.add_argument("--data-root", required=True, help="the data set's folder (CIFAR10_DIR)")
    p.add_argument("--store", required=True, help="sweep folder the cells are stored in")
    p.add_argument("--out", default=None, help="atlas report folder (default STORE/atlas)")
    p.add_argument("--convention", choices=("strict", "memo"), default="strict")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = p.parse_args(argv)
    runs = planned_runs(args.atlas, args.store, args.data_root, args.convention)
    t_all = time.perf_counter()
    for i, run in enumerate(runs, 1):
        head = f"[{i}/{len(runs)}] {run['label']}"
        if run["done"]:
            print(f"{head}: in the store", flush=True)
            continue
        print(f"{head}: {shlex.join(run['argv'][2:])}", flush=True)
        if args.dry_run:
            continue
        t0 = time.perf_counter()
        rc = subprocess.call(run["argv"], stdout=subprocess.DEVNULL)
        print(f"{head}: exit {rc} after {time.perf_counter() - t0:.0f} s "
              f"({(time.perf_counter() - t_all) / 60:.1f} min in all)", flush=True)
        if rc:
            return rc
    if args.dry_run:
        return 0
    out = args.out or f"{args.store}/atlas"
    atlas = [sys.executable, "-m", "clbudget", "atlas", args.atlas, "--store", args.store,
             "--out", out, "--convention", args.convention]
    print(shlex.join(atlas[2:]), flush=True)
    return subprocess.call(atlas)


if __name__ == "__main__":
    sys.exit(main())
