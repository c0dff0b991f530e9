"""AUC-A and AUC-L over memory budgets (MEMO: Zhou et al., ICLR 2023, section 5).  Pure.

MEMO summarises a method's accuracy-vs-budget curve by the area under it: AUC-A under the
average-incremental-accuracy curve, AUC-L under the last-accuracy curve, by the trapezoid rule
over the budgets run, in increasing order, no extrapolation.  The published scale (MEMO
Table 1, and the CIL survey of Zhou et al. 2023) is
- x axis: the budget in MiB (bytes / 2**20; the paper writes "MB" and means MiB),
- y axis: accuracy as a **fraction** (0-1),
so an AUC is in "MB" = fraction x MiB: MEMO's AUC-A of 10.85 on CIFAR-100 B0Inc10 is about
0.68 average accuracy over its 15.9 MiB of budgets.  `auc_memo` gives that number, the one
clbudget reports first; `auc_pct_mib` gives the same area with accuracy in percent (100 x
larger, "% x MiB"), labelled so wherever it is shown.  An AUC is only comparable between
methods run at the same budgets; with fewer than two budgets it is undefined (NaN).
"""
from __future__ import annotations

import math

MIB = 2 ** 20
AUC_UNIT = "MB (MiB) as in MEMO Table 1: accuracy as a fraction x budget in MiB"
AUC_PCT_UNIT = "% x MiB: accuracy in percent x budget in MiB (100 x the MEMO-scale AUC)"


def trapezoid(xs, ys) -> float:
    """Area under the polyline through (x, y) sorted by x (trapezoid rule)."""
    pts = sorted(zip(xs, ys))
    if len(pts) < 2:
        return float("nan")
    return sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(pts, pts[1:]))


def _area_mib(budgets_bytes, accuracies) -> float:
    pts = [(b / MIB, a) for b, a in zip(budgets_bytes, accuracies)
           if b is not None and a is not None and math.isfinite(a)]
    if len({x for x, _ in pts}) != len(pts):
        raise ValueError("AUC: one accuracy per budget (average seeds first)")
    return trapezoid([x for x, _ in pts], [y for _, y in pts])


def auc_memo(budgets_bytes, accuracies) -> float:
    """MEMO Table 1's AUC: accuracy as a fraction in [0, 1] x budget in MiB ("MB" in the
    paper); NaN with fewer than two finite points."""
    return _area_mib(budgets_bytes, accuracies)


def auc_pct_mib(budgets_bytes, accuracies_pct) -> float:
    """The same area with accuracy in percent (0-100): % x MiB, 100 x `auc_memo`."""
    return _area_mib(budgets_bytes, accuracies_pct)


auc_mib = auc_pct_mib   # the name before the MEMO scale was reported: % x MiB
