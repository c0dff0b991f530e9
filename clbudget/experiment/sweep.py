"""Sweeps: methods x budgets x seeds on one stream, resumable, one row per cell.

Every cell is a RunSpec; its `run_key` identifies it in the results store.  A
rerun of the same sweep skips cells already finished (or failed, unless asked to
retry), so a sweep killed at any point resumes where it stopped and never
duplicates a row.  A finetune reference cell per seed is always added: relative
time (BMC) divides by its wall time.  `clbudget sweep` without --class-order shuffles
each seed's classes with that seed (`default_class_order`; streams/protocol.py says why).
"""
from __future__ import annotations

import contextlib
import dataclasses
import time

import numpy as np

from clbudget.budget.accountant import parse_budget
from clbudget.budget.allocator import AllocatorConfig, BudgetError, allocate, memo_budget_points
from clbudget.budget.costs import StreamShape, cost_model
from clbudget.experiment.executors import LocalExecutor
from clbudget.experiment.run import RunSpec, run_guarded, stream_key

REFERENCE = "finetune"
# The class order of a sweep that names none (streams/protocol.py, why there)
SWEEP_CLASS_ORDER = "per-seed"


def parse_budget_list(text: str, *, image_shape=None, model_bytes=None,
                      dtype=None) -> list[str]:
    """"7.6MiB:23.5MiB:5" -> 5 evenly spaced budgets (as byte strings); "2000ex,5000ex" -> list.
    `dtype`: the exemplars' stored dtype (a feature stream's float32; default uint8)."""
    ex = {} if dtype is None else {"dtype": dtype}
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"budget range {text!r} must be LOW:HIGH:COUNT, e.g. 7.6MiB:23.5MiB:5")
        lo, hi = (parse_budget(p, image_shape=image_shape, model_bytes=model_bytes, **ex)
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


def default_class_order(cells, store) -> tuple[str, str]:
    """The class-order protocol of a sweep that names none, and a note for stderr ("" when
    none): SWEEP_CLASS_ORDER (per-seed), unless `store` already holds finished runs of these
    cells under the fixed order (a store begun under the fixed order, the sweep's default
    before): then "fixed", so that rerunning the same command resumes it rather than adding a
    second setting beside it, and the note says so."""
    fixed = [c for c in cells
             if store.status(dataclasses.replace(c, class_order="fixed").key) == "finished"]
    if not fixed:
        return SWEEP_CLASS_ORDER, ""
    return "fixed", (f"note: {store.path} holds {len(fixed)} finished run(s) of these cells "
                     f"under the fixed class order (seed {fixed[0].class_order_seed} for every "
                     f"seed); resuming it with --class-order fixed; pass --class-order per-seed "
                     f"for per-seed orders (a separate setting in the report)")


def budget_bytes(text: str, image_shape, dtype=None) -> int:
    """A budget string in bytes for this stream ("1xresnet32": one model's parameters;
    "2000ex": exemplars at `dtype`, default uint8)."""
    from clbudget.nets.backbones import backbone_stats
    ex = {} if dtype is None else {"dtype": dtype}
    return parse_budget(text, image_shape=image_shape, **ex,
                        model_bytes=lambda n: backbone_stats(n, tuple(image_shape)).params_bytes)


def allocation_of(spec: RunSpec, shape: StreamShape):
    """The allocator's decision for a cell, or the BudgetError text if infeasible."""
    try:
        if (spec.codec, spec.store_dtype) != ("raw", "fp32"):   # budget/storage.py
            from clbudget.budget.storage import allocate_stored
            from clbudget.methods.codecs import default_bytes_per_image, parse_codec
            return allocate_stored(
                spec.method, budget_bytes(spec.budget, shape.image_shape, shape.exemplar_dtype),
                shape,
                backbone=spec.backbone, config=AllocatorConfig(convention=spec.convention),
                codec=spec.codec, store_dtype=spec.store_dtype,
                bytes_per_image=default_bytes_per_image(parse_codec(spec.codec),
                                                        shape.image_shape))
        return allocate(spec.method, budget_bytes(spec.budget, shape.image_shape,
                                                  shape.exemplar_dtype), shape,
                        backbone=spec.backbone,
                        config=AllocatorConfig(convention=spec.convention))
    except BudgetError as e:
        return str(e)


def run_cells(specs: list[RunSpec], store, *, progress: bool = False, retry_failed: bool = False,
              on_row=None, executor=None, checkpoints=None,
              retry_smaller_batch: bool = False) -> dict:
    """Run every cell not yet in the store; one row per cell, failures recorded and skipped.

    Rows are written one transaction each as soon as a cell ends, so a kill loses at most
    the cell in flight.  KeyboardInterrupt stops the sweep without writing a row for it.
    `executor` runs the cells (executors.py: LocalExecutor, the default, or RayExecutor);
    whichever runs them, this process alone writes the store.
    Run locally, every cell is guarded (`CellGuard`): claimed, its status checked again right
    before it runs, resumed from `checkpoints` (a checkpoint.Checkpoints) and retried at half
    the batch size on CUDA out of memory when `retry_smaller_batch`.
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
    todo.sort(key=lambda s: str(stream_key(s)))
    t0 = time.perf_counter()

    guard = None
    if executor is None or isinstance(executor, LocalExecutor):
        guard = CellGuard(store, checkpoints, retry_failed, retry_smaller_batch)
        executor = LocalExecutor(cell_fn=guard.cell, threads=getattr(executor, "threads", None))

    def record(row):
        if guard:
            guard.check(row)
        store.add(row)
        if guard:
            guard.stored(row)
        done[row["status"]] += 1
        if on_row:
            on_row(row)

    try:
        executor.run(todo, record, progress=progress)
    except AbortSweep as e:
        raise e.error from None
    finally:
        if guard:
            guard.close()
            done["skipped"] += guard.skipped
            done["busy"] = guard.busy
    done["wall_s"] = time.perf_counter() - t0
    done["cells"] = len(specs)
    return done


class AbortSweep(BaseException):
    """Carries a user error (bad data, a checkpoint of another run) past the executor, which
    records every Exception as a failed cell: the sweep stops, run_cells re-raises `error`."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


class CellGuard:
    """What run_cells adds around each cell run in this process.

    - a claim (store.claim: a lock file per run, released by the kernel if we are killed) is
      taken before the cell's status is read again, and held until its row is stored, so two
      sweeps writing one store never train the same cell, and a cell another sweep finished
      meanwhile is skipped;
    - checkpoints: the cell resumes from its last finished task; deleted once its row is stored;
    - CUDA out of memory retried once at half the batch size (`retry_smaller_batch`);
    - bad input is not a result: a data error or a checkpoint of another run stops the sweep.
    """

    def __init__(self, store, checkpoints=None, retry_failed: bool = False,
                 retry_smaller_batch: bool = False):
        self.store, self.checkpoints = store, checkpoints
        self.retry_failed, self.retry_smaller_batch = retry_failed, retry_smaller_batch
        self.held: dict = {}       # run_key -> ExitStack holding its claim
        self.skipped = 0           # finished by another process since the sweep started
        self.busy = 0              # being run by another process

    def cell(self, spec: RunSpec, stream) -> dict | None:
        from clbudget.experiment.checkpoint import CheckpointError
        claim = contextlib.ExitStack()
        if not claim.enter_context(self.store.claim(spec.key)):
            claim.close()
            self.busy += 1
            return None
        status = self.store.status(spec.key)
        if status == "finished" or (status == "failed" and not self.retry_failed):
            claim.close()
            self.skipped += 1
            return None
        self.held[spec.key] = claim
        try:
            return run_guarded(spec, stream=stream, checkpoints=self.checkpoints,
                               retry_smaller_batch=self.retry_smaller_batch)
        except CheckpointError as e:
            raise AbortSweep(e) from e

    def check(self, row: dict) -> None:
        """A cell that failed on its data stops the sweep, unrecorded (fix the data, rerun)."""
        if row.get("status") == "failed" and str(row.get("reason", "")).startswith("DataError"):
            from clbudget.streams import DataError
            self.release(row["run_key"])
            raise AbortSweep(DataError(row["reason"].removeprefix("DataError: ")))

    def stored(self, row: dict) -> None:
        if self.checkpoints is not None:
            self.checkpoints.discard(row["run_key"], (row.get("retry") or {}).get("run_key"))
        self.release(row["run_key"])

    def release(self, run_key: str) -> None:
        claim = self.held.pop(run_key, None)
        if claim is not None:
            claim.close()

    def close(self) -> None:
        for key in list(self.held):
            self.release(key)


def recipe_warnings(cells) -> list[str]:
    """Warnings (train/recipes.py `recipe_warnings`) for cells that train differently."""
    from clbudget.train.recipes import recipe_warnings as warn
    items = []
    for c in cells:
        try:
            items.append((c.method, c.resolved_recipe()))
        except ValueError:        # an unknown method or recipe fails in its own cell
            continue
    return warn(items, "sweep")
