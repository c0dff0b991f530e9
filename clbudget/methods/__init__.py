"""Methods: the registry, the Method base, exemplar memory, losses, one file per method.

Importing this package hands `budget.costs` the registry's loader, so `cost_model` of a method
from outside (`pkg.module:Class`, an entry point) loads that method, which registers its cost
model; budget/ sits below methods/ and never imports it (issue 15)."""
from clbudget.budget import costs as _costs


def _load_method(name: str) -> None:
    from clbudget.methods.registry import method_class
    method_class(name)   # registers its cost model (methods/external.py), or raises


_costs.METHOD_LOADERS.append(_load_method)
