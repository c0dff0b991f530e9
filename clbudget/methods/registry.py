"""The method registry: `@register("name")` on a Method subclass; `create(name, ctx)`.

Method modules are discovered (every module of this package that is not a
shared piece), so adding a method is adding one file.

Methods from outside the package (clbudget/methods/external.py) register here too: a name
`pkg.module:Class` is imported on first use, and installed packages may declare entry points
in the group `clbudget.methods` (`name = "pkg.module:Class"`), loaded with the built-ins.

Imports run one way: registry -> external -> names (the table) <- state; nothing here
imports the package `clbudget.methods` itself (tests/test_import_cycles.py).
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import pkgutil

from clbudget.methods.external import load_entry_points, load_external, is_external
from clbudget.methods.names import METHODS, register  # noqa: F401  (the registry's table)

SHARED = {"backbones", "base", "best_args", "expanding", "external", "losses", "memory", "names",
          "nets", "registry", "state"}


def load_all() -> dict:
    for info in pkgutil.iter_modules([os.path.dirname(__file__)]):   # this package's modules
        if info.name not in SHARED and not info.name.startswith("_"):
            importlib.import_module(f"clbudget.methods.{info.name}")
    load_entry_points()
    return METHODS


def method_class(name: str):
    load_all()
    if name not in METHODS and ":" in name:   # pkg.module:Class, the user's own method
        load_external(name)
    if name not in METHODS:
        from clbudget.streams.catalog import nearest
        raise ValueError(f"unknown method {name!r}; known: {', '.join(sorted(METHODS))} "
                         f"(nearest: {nearest(name, METHODS)})")
    return METHODS[name]


def source(name: str) -> dict | None:
    """Import path, file and SHA-256 of an external method's file; None for a built-in (or a
    name that does not resolve: the run reports that itself)."""
    cls = METHODS.get(name)
    if cls is None:
        try:
            cls = method_class(name)
        except ValueError:
            return None
    if not is_external(cls):
        return None
    try:
        path = inspect.getsourcefile(cls)
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    except (TypeError, OSError):
        path, digest = None, None
    return {"name": name, "import_path": f"{cls.__module__}:{cls.__qualname__}",
            "file": path, "sha256": digest}
