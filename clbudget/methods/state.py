"""The state codec of checkpoints (experiment/checkpoint.py) and `Method.state_dict()`.

The state codec.  `encode(obj)` turns an object graph into what weights_only=True can load:
tensors, None/bool/int/float/str and lists/dicts of them.  Every other node becomes a tagged
dict: tuples, sets, dicts with any keys, dtypes, devices, parameters (with requires_grad),
and objects (an nn.Module of torch or clbudget, or any clbudget object with a __dict__:
class name + encoded __dict__).  Objects, tensors and containers reached twice are stored
once and come back shared (CLR's task views share the backbone's convolutions).  `decode`
rebuilds the graph without calling any constructor or unpickling code: it looks classes up
by name, only inside torch and clbudget.  Anything else (a function, a generator, a file)
is refused at save time with the attribute path named, so a method whose state cannot be
checkpointed fails the registry-wide test instead of resuming wrongly.
"""
from __future__ import annotations

import importlib
from collections import OrderedDict

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

TAG = "__ckpt__"
CLASS_PREFIXES = ("torch.", "clbudget.")


class CheckpointError(ValueError):
    """A checkpoint cannot be used: unreadable, from a newer clbudget, or of another run."""


# ------------------------------------------------------------------------------ the codec

def encode(obj):
    """An object graph -> tensors and plain containers (see the module docstring)."""
    return _encode(obj, {}, "state")


def decode(data):
    """The inverse of `encode` (tensors already on their device, e.g. torch.load's map)."""
    return _decode(data, {})


def _encode(obj, memo: dict, path: str):
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, torch.dtype):
        return {TAG: "dtype", "name": str(obj).removeprefix("torch.")}
    if isinstance(obj, torch.device):
        return {TAG: "device", "name": str(obj)}
    if isinstance(obj, torch.Size):
        return {TAG: "size", "items": list(obj)}
    if isinstance(obj, tuple) and type(obj) is tuple:
        return {TAG: "tuple", "items": [_encode(v, memo, f"{path}[{i}]")
                                         for i, v in enumerate(obj)]}
    if isinstance(obj, (set, frozenset)):
        return {TAG: type(obj).__name__, "items": [_encode(v, memo, f"{path}{{}}") for v in obj]}
    if id(obj) in memo:
        return {TAG: "ref", "id": memo[id(obj)][0]}
    ref = len(memo)
    memo[id(obj)] = (ref, obj)   # holding obj keeps its id from being reused meanwhile
    if isinstance(obj, nn.Parameter):
        return {TAG: "param", "id": ref, "data": obj.detach(), "grad": obj.requires_grad}
    if isinstance(obj, torch.Tensor):
        return {TAG: "tensor", "id": ref, "data": obj.detach(),
                "grad": obj.requires_grad and obj.is_leaf}
    if type(obj) is list:
        return {TAG: "list", "id": ref,
                "items": [_encode(v, memo, f"{path}[{i}]") for i, v in enumerate(obj)]}
    if type(obj) in (dict, OrderedDict):
        keys = list(obj)
        return {TAG: "dict", "id": ref, "ordered": type(obj) is not dict,
                "keys": [_encode(k, memo, f"{path} key") for k in keys],
                "values": [_encode(obj[k], memo, f"{path}[{k!r}]") for k in keys]}
    cls = type(obj)
    parametrized = isinstance(obj, nn.Module) and parametrize.is_parametrized(obj)
    if parametrized:          # torch's generated subclass: stored as the class it wraps
        cls = cls.__bases__[0]
    if _allowed_class(cls) and hasattr(obj, "__dict__") and not hasattr(cls, "__slots__"):
        out = {TAG: "object", "id": ref, "class": f"{cls.__module__}:{cls.__qualname__}",
               "state": _encode(vars(obj), memo, path)}
        if parametrized:
            out["parametrized"] = list(obj.parametrizations.keys())
        return out
    raise TypeError(f"cannot checkpoint {path}: a {cls.__module__}.{cls.__qualname__}; "
                    f"a method may hold tensors, modules, clbudget objects, numbers, strings "
                    f"and containers of them")


def _allowed_class(cls) -> bool:
    if not cls.__module__.startswith(CLASS_PREFIXES):
        # modules defined beside a user's registered method (methods/external.py)
        from clbudget.methods.names import trusted_modules
        return issubclass(cls, nn.Module) and cls.__module__ in trusted_modules()
    return issubclass(cls, nn.Module) or cls.__module__.startswith("clbudget.")


def _decode(data, memo: dict):
    if not isinstance(data, dict):
        if isinstance(data, list):   # plain lists only inside tagged nodes; tolerate anyway
            return [_decode(v, memo) for v in data]
        return data
    kind = data.get(TAG)
    if kind == "ref":
        return memo[data["id"]]
    if kind == "dtype":
        dtype = getattr(torch, data["name"], None)
        if not isinstance(dtype, torch.dtype):
            raise CheckpointError(f"unknown dtype {data['name']!r} in checkpoint")
        return dtype
    if kind == "device":
        return torch.device(data["name"])
    if kind == "size":
        return torch.Size(data["items"])
    if kind == "tuple":
        return tuple(_decode(v, memo) for v in data["items"])
    if kind in ("set", "frozenset"):
        items = (_decode(v, memo) for v in data["items"])
        return set(items) if kind == "set" else frozenset(items)
    if kind == "param":
        out = memo[data["id"]] = nn.Parameter(data["data"], requires_grad=data["grad"])
        return out
    if kind == "tensor":
        t = data["data"]
        if data["grad"]:
            t.requires_grad_(True)
        memo[data["id"]] = t
        return t
    if kind == "list":
        out = memo[data["id"]] = []
        out.extend(_decode(v, memo) for v in data["items"])
        return out
    if kind == "dict":
        out = memo[data["id"]] = OrderedDict() if data["ordered"] else {}
        for k, v in zip(data["keys"], data["values"]):
            out[_decode(k, memo)] = _decode(v, memo)
        return out
    if kind == "object":
        cls = _find_class(data["class"])
        obj = memo[data["id"]] = cls.__new__(cls)
        obj.__dict__.update(_decode(data["state"], memo))   # no constructor, no __setstate__
        if data.get("parametrized"):
            _reparametrize(obj, data["parametrized"])
        return obj
    raise CheckpointError(f"unknown node {kind!r} in checkpoint (written by a newer clbudget?)")


def _reparametrize(module: nn.Module, names: list) -> None:
    """Give a decoded module back torch's parametrized subclass and the properties of its
    parametrized tensors (nets/stored.py), as `register_parametrization` made them.  The
    parametrizations themselves (`module.parametrizations`) came back with its state."""
    parametrize._inject_new_class(module)
    for name in names:
        parametrize._inject_property(module, name)


def _find_class(name: str):
    module, _, qualname = name.partition(":")
    from clbudget.methods.names import trusted_modules
    if not module.startswith(CLASS_PREFIXES) and module not in trusted_modules():
        raise CheckpointError(f"checkpoint names class {name}, outside torch and clbudget "
                              f"(and the registered methods' modules)")
    try:
        cls = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
    except (ImportError, AttributeError):
        raise CheckpointError(f"checkpoint names class {name}, which this clbudget does not "
                              f"have; it was written by another version") from None
    if not isinstance(cls, type) or not _allowed_class(cls):
        raise CheckpointError(f"checkpoint names {name}, which is not a module or a clbudget "
                              f"class")
    return cls
