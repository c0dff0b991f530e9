"""`clbudget atlas DIR`: audit a folder of published claims at equal bytes
(analysis/atlas.py; the claim schema: docs/atlas.md)."""
from __future__ import annotations

import argparse
from pathlib import Path

from clbudget.cli.common import add_json_flag, emit


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction such as 0.1, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text}")
    return value


def add_parser(sub) -> None:
    """`atlas`."""
    a = sub.add_parser(
        "atlas", help="audit a folder of published claims at equal bytes",
        description="Read every claim file (*.yaml) of DIR (schema: docs/atlas.md), price each "
                    "method's retained bytes under the strict and memo conventions, and write "
                    "atlas.html, atlas.md, atlas.csv and atlas_gain_vs_ratio.png into --out: "
                    "per claim the memory ratio of winner to runner-up, whether they were "
                    "compared at equal memory, what the cheaper one could hold at the costlier "
                    "one's bytes, the store's measured cells and the sweep command that "
                    "measures them (runnable claims), and the measured verdict of claims a "
                    "scaled-down setting in DIR/scaled/ re-runs small. No training.")
    a.add_argument("dir", metavar="DIR", help="folder of claim files (e.g. atlas/)")
    a.add_argument("--out", default="atlas_report",
                   help="folder to write the atlas into (default atlas_report)")
    a.add_argument("--store", help="results store (sweep folder or SQLite file) to look the "
                                   "runnable claims' aligned cells up in")
    a.add_argument("--convention", choices=("strict", "memo"), default="strict",
                   help="bytes the ratio and the headline use (default strict; both reported)")
    a.add_argument("--tolerance", type=_tolerance, default=0.1,
                   help="equal memory: ratio within 1 +- this fraction (default 0.1)")
    add_json_flag(a)
    a.set_defaults(func=cmd_atlas)


def cmd_atlas(args) -> None:
    from clbudget.analysis.atlas import run_atlas
    from clbudget.analysis.atlas_claims import load_atlas
    from clbudget.analysis.atlas_render import scaled_lines, write_atlas
    from clbudget.analysis.report import json_safe
    store = None
    if args.store:
        p = Path(args.store)
        if not ((p / "results.sqlite").is_file() if p.is_dir() else p.is_file()):
            raise ValueError(f"no results store at {args.store} (expected "
                             f"{p / 'results.sqlite'} or an SQLite file)")
        from clbudget.analysis.atlas_scaled import load_settings
        # a bad claim or setting file is refused before the store is opened
        load_settings(args.dir, load_atlas(args.dir))
        from clbudget.experiment.store import ResultStore
        store = ResultStore(p)
    result = run_atlas(args.dir, convention=args.convention, tolerance=args.tolerance,
                       store=store)
    files = write_atlas(result, args.out)
    text = "\n".join([result["headline"]] + [f"  {k:<9} {v}" for k, v in files.items()]
                     + scaled_lines(result))
    emit(args, json_safe({**result, "files": files}), text)
