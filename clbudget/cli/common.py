"""What every `clbudget` command shares: the one-line usage error, the parser class, the
`--json` / `--device` flags, printing (one JSON object with --json, else text) and tables."""
from __future__ import annotations

import argparse
import json

UNITS_HELP = ("Budgets are bytes retained across task boundaries. Accepted: plain bytes "
              "(123456), decimal units (8MB = 8*10^6 B), binary units (7.63MiB = 7.63*2^20 B, "
              "1.5GiB), exemplars of the stream's image shape (2000ex: 2000 x C*H*W uint8 "
              "bytes), model equivalents (1xresnet32: one resnet32 under the chosen "
              "convention). Conventions: 'strict' counts every parameter, buffer, head, old "
              "model, label and logit at its stored dtype; 'memo' counts feature-extractor "
              "parameters x 4 bytes plus exemplar pixels, as in MEMO (ICLR 2023), whose "
              "tables say MB but mean MiB.")


class UsageError(ValueError):
    """Bad command-line input: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the --help to read."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def add_json_flag(parser) -> None:
    """`--json`: the command prints one JSON object instead of text."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def add_device_flag(parser, when: str = "") -> None:
    """`--device auto|cpu|cuda[:N]`; `when` prefixes the help (e.g. "--run: ")."""
    parser.add_argument("--device", default="auto", help=f"{when}auto (default), cpu or cuda[:N]")


def emit(args, obj: dict, text: str) -> None:
    """One JSON object with --json, else the text (every command's output)."""
    print(json.dumps(obj) if args.json else text)


def table(rows: list[dict], columns: list[str]) -> str:
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
              for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def recording(store, args):
    """The store, set to record this command line in every row it adds (report provenance)."""
    store.command = getattr(args, "command_line", None)
    return store
