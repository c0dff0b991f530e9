"""Fairness audit, part 4 of 5: which stored rows a comparison reads, and the flags for what
differs between two methods' compared runs (seeds, epochs, class orders, backbones, stream,
convention, training recipe, memory held).
"""
from __future__ import annotations

import json

from clbudget.analysis import rows as R
from clbudget.analysis.audit_claims import Claim
from clbudget.analysis.audit_memory import budgets_equal
from clbudget.analysis.audit_render import mib_pair


# ---------------------------------------------------------------- rows of a claim

def claim_rows(claim: Claim, rows, method: str, budget_bytes: int) -> list[dict]:
    """Finished rows of `method` on the claim's stream and convention at `budget_bytes`
    (within the claim's tolerance; the closest budget if several)."""
    picked = []
    for r in R.finished(rows):
        s = R.spec_of(r)
        if (r.get("method") != method or s.get("dataset") != claim.dataset
                or s.get("init") != claim.init or s.get("inc") != claim.inc
                or (s.get("num_classes") or claim.num_classes) != claim.num_classes
                or s.get("convention", "strict") != claim.convention
                or r.get("budget_bytes") is None
                or not budgets_equal(r["budget_bytes"], budget_bytes, claim.tolerance)):
            continue
        picked.append(r)
    if not picked:
        return []
    best = min(abs(r["budget_bytes"] - budget_bytes) for r in picked)
    return [r for r in picked if abs(r["budget_bytes"] - budget_bytes) == best]


# ---------------------------------------------------------------- flags between runs

def sort_key(v):
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))


def distinct(rows, get) -> list:
    seen = {}
    for r in rows:
        v = get(r)
        seen.setdefault(json.dumps(v, sort_keys=True, default=str), v)
    return sorted(seen.values(), key=sort_key)


def show_values(values) -> str:
    return ", ".join("default" if v is None else
                     (json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v))
                     for v in values)


def order_protocol(row):
    """How a run's class order was chosen: the fixed order's seed (1993 by default), or
    "per-seed" / "unshuffled" (streams/protocol.py CLASS_ORDERS), whose orders depend on the
    run's seed or on nothing, so their class_order_seed is not compared."""
    protocol = R.spec_of(row).get("class_order", "fixed")
    return R.spec_of(row).get("class_order_seed") if protocol == "fixed" else protocol


def orders_by_seed(rows) -> dict:
    """seed -> the distinct class orders its runs used (JSON strings)."""
    out: dict = {}
    for r in rows:
        if r.get("class_order") is not None:
            seed = r.get("seed", R.spec_of(r).get("seed"))
            out.setdefault(seed, set()).add(json.dumps(r["class_order"]))
    return out


def orders_differ(rows_a, rows_b) -> bool:
    """Whether the two methods' runs trained on different class orders: compared seed by
    seed where both ran a seed (per-seed orders differ between seeds, not between methods);
    over all runs where they share no seed."""
    oa, ob = orders_by_seed(rows_a), orders_by_seed(rows_b)
    common = set(oa) & set(ob)
    if common:
        return any(oa[s] != ob[s] for s in common)
    return set().union(*oa.values()) != set().union(*ob.values()) if oa and ob else False


# (flag kind, what is compared, how to read it from a row)
FLAG_CHECKS = (
    ("seeds", "seeds", lambda r: r.get("seed", R.spec_of(r).get("seed"))),
    ("epochs", "epochs", lambda r: R.spec_of(r).get("epochs")),
    ("class_order", "class order seeds", order_protocol),
    ("backbone", "backbones", lambda r: (r.get("allocation") or {}).get("backbone")),
    ("stream", "streams", lambda r: {k: R.spec_of(r).get(k) for k in R.STREAM_FIELDS
                                     if k not in ("class_order_seed", "class_order")}),
    ("convention", "conventions", lambda r: R.spec_of(r).get("convention", "strict")),
)


def recipe_flags(rows_a, rows_b, name_a: str, name_b: str) -> list[dict]:
    """A "recipe" flag when the two methods' runs were trained with recipes that differ
    (train/recipes.py `training_differs`: precision, augmentation, normalisation or a
    shared phase's optimisation)."""
    from clbudget.train.recipes import training_differs
    ra = {R.recipe_label(r): R.recipe_of(r) for r in rows_a if R.recipe_of(r)}
    rb = {R.recipe_label(r): R.recipe_of(r) for r in rows_b if R.recipe_of(r)}
    if any(training_differs(a, b) for a in ra.values() for b in rb.values()):
        return [{"kind": "recipe", "message":
                 f"training recipes differ: {name_a} trained with {show_values(sorted(ra))}; "
                 f"{name_b} with {show_values(sorted(rb))} (equal bytes, unequal training; "
                 f"impose one with --recipe NAME)"}]
    return []


def run_flags(rows_a, rows_b, name_a: str, name_b: str, tolerance: float = 0.01) -> list[dict]:
    """What differs between two methods' compared runs: seeds, epochs, class orders,
    backbones, stream, convention, and memory held (ledger totals beyond `tolerance`).
    Each flag is {"kind", "message"}."""
    flags = []
    for kind, what, get in FLAG_CHECKS:
        va, vb = distinct(rows_a, get), distinct(rows_b, get)
        if va != vb:
            msg = f"{what} differ: {name_a} ran {show_values(va)}; {name_b} ran {show_values(vb)}"
            if kind == "backbone":
                ea = distinct(rows_a, lambda r: (r.get("allocation") or {}).get("expansion"))
                eb = distinct(rows_b, lambda r: (r.get("allocation") or {}).get("expansion"))
                msg += f" (expansion x{show_values(ea)} vs x{show_values(eb)})"
            flags.append({"kind": kind, "message": msg})
    if orders_differ(rows_a, rows_b) and not any(f["kind"] == "class_order" for f in flags):
        flags.append({"kind": "class_order", "message":
                      f"class orders differ between {name_a} and {name_b} runs of the same "
                      f"seeds although their class order protocols agree"})
    flags += recipe_flags(rows_a, rows_b, name_a, name_b)
    ha = [R.held_bytes(r) for r in rows_a if R.held_bytes(r) is not None]
    hb = [R.held_bytes(r) for r in rows_b if R.held_bytes(r) is not None]
    if ha and hb:
        ma, mb = round(sum(ha) / len(ha)), round(sum(hb) / len(hb))
        if not budgets_equal(ma, mb, tolerance):
            sa, sb = mib_pair(ma, mb)
            flags.append({"kind": "memory", "message":
                          f"ledger totals differ by more than {tolerance:.0%}: {name_a} holds "
                          f"{sa} ({ma:,} B), {name_b} holds {sb} ({mb:,} B)"})
    return flags
