"""The mutant catalogue of `python -m bench.mutants`, one module per area it guards.

Each module of this package holds `AREA` (its area, e.g. "budget.costs", stored in a module of
the same name with dots as underscores: budget_costs.py) and `MUTANTS`, a list of `Mutant`s
named "AREA.what_it_breaks".  A mutant replaces one exact piece of source text (it must occur
exactly once in its file) by another that removes or replaces a mechanism, and names the tests
that guard it.  The runner applies each mutant to a temporary copy of the project and runs those
tests: the mutant is killed when a test fails.  A mutant whose copy no longer imports (pytest
exit 2) is a broken mutant, not a kill.

Areas: budget.{units,costs,allocator}, storage.{pricing,precision,codecs},
analysis.{metrics,stats,report}, loop.{train,recipes}, losses, shared, run, protocol,
features, multidomain, ecosystem, gpu, layers, parity_bench, and one per method: finetune,
replay, joint, icarl, wa, lwf, ewc, der, derpp, memo, bmc, clr, mind.  `--only budget` selects
the three budget modules, `--only budget.costs` one.

`origin` says which round wrote a mutant ("mechanism", the blind rounds "blind-1".."blind-3",
...); `origins.py` keeps how each round was written, which the kill rates in BENCHMARKS.md
depend on.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str                  # "icarl.nme_to_linear_head": the area, then what it breaks
    path: str                  # file relative to the project root
    old: str                   # exact text, present exactly once in `path`
    new: str                   # what replaces it
    tests: tuple[str, ...]     # pytest node ids or files that must fail
    mechanism: str = ""        # one line: what the mutant removes
    origin: str = ""           # the round that wrote it (origins.py): "mechanism", "blind-2 (...)"


def modules() -> list:
    """The catalogue's area modules (those with MUTANTS), by module name."""
    import bench.mutant_catalog as pkg
    found = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        if hasattr(module, "MUTANTS"):
            found.append(module)
    return found


def catalogue() -> list[Mutant]:
    """Every mutant of every catalogue module, in module then list order; names unique."""
    found: list[Mutant] = []
    for module in modules():
        found += list(module.MUTANTS)
    names = [m.name for m in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"mutant names used twice: {', '.join(twice)}")
    return found


def select(mutants, only: str = "", origin: str = "") -> list[Mutant]:
    """The mutants whose name starts with one of `only`'s comma-separated prefixes and whose
    origin starts with one of `origin`'s (an empty one: no filter).

    A prefix that is a whole name component ("der", "budget", "budget.costs") selects that
    component only ("der" is not "derpp"); any other prefix is a plain string prefix
    ("derpp.best_args" selects "derpp.best_args_cifar100_alpha_0_2")."""
    def split(s: str) -> tuple[str, ...]:
        return tuple(x.strip() for x in s.split(",") if x.strip())

    mutants = list(mutants)
    components = {".".join(m.name.split(".")[:i]) for m in mutants
                  for i in range(1, m.name.count(".") + 1)}

    def matches(name: str, prefix: str) -> bool:
        if prefix in components:
            return name.startswith(prefix + ".")
        return name.startswith(prefix)

    names, origins = split(only), split(origin)
    if names:
        mutants = [m for m in mutants if any(matches(m.name, p) for p in names)]
    if origins:
        mutants = [m for m in mutants if m.origin.startswith(origins)]
    return mutants
