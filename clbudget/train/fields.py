"""Type checks of user-given values for a frozen dataclass's fields, before anything runs.

`check_fields(MyConfig, {"T": "abc"}, "icarl option")` raises
`ValueError("icarl option T: expected float, got 'abc'")`: one line naming the field, the
type its annotation asks for and the bad value.  It serves every dataclass whose fields a user
can set: method Configs (`--option`, `--config` files, `RunSpec.method_options`), their nested
phase configs (`--option first={"epochs": 5}`: a mapping is checked field by field against the
nested dataclass, `first.epochs` in the message), training recipes, glyphs options.

Accepted, per annotation: bool -> only true/false (not 0/1); int -> an integer (not a bool, not
5.0); float -> an integer or a float (ints become floats); str -> a string; tuple[X, ...] and
list[X] -> a list or tuple whose items are X (tuples come back); X | None -> None or an X;
dict -> a mapping; a dataclass -> an instance of it, or a mapping of its fields.  Other
annotations are not checked.  Strings are never converted to numbers: the command line's
`key=value` parser has already read unquoted numbers, booleans and lists as JSON, so a string
reaching a number field was written as one (`T="2"` in a file) and is refused rather than
guessed at.
"""
from __future__ import annotations

import dataclasses
import types
import typing


def check_fields(dataclass_type, mapping: dict, where: str, sep: str = " ") -> dict:
    """`mapping` checked against the fields of `dataclass_type` and normalized (lists ->
    tuples, ints -> floats for float fields, nested mappings checked and kept as mappings).
    Unknown keys raise ValueError naming the nearest field.  `where` + `sep` begins every
    message ("icarl option T: ...", or with sep "." "icarl recipe option first.epochs: ...")."""
    return _check_mapping(dataclass_type, mapping, f"{where}{sep}")


def _hints(tp) -> dict:
    """Field annotations resolved to types; one that cannot be resolved (a user's dataclass
    naming a type its module does not import) is left unchecked (typing.Any)."""
    try:
        return typing.get_type_hints(tp)
    except (NameError, TypeError):
        simple = {"bool": bool, "int": int, "float": float, "str": str, "dict": dict}
        return {f.name: (simple.get(f.type, typing.Any) if isinstance(f.type, str) else f.type)
                for f in dataclasses.fields(tp)}


def _check_mapping(tp, mapping: dict, prefix: str) -> dict:
    hints = _hints(tp)
    fields = [f.name for f in dataclasses.fields(tp)]
    out = {}
    for key, value in mapping.items():
        if key not in fields:
            from clbudget.streams.catalog import nearest
            raise ValueError(f"{prefix}{key}: no such field of {tp.__name__} (nearest: "
                             f"{nearest(str(key), fields)}); fields: {', '.join(fields)}")
        out[key] = _check(value, hints[key], f"{prefix}{key}")
    return out


class _Mismatch(Exception):
    pass


def _check(value, tp, where: str):
    try:
        return _convert(value, tp, where)
    except _Mismatch:
        raise ValueError(f"{where}: expected {type_name(tp)}, got {value!r}") from None


def _convert(value, tp, where: str):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is typing.Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except _Mismatch:
                pass
        raise _Mismatch
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):   # a nested config: its own fields, named outer.inner
            return _check_mapping(tp, value, f"{where}.")
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if tp in (tuple, list) or origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        if not args:
            items = list(value)
        elif len(args) == 2 and args[1] is Ellipsis:
            items = [_convert(v, args[0], where) for v in value]
        else:
            if len(args) != len(value):
                raise _Mismatch
            items = [_convert(v, a, where) for v, a in zip(value, args)]
        return tuple(items) if (origin or tp) is tuple else items
    if tp is dict or origin is dict:
        if isinstance(value, dict):
            return value
        raise _Mismatch
    return value


def type_name(tp) -> str:
    """'float', 'tuple of int', 'int or None', 'true or false', 'a mapping of LoopConfig
    fields': what a user must write."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("None" if a is type(None) else type_name(a) for a in args)
    if dataclasses.is_dataclass(tp):
        return f"a mapping of {tp.__name__} fields"
    if tp is bool:
        return "bool (true or false)"
    if tp in (tuple, list) or origin in (tuple, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {type_name(args[0])}"
        if args:
            return f"a list of {len(args)}: {', '.join(type_name(a) for a in args)}"
        return "a list"
    if tp is dict or origin is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))
