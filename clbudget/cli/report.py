"""`clbudget report` and `clbudget audit`: what a results store says (analysis/report.py) and
whether a comparison holds at equal bytes (analysis/audit.py)."""
from __future__ import annotations

import sys

from clbudget.cli.common import (UsageError, add_device_flag, add_json_flag, emit,
                                 positive_int, recording)


def add_parser(sub) -> None:
    """`report` and `audit`."""
    rp = sub.add_parser("report", help="figures, HTML/Markdown report and CSV of a sweep folder",
                        description="Figures (accuracy vs budget, Pareto front, accuracy vs "
                                    "relative time, per-task accuracy, ledger breakdown; PNG + "
                                    "PDF), a self-contained HTML report, a Markdown summary and "
                                    "CSV tables of a sweep folder's results store.")
    rp.add_argument("dir", metavar="DIR", help="sweep folder holding results.sqlite")
    rp.add_argument("--out", help="where to write (default DIR/report)")
    rp.add_argument("--figures", help="also copy the Pareto PNG into this folder (e.g. figures/)")
    rp.add_argument("--forgetting", choices=("chaudhry", "clipped"), default="chaudhry",
                    help="forgetting the tables show (table.csv has both): chaudhry (default), "
                         "max over the rows before the last (Chaudhry et al. 2018), can be "
                         "negative; clipped, max over all rows, never below 0, as PyCIL and "
                         "Mammoth report it")
    add_json_flag(rp)
    rp.set_defaults(func=cmd_report)

    au = sub.add_parser("audit", help="fairness audit of a claim file or a results store",
                        description="Memory of each compared method under both conventions, "
                                    "whether budgets were aligned, and the comparison at aligned "
                                    "budgets with a 95% CI (paired t-test on matching seeds, "
                                    "else Welch). Claim schema: clbudget/analysis/audit.py, "
                                    "example: examples/claims/der_vs_icarl.yaml.")
    au.add_argument("claim", nargs="?", metavar="CLAIM", help="claim file (.yaml, .yml, .json)")
    au.add_argument("--store", help="results store (sweep folder or SQLite file) to read runs "
                                    "from; alone: audit every pair of methods in it")
    au.add_argument("--run", action="store_true", help="run the missing aligned cells into "
                                                        "--store first (trains!)")
    au.add_argument("--budget", help="aligned budget for the claim (default: per pair, the "
                                     "larger memory), e.g. 18.5MiB")
    au.add_argument("--metric", choices=("last", "average_incremental"),
                    help="store audit: accuracy compared (default last)")
    au.add_argument("--tolerance", type=float, default=0.01,
                    help="budgets / ledger totals within this fraction count as equal (0.01)")
    au.add_argument("--epochs", type=positive_int, help="--run: epochs of the runs")
    add_device_flag(au, "--run: ")
    au.add_argument("--data-root", help="--run: folder of the data set")
    add_json_flag(au)
    au.set_defaults(func=cmd_audit)


def existing_store(path):
    """The results store at PATH (a sweep folder or an SQLite file); never creates one."""
    from pathlib import Path
    from clbudget.experiment.store import ResultStore
    p = Path(path)
    found = (p / "results.sqlite").is_file() if p.is_dir() else p.is_file()
    if not found:
        raise UsageError(f"no results store at {path} (expected {p / 'results.sqlite'} or an "
                         f"SQLite file); run `clbudget sweep ... --out {path}` first")
    return ResultStore(p)


def cmd_report(args) -> None:
    emit(args, *make_report(args.dir, args.out, args.figures, forgetting=args.forgetting))


def make_report(store_dir, out=None, figures=None, forgetting="chaudhry") -> tuple[dict, str]:
    """Write the report of a store; (JSON object, text summary)."""
    from pathlib import Path
    from clbudget.analysis.report import json_safe, write_report
    store = existing_store(store_dir)
    rows = store.rows()
    if not rows:
        raise UsageError(f"{store.path} holds no runs; run `clbudget sweep ... --out {store_dir}`")
    out = Path(out) if out else Path(store_dir) / "report"
    result = write_report(rows, out, figures_dir=figures, forgetting=forgetting)
    report, files = result["report"], result["files"]
    obj = {"out": str(out), "files": files, "n_finished": report["n_finished"],
           "n_failed": report["n_failed"], "settings": report["settings"],
           "auc": [{"setting": a["setting_label"], "method": a["label"], "unit": a["unit"],
                    "auc_a": a["auc_a"], "auc_l": a["auc_l"], "unit_pct": a["unit_pct"],
                    "auc_a_pct": a["auc_a_pct"], "auc_l_pct": a["auc_l_pct"],
                    "budgets_bytes": a["budgets_bytes"]}
                   for a in report["auc"]],
           "forgetting": report["forgetting"],
           "failed": report["failed"], "recipe_warnings": report["recipe_warnings"]}
    for line in report["recipe_warnings"]:
        print(f"warning: {line}", file=sys.stderr)
    text = (f"report of {report['n_finished']} finished and {report['n_failed']} failed runs "
            f"({', '.join(report['settings']) or 'no setting'})\n"
            f"  html       {files['html']}\n  markdown   {files['markdown']}\n"
            f"  table      {files['csv']} (AUC: {files['auc_csv']})\n"
            f"  figures    {len(files['figures'])} x PNG + PDF in {out / 'figures'}")
    for path in files["copied"]:
        text += f"\n  copied     {path}"
    for f in report["failed"]:
        text += f"\n  failed: {f['method']} budget {f['budget']} seed {f['seed']}: {f['reason']}"
    return json_safe(obj), text


def cmd_audit(args) -> None:
    from clbudget.analysis.audit import claim_budget_bytes, load_claim, render_audit, run_audit
    from clbudget.analysis.report import json_safe
    from clbudget.experiment.store import ResultStore
    if not args.claim and not args.store:
        raise UsageError("give a claim file (YAML or JSON) and/or --store DIR, e.g. "
                         "clbudget audit examples/claims/der_vs_icarl.yaml --store DIR")
    claim = load_claim(args.claim) if args.claim else None
    if claim is None and args.budget:
        raise UsageError("--budget sets a claim's aligned budget; give a claim file")
    if claim is not None and args.metric:
        raise UsageError("with a claim file, its 'metric' key says what the accuracies are; "
                         "drop --metric")
    if args.run and not args.store:
        raise UsageError("--run needs --store DIR: the results store to write the runs to")
    store = None
    if args.store:
        store = recording(ResultStore(args.store), args) if args.run else existing_store(args.store)
    result = run_audit(store, claim, run=args.run,
                       budget_bytes=claim_budget_bytes(claim, args.budget) if args.budget else None,
                       metric=args.metric or "last", tolerance=args.tolerance,
                       device=args.device, data_root=args.data_root, epochs=args.epochs,
                       progress=not args.json and sys.stderr.isatty())
    for pair in result.get("pairs", ()):        # unequal training beside equal bytes
        for f in pair.get("flags", ()):
            if f.get("kind") == "recipe":
                print(f"warning: {pair.get('label_a')} vs {pair.get('label_b')}: "
                      f"{f['message']}", file=sys.stderr)
    emit(args, json_safe(result), render_audit(result))
