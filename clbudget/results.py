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
  phase_epochs (JSON {phase: epochs} of the phases that ran: `--epochs` moves the task phases
  only; a phase that did not run, such as CLR's pre-training under a weights file, is left
  out and the full row's `phases_not_run` says why);
- provenance: git_revision, device, device_name, torch, date_utc, command.
The full rows (accuracy matrices, ledger items, per-phase FLOPs) are
`clbudget.experiment.store.ResultStore(path).rows()`.
"""
from __future__ import annotations

from pathlib import Path


def load_results(path, status: str | None = "finished"):
    """The runs of the results store at `path` (a sweep folder or its results.sqlite) as a
    DataFrame, one row per run; status="finished" (default), "failed", or None for all."""
    import pandas as pd
    from clbudget.experiment.store import ResultStore, flat_record
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
