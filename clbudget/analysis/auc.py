"""AUC-A and AUC-L over memory budgets (MEMO: Zhou et al., ICLR 2023, section 5).  Pure.

MEMO summarises a method's accuracy-vs-budget curve by the area under it: AUC-A under the
average-incremental-accuracy curve, AUC-L under the last-accuracy curve.  Here, exactly:
- x axis: the budget in **MiB** (bytes / 2**20; MEMO's tables write "MB" but mean MiB),
- y axis: accuracy in **percent** (0-100),
- the trapezoid rule over the budgets run, in increasing order, no extrapolation,
so an AUC is in **% x MiB**.  It is only comparable between methods run at the same budgets;
with fewer than two budgets it is undefined (NaN).
"""
from __future__ import annotations

import math

MIB = 2 ** 20


def trapezoid(xs, ys) -> float:
    """Area under the polyline through (x, y) sorted by x (trapezoid rule)."""
    pts = sorted(zip(xs, ys))
    if len(pts) < 2:
        return float("nan")
    return sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(pts, pts[1:]))


def auc_mib(budgets_bytes, accuracies_pct) -> float:
    """Area under accuracy (%) vs budget (MiB); NaN with fewer than two finite points."""
    pts = [(b / MIB, a) for b, a in zip(budgets_bytes, accuracies_pct)
           if b is not None and a is not None and math.isfinite(a)]
    if len({x for x, _ in pts}) != len(pts):
        raise ValueError("auc_mib: one accuracy per budget (average seeds first)")
    return trapezoid([x for x, _ in pts], [y for _, y in pts])
