"""The method registry: `@register("name")` on a Method subclass; `create(name, ctx)`.

Method modules are discovered (every module of this package that is not a
shared piece), so adding a method is adding one file.
"""
from __future__ import annotations

import importlib
import pkgutil

METHODS: dict = {}
SHARED = {"backbones", "base", "expanding", "losses", "memory", "nets", "registry"}


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
    return METHODS


def method_class(name: str):
    load_all()
    if name not in METHODS:
        from clbudget.streams.catalog import nearest
        raise ValueError(f"unknown method {name!r}; known: {', '.join(sorted(METHODS))} "
                         f"(nearest: {nearest(name, METHODS)})")
    return METHODS[name]
