"""Per-task checkpoints: a run killed at any point resumes from its last finished task.

After every finished task a run saves, atomically (write a temporary file, fsync, rename):
- the method's state, `Method.state_dict()`: every module, tensor, memory, counter and list
  of them the method holds, encoded by `encode` below;
- the run's random number generators: its torch.Generator (batches, augmentation, herding,
  reservoir) and torch's global RNG (weight init of modules created later), CUDA's too;
- the results of the finished tasks: accuracy rows, losses, wall times.
A rerun of the same spec loads it with `torch.load(..., weights_only=True)` (tensors and plain
containers, never code), refuses it if its spec differs from the command's (naming the
fields), restores it and goes on with the next task.  Same seed, same result as a run that
was never interrupted (tests/test_reliability.py compares every method's accuracy matrices
and losses).  The caller deletes a run's checkpoint once its row is stored, unless kept.

Layout: ROOT/<run_key>/checkpoint.pt.  ROOT defaults to `checkpoints/` beside the results
store when there is one, else $CLBUDGET_CACHE/checkpoints (~/.cache/clbudget/checkpoints).
A ROOT that itself holds checkpoint.pt (a run's own folder) is used as that run's file.

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
import json
import os
import shutil
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

FORMAT = 1
FILE = "checkpoint.pt"
TAG = "__ckpt__"
CLASS_PREFIXES = ("torch.", "clbudget.")


class CheckpointError(ValueError):
    """A checkpoint cannot be used: unreadable, from a newer clbudget, or of another run."""


class CheckpointMismatch(CheckpointError):
    """The checkpoint's spec differs from the command's; the message names the fields."""


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
    if _allowed_class(cls) and hasattr(obj, "__dict__") and not hasattr(cls, "__slots__"):
        return {TAG: "object", "id": ref, "class": f"{cls.__module__}:{cls.__qualname__}",
                "state": _encode(vars(obj), memo, path)}
    raise TypeError(f"cannot checkpoint {path}: a {cls.__module__}.{cls.__qualname__}; "
                    f"a method may hold tensors, modules, clbudget objects, numbers, strings "
                    f"and containers of them")


def _allowed_class(cls) -> bool:
    if not cls.__module__.startswith(CLASS_PREFIXES):
        # modules defined beside a user's registered method (methods/external.py)
        from clbudget.methods.external import trusted_modules
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
        return obj
    raise CheckpointError(f"unknown node {kind!r} in checkpoint (written by a newer clbudget?)")


def _find_class(name: str):
    module, _, qualname = name.partition(":")
    from clbudget.methods.external import trusted_modules
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


# ------------------------------------------------------------------------------ the files

def default_root(store_path=None) -> Path:
    """checkpoints/ beside the results store, else $CLBUDGET_CACHE/checkpoints."""
    if store_path is not None:
        return Path(store_path).parent / "checkpoints"
    cache = os.environ.get("CLBUDGET_CACHE")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache" / "clbudget"
    return base / "checkpoints"


def spec_fields(spec) -> dict:
    """The spec as the checkpoint stores it (JSON values: tuples become lists)."""
    return json.loads(json.dumps(spec.to_dict(), sort_keys=True, default=str))


class Checkpoints:
    """The checkpoints of runs under one folder, one subfolder per run key."""

    def __init__(self, root, keep: bool = False):
        self.root = Path(root).expanduser()
        self.keep = keep
        self._warned = False

    def path(self, run_key: str) -> Path:
        direct = self.root / FILE
        return direct if direct.is_file() else self.root / run_key / FILE

    def save(self, spec, payload: dict) -> Path | None:
        """Write the checkpoint atomically; a failed write (disk full) warns, the run goes on."""
        path = self.path(spec.key)
        tmp = path.with_name(f"{FILE}.tmp-{os.getpid()}")
        payload = {"format": FORMAT, "run_key": spec.key,
                   "spec": json.dumps(spec_fields(spec), sort_keys=True),
                   "saved_at": time.time(), "torch": str(torch.__version__), **payload}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                torch.save(payload, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            if not self._warned:
                print(f"clbudget: warning: cannot write checkpoint {path} ({e}); the run goes "
                      f"on without checkpoints", file=sys.stderr)
                self._warned = True
            return None
        return path

    def load(self, spec, device=None) -> dict | None:
        """The run's checkpoint, or None; refused (CheckpointError) if unusable or another run's."""
        path = self.path(spec.key)
        if not path.is_file():
            return None
        try:
            data = torch.load(path, map_location=device, weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file gets the same advice
            lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()] or [""]
            first = next((ln for ln in lines if "error:" in ln), lines[0])[:200]
            raise CheckpointError(f"checkpoint {path} cannot be read ({type(e).__name__}: "
                                  f"{first}); delete it to start this run over") from None
        if not isinstance(data, dict) or not isinstance(data.get("format"), int):
            raise CheckpointError(f"{path} is not a clbudget checkpoint; delete it or give "
                                  f"another --checkpoint-dir")
        if data["format"] > FORMAT:
            raise CheckpointError(f"checkpoint {path} has format {data['format']}, newer than "
                                  f"this clbudget's {FORMAT}; upgrade clbudget or delete it")
        saved, given = json.loads(data["spec"]), spec_fields(spec)
        diff = [k for k in sorted(set(saved) | set(given)) if saved.get(k) != given.get(k)]
        if diff:
            shown = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, command {given.get(k)!r}"
                              for k in diff)
            raise CheckpointMismatch(
                f"checkpoint {path} is of another run ({len(diff)} field"
                f"{'s' if len(diff) > 1 else ''} differ: {shown}); give another "
                f"--checkpoint-dir or delete it")
        return data

    def discard(self, *run_keys: str) -> None:
        """Delete these runs' checkpoints (once their row is stored), unless kept."""
        if self.keep:
            return
        for key in run_keys:
            if not key:
                continue
            shutil.rmtree(self.root / key, ignore_errors=True)
            if self.root.name == key:   # the root is the run's own folder: its file only
                (self.root / FILE).unlink(missing_ok=True)
                try:
                    self.root.rmdir()
                except OSError:
                    pass


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------ RNG state

def rng_state(generator: torch.Generator, device) -> dict:
    cuda = (torch.cuda.get_rng_state_all()
            if torch.device(device).type == "cuda" and torch.cuda.is_available() else [])
    return {"generator": generator.get_state(), "torch": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict, generator: torch.Generator) -> None:
    generator.set_state(state["generator"].cpu())
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
