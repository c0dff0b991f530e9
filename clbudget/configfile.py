"""`--config FILE.yaml|json`: a file of defaults for a subcommand's flags.

Keys are the flags' names with underscores (budget, method, epochs, data_root, glyphs,
option, ...); values as on the command line, or YAML/JSON lists (methods: [replay, der] ->
"replay,der") and mappings for the repeatable key=value flags (option: {lr: 0.01}).  Flags
given on the command line override the file; for option/glyphs, the file's pairs come first
and a later pair with the same key wins.  Unknown keys are refused with the nearest valid one.
Read with yaml.safe_load / json.load only: a file is data, never code.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

SUFFIXES = (".yaml", ".yml", ".json")


def load_config(path) -> dict:
    """The mapping in a YAML or JSON file (safe loaders only); ValueError, one line, if not."""
    p = Path(path)
    if p.suffix.lower() not in SUFFIXES:
        raise ValueError(f"config file {path}: expected a .yaml, .yml or .json file")
    try:
        text = p.read_text()
    except OSError as e:
        raise ValueError(f"config file {path} cannot be read: {e.strerror or e}") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml
            data = yaml.safe_load(text)
    except Exception as e:  # noqa: BLE001 - yaml/json errors: report the first line
        first = (str(e).strip().splitlines() or [""])[0]
        raise ValueError(f"config file {path} is not valid "
                         f"{'JSON' if p.suffix.lower() == '.json' else 'YAML'}: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path}: expected a mapping of flag names to values, "
                         f"got a {type(data).__name__}")
    return data


def config_argument(argv: list[str]) -> str | None:
    """The value of --config in argv (--config X or --config=X), or None."""
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.partition("=")[2]
    return None


def apply_config(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """If argv's subcommand is given --config FILE, make the file's values its defaults."""
    sub = _subcommand_parser(parser, argv)
    path = config_argument(argv)
    if sub is None or path is None:
        return
    actions = {a.dest: a for a in sub._actions
               if a.option_strings and a.dest not in ("help", "config")}
    defaults = {}
    for key, value in load_config(path).items():
        key = str(key)
        if key not in actions:
            from clbudget.streams.catalog import nearest
            raise ValueError(f"config file {path}: unknown key {key!r} (nearest: "
                             f"{nearest(key.replace('-', '_'), actions)}); valid keys: "
                             f"{', '.join(sorted(actions))}")
        defaults[key] = _convert(path, key, value, actions[key])
        actions[key].required = False
    sub.set_defaults(**defaults)


def _subcommand_parser(parser, argv):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for arg in argv:
                if arg in action.choices:
                    return action.choices[arg]
                if not arg.startswith("-"):
                    return None
    return None


def _convert(path, key: str, value, action: argparse.Action):
    """A file's value as argparse would have parsed it from the command line."""
    where = f"config file {path}: {key}"
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(action, argparse._AppendAction):
        if isinstance(value, dict):
            return [f"{k}={json.dumps(v)}" for k, v in value.items()]
        items = value if isinstance(value, list) else [value]
        return [str(v) for v in items]
    if isinstance(value, (dict, type(None))):
        raise ValueError(f"{where}: expected a value, got {value!r}")
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    elif isinstance(value, bool):
        raise ValueError(f"{where}: expected a value, got {value!r}")
    text = str(value)
    if action.type is not None:
        try:
            value = action.type(text)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as e:
            detail = str(e) if isinstance(e, argparse.ArgumentTypeError) else \
                f"invalid {getattr(action.type, '__name__', 'value')} value: {text!r}"
            raise ValueError(f"{where}: {detail}") from None
    else:
        value = text
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"{where}: {value!r} is not one of {', '.join(map(str, action.choices))}")
    return value
