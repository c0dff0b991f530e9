"""The `clbudget` command line.  Each subcommand is a thin shell over a function.

One module per command group, each with an `add_parser(sub)` that adds its subcommands and
binds their handlers: methods.py (methods, recipes, check-method), budget.py (budget model,
budget allocate), run.py (run, sweep; their shared flags in run_options.py), report.py
(report, audit), atlas.py (atlas), data.py (data download, encode); common.py holds what they
all use.

Errors a user can act on (bad budget, unknown method, infeasible protocol)
print one line `clbudget: error: ...` and exit with status 2, no traceback.
"""
from __future__ import annotations

import argparse
import os
import sys

# threads: first, before anything imports torch: libgomp reads OMP_WAIT_POLICY once, on load
from clbudget.experiment.threads import quiet_openmp_waits
quiet_openmp_waits()
import clbudget.methods  # noqa: F401  (installs cost_model's loader of methods from outside)
from clbudget.cli import atlas, budget, data, methods, report, run
from clbudget.cli.common import UNITS_HELP, Parser
from clbudget.cli.run_options import stream_or_protocol

GROUPS = (methods, budget, run, report, atlas, data)   # the order of `clbudget --help`


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="clbudget", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Memory-budget-aware evaluation of class-incremental continual "
                    "learning.\n\n" + UNITS_HELP)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           parser_class=Parser)
    for group in GROUPS:
        group.add_parser(sub)
    return p


def main(argv=None) -> int:
    from clbudget.configfile import apply_config
    from clbudget.experiment.run import RunFailed
    from clbudget.experiment.store import StoreWriteError
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        apply_config(parser, argv)   # --config FILE: its values become the flags' defaults
    except ValueError as e:
        print(f"clbudget: error: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    import shlex
    args.command_line = "clbudget " + shlex.join(argv)
    if hasattr(args, "stream"):
        stream_or_protocol(parser, args, argv)
    if getattr(args, "image_shape_default", None) and not (args.image_shape or args.dataset):
        args.image_shape = args.image_shape_default
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("clbudget: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        sys.stdout = open(os.devnull, "w")
        return 0
    except (RunFailed, StoreWriteError) as e:  # a fault, recorded where it could be: one line
        print(f"clbudget: error: {e}", file=sys.stderr)
        return 1
    except (ValueError, KeyError) as e:  # user errors: one line, no traceback
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"clbudget: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
