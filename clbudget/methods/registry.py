"""The method registry: `@register("name")` on a Method subclass, `create(name, ...)`."""
from __future__ import annotations

METHODS: dict = {}


def register(name: str):
    def wrap(cls):
        if name in METHODS:
            raise ValueError(f"method {name!r} registered twice")
        cls.name = name
        METHODS[name] = cls
        return cls
    return wrap
