"""Sweeps: methods x budgets x seeds on one stream, resumable, one row per cell.

Every cell is a RunSpec; its `run_key` identifies it in the results store.  A
rerun of the same sweep skips cells already finished (or failed, unless asked to
retry), so a sweep killed at any point resumes where it stopped and never
duplicates a row.  A finetune reference cell per seed is always added: relative
time (BMC) divides by its wall time.
"""
from __future__ import annotations

import dataclasses
import time
import traceback

import numpy as np

from clbudget.budget.accountant import parse_budget
from clbudget.budget.allocator import AllocatorConfig, BudgetError, allocate, memo_budget_points
from clbudget.budget.costs import StreamShape, cost_model
from clbudget.experiment.run import RunSpec, load, run_experiment
from clbudget.progress import progress_bar

REFERENCE = "finetune"


def parse_budget_list(text: str, *, image_shape=None, model_bytes=None) -> list[str]:
    """"7.6MiB:23.5MiB:5" -> 5 evenly spaced budgets (as byte strings); "2000ex,5000ex" -> list."""
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"budget range {text!r} must be LOW:HIGH:COUNT, e.g. 7.6MiB:23.5MiB:5")
        lo, hi = (parse_budget(p, image_shape=image_shape, model_bytes=model_bytes)
                  for p in parts[:2])
        try:
            count = int(parts[2])
        except ValueError:
            count = 0
        if count < 2 or hi <= lo:
            raise ValueError(f"budget range {text!r}: need LOW < HIGH and COUNT >= 2, "
                             f"e.g. 7.6MiB:23.5MiB:5")
        return [str(int(b)) for b in np.linspace(lo, hi, count).round()]
    budgets = [b.strip() for b in text.split(",") if b.strip()]
    if not budgets:
        raise ValueError("--budgets is empty; e.g. --budgets 2000ex,5000ex or 7.6MiB:23.5MiB:5")
    for b in budgets:  # fail on a typo before anything runs
        parse_budget(b, image_shape=image_shape, model_bytes=model_bytes)
    return budgets


def parse_seeds(text: str) -> list[int]:
    """"0,1,2" or "0-2" -> [0, 1, 2]."""
    seeds = []
    for part in str(text).split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            seeds += list(range(int(lo), int(hi) + 1)) if sep and lo else [int(part)]
        except ValueError:
            raise ValueError(f"--seeds {text!r}: seeds are integers, e.g. 0,1,2 or 0-2") from None
    if not seeds:
        raise ValueError("--seeds is empty; e.g. --seeds 0,1,2")
    return sorted(set(seeds))


def plan(methods, seeds, base: RunSpec, stream_shape: StreamShape, *, budgets=(),
         protocol: str | None = None) -> list[RunSpec]:
    """The cells of a sweep (method-major), plus a finetune reference per seed."""
    for m in methods:
        cost_model(m)
    cells = []
    if protocol in ("memo-auc", "memo-fair"):
        config = AllocatorConfig(convention=base.convention)
        points = memo_budget_points(stream_shape, config)
        if protocol == "memo-fair":
            points = points[-1:]
        for m in methods:
            for point_bytes, rung in points:
                bb = rung if cost_model(m).expanding else base.backbone
                cells += [dataclasses.replace(base, method=m, budget=str(point_bytes),
                                              backbone=bb, seed=s) for s in seeds]
        ref_budget = str(points[-1][0])
    elif protocol not in (None, "fit"):
        raise ValueError(f"unknown protocol {protocol!r}; use fit, memo-fair or memo-auc")
    else:
        if not budgets:
            raise ValueError("give --budgets or --protocol memo-auc|memo-fair")
        cells = [dataclasses.replace(base, method=m, budget=b, seed=s)
                 for m in methods for b in budgets for s in seeds]
        ref_budget = max(budgets, key=lambda b: budget_bytes(b, stream_shape.image_shape))
    cells += [dataclasses.replace(base, method=REFERENCE, budget=ref_budget, seed=s,
                                  backbone=base.backbone) for s in seeds]
    unique = {c.key: c for c in cells}
    return list(unique.values())


def budget_bytes(text: str, image_shape) -> int:
    """A budget string in bytes for this stream ("1xresnet32": one model's parameters)."""
    from clbudget.methods.backbones import backbone_stats
    return parse_budget(text, image_shape=image_shape,
                        model_bytes=lambda n: backbone_stats(n, tuple(image_shape)).params_bytes)


def allocation_of(spec: RunSpec, shape: StreamShape):
    """The allocator's decision for a cell, or the BudgetError text if infeasible."""
    try:
        return allocate(spec.method, budget_bytes(spec.budget, shape.image_shape), shape,
                        backbone=spec.backbone,
                        config=AllocatorConfig(convention=spec.convention))
    except BudgetError as e:
        return str(e)


def _stream_key(spec: RunSpec):
    return (spec.dataset, spec.data_root, spec.init, spec.inc, spec.class_order_seed,
            spec.num_classes, spec.max_per_class, spec.max_test_per_class, spec.seed,
            spec.glyphs_options, spec.cache_dir)


def failed_row(spec: RunSpec, error: BaseException) -> dict:
    return {"run_key": spec.key, "status": "failed", "method": spec.method,
            "spec": spec.to_dict(), "reason": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(limit=8)}


def run_cells(specs: list[RunSpec], store, *, progress: bool = False, retry_failed: bool = False,
              on_row=None) -> dict:
    """Run every cell not yet in the store; one row per cell, failures recorded and skipped.

    Rows are written one transaction each as soon as a cell ends, so a kill loses at most
    the cell in flight.  KeyboardInterrupt stops the sweep without writing a row for it.
    """
    done = {"finished": 0, "failed": 0, "skipped": 0}
    todo = []
    for spec in specs:
        status = store.status(spec.key)
        if status == "finished" or (status == "failed" and not retry_failed):
            done["skipped"] += 1
        else:
            todo.append(spec)
    # cells sharing a stream run back to back so each stream is loaded once
    todo.sort(key=lambda s: str(_stream_key(s)))
    streams: dict = {}
    bar = progress_bar(todo, desc="sweep", enabled=progress, unit="run")
    t0 = time.perf_counter()
    for spec in bar:
        bar.set_postfix(cell=f"{spec.method} {spec.budget} s{spec.seed}")
        try:
            key = _stream_key(spec)
            if key not in streams:
                streams.clear()  # keep one stream in memory
                streams[key] = load(spec)
            row = run_experiment(spec, stream=streams[key])
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - a failed cell is data, the sweep goes on
            row = failed_row(spec, e)
        store.add(row)
        done[row["status"]] += 1
        if on_row:
            on_row(row)
    done["wall_s"] = time.perf_counter() - t0
    done["cells"] = len(specs)
    return done
