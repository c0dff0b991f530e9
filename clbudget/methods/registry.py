"""The method registry: `@register("name")` on a Method subclass; `create(name, ctx)`.

Method modules are discovered (every module of this package that is not a
shared piece), so adding a method is adding one file.

Methods from outside the package (clbudget/methods/external.py) register here too: a name
`pkg.module:Class` is imported on first use, and installed packages may declare entry points
in the group `clbudget.methods` (`name = "pkg.module:Class"`), loaded with the built-ins.
"""
from __future__ import annotations

import importlib
import pkgutil

METHODS: dict = {}
SHARED = {"backbones", "base", "expanding", "external", "losses", "memory", "nets", "registry",
          "state"}


def register(name: str):
    def wrap(cls):
        if METHODS.get(name, cls) is not cls:
            raise ValueError(f"method {name!r} registered twice")
        cls.name = name
        METHODS[name] = cls
        return cls
    return wrap


def load_all() -> dict:
    import clbudget.methods as pkg
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name not in SHARED and not info.name.startswith("_"):
            importlib.import_module(f"clbudget.methods.{info.name}")
    from clbudget.methods.external import load_entry_points
    load_entry_points()
    return METHODS


def method_class(name: str):
    load_all()
    if name not in METHODS and ":" in name:   # pkg.module:Class, the user's own method
        from clbudget.methods.external import load_external
        load_external(name)
    if name not in METHODS:
        from clbudget.streams.catalog import nearest
        raise ValueError(f"unknown method {name!r}; known: {', '.join(sorted(METHODS))} "
                         f"(nearest: {nearest(name, METHODS)})")
    return METHODS[name]
