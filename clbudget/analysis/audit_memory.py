"""Fairness audit, part 2 of 5: the arithmetic.  Bytes a claimed method keeps (its cost model
under both conventions), budgets that count as equal, memory held by stored runs, and the
seed comparison of two methods' accuracies (`stats.py`: paired t-test over common seeds,
else Welch's).
"""
from __future__ import annotations

from clbudget.analysis import rows as R
from clbudget.analysis.audit_claims import Claim, ClaimMethod, claim_bytes
from clbudget.analysis.stats import compare_seeds, seed_stats


# ---------------------------------------------------------------- claimed bytes

def method_memory(claim: Claim, m: ClaimMethod) -> dict:
    """Bytes the method keeps, from its cost model, under both conventions.

    Expanding / per-task methods are costed with `backbones` tasks' worth of modules (the
    stream's T by default); the rest with one network."""
    import clbudget.methods  # noqa: F401  (installs cost_model's loader of methods from outside)
    from clbudget.budget.costs import StreamShape, cost_model
    model = cost_model(m.name)
    T = m.backbones if (model.expanding or model.per_task) else claim.num_tasks
    shape = StreamShape(T, claim.image_shape, claim.num_classes)
    out = {}
    for convention in ("strict", "memo"):
        ledger = model.cost(shape, m.backbone, m.exemplars, convention)
        out[convention] = ledger.total_bytes
        out[f"{convention}_by_kind"] = ledger.by_kind()
    if m.memory is not None:
        out["reported_bytes"] = claim_bytes(claim, m.memory, f"{m.name}.memory")
    return out


# ---------------------------------------------------------------- stored runs

def budgets_equal(a, b, tolerance: float = 0.01) -> bool:
    return a == b or abs(a - b) <= tolerance * max(abs(a), abs(b))


def cell_memory(rows) -> dict:
    out = {}
    for convention in ("strict", "memo"):
        vals = [R.ledger_bytes(r, convention) for r in rows if R.ledger_bytes(r, convention)]
        out[convention] = round(sum(vals) / len(vals)) if vals else None
    return out


def held_mean_bytes(rows) -> int:
    vals = [R.held_bytes(r) for r in rows if R.held_bytes(r) is not None]
    return round(sum(vals) / len(vals)) if vals else 0


def per_seed_accuracy(rows, metric: str) -> dict:
    by_seed: dict = {}
    for r in rows:
        v = R.accuracy_pct(r, metric)
        if v is not None:
            by_seed.setdefault(r.get("seed"), []).append(v)
    return {s: sum(v) / len(v) for s, v in by_seed.items()}


def seed_comparison(rows_a, rows_b, metric: str) -> dict | None:
    a, b = per_seed_accuracy(rows_a, metric), per_seed_accuracy(rows_b, metric)
    if not a or not b:
        return None
    out = compare_seeds(a, b).to_dict()
    out.update(metric=metric, unit="pp", seeds_a=sorted(a, key=str), seeds_b=sorted(b, key=str),
               mean_a=seed_stats(a.values()).mean, mean_b=seed_stats(b.values()).mean)
    return out
