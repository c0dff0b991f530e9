"""`clbudget data download` and `clbudget check-method`: the commands a researcher runs to get
data and to check their own method (README "Data" and "Your own method")."""
from __future__ import annotations

import json
import sys


def emit(args, obj: dict, text: str) -> None:
    """One JSON object with --json, else the text (every command's output; cli.py uses it
    too: it lives here, below cli.py, so the two modules import one way)."""
    print(json.dumps(obj) if args.json else text)


def add_commands(sub) -> None:
    """Register the subcommands on the main parser's subparsers."""
    from clbudget.streams.download import ARCHIVES

    d = sub.add_parser("data", help="download a data set (CIFAR-10/100, Tiny-ImageNet)")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND",
                            parser_class=sub._parser_class)
    dd = dsub.add_parser("download", help="fetch, verify (MD5) and extract an archive",
                         description="Download a data set's canonical archive into DIR "
                                     "(resumable), verify its published MD5, extract it "
                                     "safely, and print the --data-root to pass to run/sweep.")
    dd.add_argument("name", help=f"one of {', '.join(ARCHIVES)}")
    dd.add_argument("--root", required=True, metavar="DIR", help="where to put the data")
    dd.add_argument("--base-url", help="fetch the archive from this folder URL instead of the "
                                       "canonical one (a mirror); also $CLBUDGET_DOWNLOAD_URL")
    dd.add_argument("--timeout", type=float, default=60.0, metavar="S",
                    help="seconds to wait for the server (default 60)")
    dd.add_argument("--json", action="store_true", help="print one JSON object")
    dd.set_defaults(func=cmd_data_download)

    c = sub.add_parser("check-method", help="run the registry-wide conformance checks on a "
                                            "method (yours: --method pkg.module:Class)",
                       description="Train METHOD on a tiny glyphs stream and check: finite "
                                   "losses; ledger == bytes held after every task; within "
                                   "budget; same seed, same result; resumed == uninterrupted. "
                                   "Exit 1 if a check fails.")
    c.add_argument("name", metavar="METHOD", help="a registered name or pkg.module:Class")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=cmd_check_method)


def cmd_data_download(args) -> None:
    from clbudget.streams.download import archive_of, download
    archive = archive_of(args.name)
    root = download(args.name, args.root, base_url=args.base_url, timeout_s=args.timeout,
                    progress=not args.json and sys.stderr.isatty())
    emit(args, {"dataset": archive.dataset, "data_root": str(root), "md5": archive.md5},
         f"{archive.dataset}: {archive.filename} verified (MD5 {archive.md5}), extracted to "
         f"{root}\n  use: --dataset {archive.dataset} --data-root {root}")


def cmd_check_method(args) -> None:
    from clbudget.conformance import check_method, render_checks
    report = check_method(args.name)
    emit(args, report, render_checks(report))
    if not report["passed"]:
        raise SystemExit(1)
