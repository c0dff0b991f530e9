"""Pareto fronts: points not dominated in (cost down, accuracy up).  Pure.

Point j dominates point i when x_j <= x_i and y_j >= y_i with at least one strict.
Ties are deterministic: identical points dominate neither each other, so all copies are on
the front; the front is listed by increasing x, then decreasing y, then input order.
Points with a missing or non-finite coordinate are never on the front.
Used for accuracy vs total cost (bytes) and accuracy vs relative time (BMC).
"""
from __future__ import annotations

import math


def _ok(v) -> bool:
    return v is not None and math.isfinite(v)


def pareto_mask(xs, ys) -> list[bool]:
    """True for each point (x lower is better, y higher is better) on the Pareto front."""
    xs, ys = list(xs), list(ys)
    if len(xs) != len(ys):
        raise ValueError(f"pareto_mask needs as many x as y values, got {len(xs)} and {len(ys)}")
    idx = sorted((i for i in range(len(xs)) if _ok(xs[i]) and _ok(ys[i])),
                 key=lambda i: (xs[i], -ys[i], i))
    mask = [False] * len(xs)
    best_y = -math.inf   # best accuracy among points of strictly smaller x
    group_x, group_best = None, -math.inf
    for i in idx:
        if xs[i] != group_x:   # a new x: the previous group's best now binds
            best_y = max(best_y, group_best)
            group_x, group_best = xs[i], ys[i]  # first of a group has the group's best y
        if ys[i] > best_y and ys[i] == group_best:
            mask[i] = True
    return mask


def pareto_front(xs, ys) -> list[int]:
    """Indices of the front, by increasing x (then decreasing y, then input order)."""
    xs, ys = list(xs), list(ys)
    mask = pareto_mask(xs, ys)
    return sorted((i for i, m in enumerate(mask) if m), key=lambda i: (xs[i], -ys[i], i))
