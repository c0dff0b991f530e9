"""The mutant catalogue of `python -m bench.mutants`.

Each module of this package holds `MUTANTS`, a list of `Mutant`s: one per mechanism a method's
docstring names.  A mutant replaces one exact piece of source text (it must occur exactly once
in its file) by another that removes or replaces the mechanism, and names the tests that guard
it.  The runner applies each mutant to a temporary copy of the project and runs those tests: the
mutant is killed when a test fails.  A mutant whose copy no longer imports (pytest exit 2) is a
broken mutant, not a kill.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str                  # "icarl.herding_to_random": method, then the mechanism
    path: str                  # file relative to the project root
    old: str                   # exact text, present exactly once in `path`
    new: str                   # what replaces it
    tests: tuple[str, ...]     # pytest node ids or files that must fail
    mechanism: str = ""        # one line: what the mutant removes


def catalogue() -> list[Mutant]:
    """Every mutant of every catalogue module, in module then list order; names unique."""
    import bench.mutant_catalog as pkg
    found: list[Mutant] = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        found += list(getattr(module, "MUTANTS", ()))
    names = [m.name for m in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"mutant names used twice: {', '.join(twice)}")
    return found
