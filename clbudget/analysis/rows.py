"""Figures of one result row, and how rows group: pure functions of `run_experiment` rows.

Units: bytes are integers; accuracies leave here in percent (rows store fractions in [0, 1]);
MiB (2**20 bytes) only for axes and tables.

- Total cost (BMC, Fostiropoulos et al. 2023): communication cost + memory cost =
  `cost_figures.communication_bytes` (0 for non-distributed methods) + the strict ledger total.
- Cost-accuracy (BMC): final mean accuracy / total cost, in **% per MiB**; the final mean
  accuracy is the last accuracy on all seen classes (`accuracy.last`).
- Relative time (BMC): wall time / finetune's wall time on the same stream, device and epochs,
  same seed when such a finetune row exists, else the mean over its seeds.  1.0 = as fast as
  finetuning; a dimensionless ratio ("x finetune").  A row whose cost_figures carry a
  `critical_path_s` (BMC: slowest expert of each step + its consolidation, what one device per
  expert takes) is timed on its critical path: its measured training time (sum of
  `task_wall_s`) is replaced by `critical_path_s`, evaluation and the rest kept
  (`timed_wall_s`; labelled "critical path").
"""
from __future__ import annotations

import hashlib
import json
import math

MIB = 2 ** 20
NAN = float("nan")

DISPLAY_NAMES = {"finetune": "Finetune", "joint": "Joint", "replay": "Replay", "icarl": "iCaRL",
                 "wa": "WA", "lwf": "LwF", "ewc": "EWC", "der": "DER", "derpp": "DER++",
                 "memo": "MEMO", "memo2": "MEMO-2", "bmc": "BMC", "clr": "CLR", "mind": "MIND"}

# What makes two runs the same stream, and the same experimental setting.
STREAM_FIELDS = ("dataset", "init", "inc", "num_classes", "max_per_class", "max_test_per_class",
                 "class_order_seed", "class_order", "glyphs_options")
# a spec field's value in rows written before the field existed
FIELD_DEFAULTS = {"class_order": "fixed"}
SETTING_FIELDS = STREAM_FIELDS + ("epochs", "batch_size", "lr", "convention")

# Ledger kinds in the three bars of the breakdown figure.
BREAKDOWN = {"model": ("params", "buffers", "per_task"),
             "exemplars": ("exemplars", "exemplar_aux"),
             "other": ("old_model", "class_stats", "importance", "masks")}

ACCURACY_METRICS = ("last", "average_incremental", "forgetting", "forgetting_chaudhry",
                    "forgetting_clipped", "bwt")


def display_name(method: str) -> str:
    return DISPLAY_NAMES.get(method, method)


def mib(n_bytes) -> float:
    return NAN if n_bytes is None else n_bytes / MIB


def format_mib(n_bytes, digits: int = 1) -> str:
    """'18.5 MiB' (MiB = 2**20 bytes; MEMO's tables say MB for the same unit)."""
    return f"{n_bytes / MIB:.{digits}f} MiB"


def finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def finished(rows) -> list[dict]:
    return [r for r in rows if r.get("status", "finished") == "finished"]


def failed(rows) -> list[dict]:
    return [r for r in rows if r.get("status") == "failed"]


def spec_of(row) -> dict:
    return row.get("spec") or {}


def _key(row, fields) -> str:
    spec = spec_of(row)
    return json.dumps({f: spec.get(f, FIELD_DEFAULTS.get(f)) for f in fields}, sort_keys=True,
                      default=str)


def stream_key(row) -> str:
    return _key(row, STREAM_FIELDS)


def setting_key(row) -> str:
    return _key(row, SETTING_FIELDS)


def setting_label(row) -> str:
    """Human name of a row's setting: 'cifar100 B0Inc10', extras only when not default."""
    s = spec_of(row)
    parts = [f"{s.get('dataset', '?')} B{s.get('init', '?')}Inc{s.get('inc', '?')}"]
    extras = [f"{s[k]} {name if s[k] != 1 else one}"
              for k, name, one in (("num_classes", "classes", "class"),
                                   ("epochs", "epochs", "epoch"),
                                   ("max_per_class", "train/class", "train/class"))
              if s.get(k) is not None]
    if s.get("class_order", "fixed") != "fixed":
        extras.append(f"{s['class_order']} class order")
    elif s.get("class_order_seed", 1993) != 1993:
        extras.append(f"order {s['class_order_seed']}")
    if s.get("convention", "strict") != "strict":
        extras.append(f"{s['convention']} convention")
    return parts[0] + (f" ({', '.join(extras)})" if extras else "")


def variant_key(row) -> str:
    """What distinguishes two configurations of one method: fixed backbone, method options."""
    s = spec_of(row)
    return json.dumps({"backbone": s.get("backbone"), "options": s.get("method_options") or {}},
                      sort_keys=True, default=str)


def variant_suffix(row) -> str:
    s = spec_of(row)
    parts = ([f"backbone={s['backbone']}"] if s.get("backbone") else []) + \
        [f"{k}={v}" for k, v in sorted((s.get("method_options") or {}).items())]
    if not parts:
        return ""
    text = ", ".join(parts)
    if len(text) > 40:
        text = "opts " + hashlib.sha256(text.encode()).hexdigest()[:6]
    return f" [{text}]"


def accuracy_pct(row, metric: str = "last", task_aware: bool = False):
    """An accuracy figure of the row in percent (percentage points for forgetting / BWT)."""
    if metric not in ACCURACY_METRICS:
        from clbudget.streams.catalog import nearest
        raise ValueError(f"unknown accuracy metric {metric!r}; use one of "
                         f"{', '.join(ACCURACY_METRICS)} "
                         f"(nearest: {nearest(metric, ACCURACY_METRICS)})")
    acc = row.get("accuracy") or {}
    if task_aware:
        acc = acc.get("task_aware") or {}
    value = acc.get(metric)
    if value is None and metric.startswith("forgetting_") and acc.get("matrix"):
        value = _forgetting_of_matrix(acc["matrix"], metric)   # a row stored before both were
    return None if value is None else 100.0 * value


def _forgetting_of_matrix(matrix, metric: str):
    from clbudget.experiment import metrics
    return {"forgetting_chaudhry": metrics.forgetting_chaudhry,
            "forgetting_clipped": metrics.forgetting_clipped}[metric](matrix)


def ledger_of(row, convention: str = "strict") -> dict:
    return (row.get("ledger") if convention == "strict" else row.get("ledger_memo")) or {}


def ledger_bytes(row, convention: str = "strict"):
    return ledger_of(row, convention).get("total_bytes")


def held_bytes(row):
    """Bytes held under the convention the run's budget bound (spec.convention)."""
    return ledger_bytes(row, spec_of(row).get("convention", "strict"))


def communication_bytes(row) -> int:
    return int((row.get("cost_figures") or {}).get("communication_bytes") or 0)


def total_cost_bytes(row):
    """BMC's total cost: strict ledger total + communication bytes."""
    held = ledger_bytes(row, "strict")
    return None if held is None else held + communication_bytes(row)


def cost_accuracy(row, metric: str = "last"):
    """BMC's cost-accuracy in % per MiB: final mean accuracy / total cost."""
    acc, cost = accuracy_pct(row, metric), total_cost_bytes(row)
    if acc is None or not cost:
        return None
    return acc / (cost / MIB)


def ledger_breakdown(row, convention: str = "strict") -> dict:
    """Bytes per bar of the breakdown figure: model / exemplars / other (see BREAKDOWN)."""
    by_kind = ledger_of(row, convention).get("by_kind") or {}
    out = {bar: sum(int(by_kind.get(k, 0)) for k in kinds) for bar, kinds in BREAKDOWN.items()}
    known = {k for kinds in BREAKDOWN.values() for k in kinds}
    out["other"] += sum(int(v) for k, v in by_kind.items() if k not in known)
    return out


def device_of(row) -> str:
    env = row.get("environment") or {}
    return str(env.get("device_name") or env.get("device") or spec_of(row).get("device", "?"))


def _time_key(row) -> tuple:
    return stream_key(row), spec_of(row).get("epochs"), device_of(row)


def timed_wall_s(row):
    """The wall time relative time divides: `wall_s`, or for a row with a critical path (BMC)
    wall_s - its training time (sum of task_wall_s) + its critical path."""
    wall = row.get("wall_s")
    critical = (row.get("cost_figures") or {}).get("critical_path_s")
    if critical is None or not finite(wall):
        return wall
    return wall - sum(row.get("task_wall_s") or []) + critical


def time_basis(row) -> str:
    return "critical path" if (row.get("cost_figures") or {}).get("critical_path_s") is not None \
        else "wall time"


def evaluation_suffix(row) -> str:
    """A label's note for a row headlined by task-aware accuracy (CLR: the paper's task oracle),
    with its backbone's provenance where the row records one."""
    acc = row.get("accuracy") or {}
    if acc.get("setting") != "task-aware":
        return ""
    figures = row.get("cost_figures") or {}
    pre, label = figures.get("pretrain"), figures.get("backbone_provenance")
    source = (f"; backbone: {label}" if label else
              f"; backbone: {pre.get('source')}" if isinstance(pre, dict) else "")
    return f" (task-aware{source})"


def relative_times(rows) -> dict:
    """{run_key: wall_s / finetune's wall_s} (None where no finetune reference exists).

    The reference is the finetune rows on the same stream, epochs and device: the one(s) with
    the same seed if any, else the mean over seeds of the per-seed means.
    """
    refs: dict[tuple, dict] = {}
    for r in finished(rows):
        if r.get("method") == "finetune" and finite(r.get("wall_s")):
            refs.setdefault(_time_key(r), {}).setdefault(r.get("seed"), []).append(r["wall_s"])
    out = {}
    for r in finished(rows):
        by_seed = refs.get(_time_key(r))
        wall = timed_wall_s(r)
        if not by_seed or not finite(wall):
            out[r["run_key"]] = None
            continue
        if r.get("seed") in by_seed:
            ref = sum(by_seed[r["seed"]]) / len(by_seed[r["seed"]])
        else:
            means = [sum(v) / len(v) for v in by_seed.values()]
            ref = sum(means) / len(means)
        out[r["run_key"]] = wall / ref if ref > 0 else None
    return out


def recipe_of(row) -> dict:
    """The training recipe a run recorded (name, phases, precision, fingerprint...); {} for
    rows written before recipes were recorded."""
    return row.get("recipe") or {}


def recipe_label(row) -> str:
    """'bmc [3f2a...; first 2, later 2, consolidation 100 ep]': the recipe's name,
    fingerprint and each phase's epochs ('n/a' when unrecorded)."""
    r = recipe_of(row)
    if not r:
        return "n/a"
    epochs = ", ".join(f"{p} {c.get('epochs')}" for p, c in (r.get("phases") or {}).items())
    return f"{r.get('name', '?')} [{r.get('fingerprint', '?')}" + (
        f"; {epochs} ep]" if epochs else "]")
