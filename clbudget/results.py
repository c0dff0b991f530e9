"""`clbudget.load_results(path)`: a results store as a pandas DataFrame, one row per run.

Columns (flat; missing values are NaN/None):
- identity: run_key, status, method, method_import_path (a user's method), reason (failed);
- the spec: spec_<field> for every RunSpec field (spec_dataset, spec_budget, spec_seed,
  spec_epochs, ...; method_options and glyphs_options as JSON text);
- allocation: budget_bytes, budgeted, backbone, expansion, n_exemplars, num_tasks;
- bytes held after the last task: ledger_strict_bytes, ledger_memo_bytes, communication_bytes;
- accuracy, as fractions in [0, 1] like the rows (the report prints %): last,
  average_incremental, forgetting, bwt, last_task_aware;
- compute: train_flops, train_images, inference_flops_per_image, wall_s, peak_memory_bytes;
- provenance: git_revision, device, device_name, torch, date_utc, command.
The full rows (accuracy matrices, ledger items, per-phase FLOPs) are
`clbudget.experiment.store.ResultStore(path).rows()`.
"""
from __future__ import annotations

import json
from pathlib import Path


def flat_record(row: dict) -> dict:
    """One result row as a flat record (see the module docstring)."""
    acc = row.get("accuracy") or {}
    taw = acc.get("task_aware") or {}
    alloc = row.get("allocation") or {}
    env = row.get("environment") or {}
    source = row.get("method_source") or {}
    rec = {"run_key": row.get("run_key"), "status": row.get("status", "finished"),
           "method": row.get("method"), "method_import_path": source.get("import_path"),
           "reason": row.get("reason")}
    for key, value in (row.get("spec") or {}).items():
        rec[f"spec_{key}"] = (json.dumps(value, sort_keys=True)
                              if isinstance(value, (dict, list)) else value)
    rec.update({
        "budget_bytes": row.get("budget_bytes"), "budgeted": row.get("budgeted"),
        "backbone": alloc.get("backbone"), "expansion": alloc.get("expansion"),
        "n_exemplars": alloc.get("n_exemplars"), "num_tasks": row.get("num_tasks"),
        "ledger_strict_bytes": (row.get("ledger") or {}).get("total_bytes"),
        "ledger_memo_bytes": (row.get("ledger_memo") or {}).get("total_bytes"),
        "communication_bytes": (row.get("cost_figures") or {}).get("communication_bytes"),
        "last": acc.get("last"), "average_incremental": acc.get("average_incremental"),
        "forgetting": acc.get("forgetting"), "bwt": acc.get("bwt"),
        "last_task_aware": taw.get("last"),
        "train_flops": row.get("train_flops"), "train_images": row.get("train_images"),
        "inference_flops_per_image": row.get("inference_flops_per_image"),
        "wall_s": row.get("wall_s"), "peak_memory_bytes": row.get("peak_memory_bytes"),
        "git_revision": env.get("git_revision"), "device": env.get("device"),
        "device_name": env.get("device_name"), "torch": env.get("torch"),
        "date_utc": env.get("date_utc"), "command": row.get("command")})
    return rec


def load_results(path, status: str | None = "finished"):
    """The runs of the results store at `path` (a sweep folder or its results.sqlite) as a
    DataFrame, one row per run; status="finished" (default), "failed", or None for all."""
    import pandas as pd
    from clbudget.experiment.store import ResultStore
    p = Path(path)
    if not ((p / "results.sqlite").is_file() if p.is_dir() else p.is_file()):
        raise FileNotFoundError(f"no results store at {path} (expected {p / 'results.sqlite'} "
                                f"or an SQLite file); run `clbudget sweep ... --out {path}`")
    store = ResultStore(p)
    try:
        records = [flat_record(r) for r in store.rows(status)]
    finally:
        store.close()
    return pd.DataFrame.from_records(records)
