"""Methods from outside clbudget, registered like the built-ins (docs/own-method.md).

A method is a `clbudget.methods.base.Method` subclass in any importable module.  Two ways in:
- `--method pkg.module:Class` (run, sweep, audit claims, check-method): the module is imported
  on first use and the class registered under that name;
- an entry point of the group `clbudget.methods` in the user's package metadata, e.g. in
  pyproject.toml `[project.entry-points."clbudget.methods"] mine = "pkg.module:Class"`:
  registered as `mine` with the built-ins (`load_all`).

The allocator needs a cost model per method (budget/costs.py) to spend a budget before
anything trains.  An external class says which, in this order:
1. `cost_model = CostModel(...)`: its ledger as a function of shapes (like the built-ins');
   `cost_model = "wa"`: the cost model of a built-in whose items it holds;
2. else the cost model of the nearest built-in it subclasses (a `Replay` subclass is
   allocated as replay);
3. else the `fit` default: one single-head network of the allocated backbone, plus
   exemplars filling the rest of the budget when the class sets `uses_exemplars = True`.
The allocation is only a plan: every run still checks the ledger the method reports against
the budget after every task and refuses one over it, and `clbudget check-method` checks that
the ledger equals the bytes the method really holds.  A method that keeps more than its cost
model says (a teacher, statistics) must declare a cost model, or its runs end over budget.

Provenance: `registry.source(name)` is the class's import path, its file and the file's SHA-256.
Runs record it in their row (`method_source`) and it enters the run key, so a sweep reruns a
cell whose method file changed and a report knows what ran.  Checkpoints may hold modules
(nn.Module subclasses) defined in a registered external method's module.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import warnings

from clbudget.methods.names import METHODS, is_external, trusted_modules  # noqa: F401

ENTRY_POINT_GROUP = "clbudget.methods"


def load_external(path: str):
    """Import `pkg.module:Class` and register the class under that name."""
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise ValueError(f"--method {path!r}: expected pkg.module:Class, e.g. mymethods:MyReplay")
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise ValueError(f"--method {path}: cannot import {module_name!r} ({e}); put its folder "
                         f"on PYTHONPATH or pip install its package") from None
    for part in qualname.split("."):
        if not hasattr(obj, part):
            from clbudget.methods.base import Method
            found = [n for n, v in vars(importlib.import_module(module_name)).items()
                     if isinstance(v, type) and issubclass(v, Method) and v is not Method]
            raise ValueError(f"--method {path}: {module_name} has no {qualname!r}; its Method "
                             f"subclasses: {', '.join(found) or 'none'}")
        obj = getattr(obj, part)
    return add(path, obj)


def add(name: str, cls):
    """Register an external Method class under `name`, with a cost model for the allocator."""
    from clbudget.budget.costs import COST_MODELS
    from clbudget.methods.base import Method
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ValueError(f"method {name!r} is {cls!r}, not a subclass of "
                         f"clbudget.methods.base.Method")
    if METHODS.get(name, cls) is not cls:
        raise ValueError(f"method {name!r} registered twice ({METHODS[name].__module__} and "
                         f"{cls.__module__})")
    model = cost_model_for(name, cls)
    if "name" not in vars(cls):   # not set by @register (a subclass inherits its parent's)
        cls.name = name
    METHODS[name] = cls
    COST_MODELS.setdefault(name, model)
    return cls


def cost_model_for(name: str, cls):
    """The allocator's cost model of an external class (see the module docstring)."""
    from clbudget.budget.costs import COST_MODELS, CostModel, _finetune, _replay, cost_model
    declared = getattr(cls, "cost_model", None)
    paper = getattr(cls, "paper", "") or f"user method {cls.__module__}:{cls.__qualname__}"
    if isinstance(declared, CostModel):
        return dataclasses.replace(declared, name=name)
    if isinstance(declared, str):
        return dataclasses.replace(cost_model(declared), name=name, paper=paper)
    if declared is not None:
        raise ValueError(f"{name}.cost_model must be a CostModel or a built-in method's name, "
                         f"got {declared!r}")
    for base in cls.__mro__[1:]:
        builtin = getattr(base, "name", "")
        if base.__module__.startswith("clbudget.methods.") and builtin in COST_MODELS \
                and METHODS.get(builtin) is base:
            return dataclasses.replace(COST_MODELS[builtin], name=name, paper=paper)
    uses = bool(getattr(cls, "uses_exemplars", False))
    return CostModel(name, paper, _replay if uses else _finetune, uses_exemplars=uses,
                     budgeted=cls.budgeted)


@functools.cache
def load_entry_points() -> tuple[str, ...]:
    """Register the methods of installed packages' `clbudget.methods` entry points (once)."""
    from importlib.metadata import entry_points
    names = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            add(ep.name, ep.load())
        except Exception as e:   # a broken plug-in must not break the built-ins
            warnings.warn(f"entry point {ep.name} = {ep.value} ({ENTRY_POINT_GROUP}) skipped: "
                          f"{type(e).__name__}: {e}")
            continue
        names.append(ep.name)
    return tuple(names)
