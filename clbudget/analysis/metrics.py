"""Continual-learning metrics over accuracy matrices.  Pure functions of numbers.

A[t][j] is the accuracy (in [0, 1]) on task j's test classes after learning tasks
0..t; entries with j > t are absent (None).  `acc_seen[t]` is the accuracy on the
test data of all classes seen after task t (sample-weighted), the number most CIL
papers plot.
"""
from __future__ import annotations

import math


def average_incremental(acc_seen) -> float:
    """Mean over tasks of the accuracy on all seen classes (Rebuffi et al. 2017)."""
    return sum(acc_seen) / len(acc_seen)


def forgetting_per_task(A) -> list[float]:
    """For each task j < T-1: the best accuracy it ever had before the last task minus its
    final accuracy (Chaudhry et al. 2018).  Works for any increment, task by task."""
    T = len(A)
    return [max(A[t][j] for t in range(j, T - 1)) - A[T - 1][j] for j in range(T - 1)]


def forgetting(A) -> float:
    per = forgetting_per_task(A)
    return sum(per) / len(per) if per else 0.0


def bwt(A) -> float:
    """Backward transfer (Lopez-Paz & Ranzato 2017): mean of A[T-1][j] - A[j][j], j < T-1."""
    T = len(A)
    vals = [A[T - 1][j] - A[j][j] for j in range(T - 1)]
    return sum(vals) / len(vals) if vals else 0.0


def summarize(A, acc_seen) -> dict:
    return {"last": acc_seen[-1], "average_incremental": average_incremental(acc_seen),
            "forgetting": forgetting(A), "forgetting_per_task": forgetting_per_task(A),
            "bwt": bwt(A), "per_step": list(acc_seen)}


def is_finite(x) -> bool:
    return x is not None and math.isfinite(x)
