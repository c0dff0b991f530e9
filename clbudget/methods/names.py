"""The table of registered methods: `@register("name")` puts a Method subclass in `METHODS`.

A leaf module (it imports nothing of clbudget), so that the registry's loaders
(registry.py), methods from outside (external.py) and checkpoints (state.py) all read one
table without importing each other in a circle."""
from __future__ import annotations

METHODS: dict = {}


def register(name: str):
    def wrap(cls):
        if METHODS.get(name, cls) is not cls:
            raise ValueError(f"method {name!r} registered twice")
        cls.name = name
        METHODS[name] = cls
        return cls
    return wrap


def is_external(cls) -> bool:
    return not cls.__module__.startswith("clbudget.")


def trusted_modules() -> set[str]:
    """Modules of registered external methods: checkpoints may hold their nn.Modules."""
    return {cls.__module__ for cls in METHODS.values() if is_external(cls)}
