"""Fairness audit: is "method A beats B" still true when both hold the same bytes?

Two inputs.
1. A **claim file** (YAML or JSON): the methods a paper compares, the accuracy it reports and
   what each really kept (backbone, number of backbones, exemplars).  The audit computes each
   method's bytes with the cost models (`budget/costs.py`) under both conventions, says
   whether the memories were aligned, and reads the comparison at the aligned budget (the
   larger of each pair's two memories, or `budget`) from a results store, or names the missing
   cells, the `clbudget sweep` command that produces them, and runs them with `--run`.
2. A **results store** alone: every pair of methods in it, at every budget both ran; pairs with
   no common budget are compared at their largest budgets, flagged as unequal memory.
Both flag compared runs whose seeds, epochs, class orders or backbones differ, and budgets
whose ledger totals differ by more than `tolerance` (default 1%).

The pieces, in reading order: audit_claims.py (parsing), audit_memory.py (arithmetic),
audit_render.py (verdict wording, text), audit_pairing.py (rows compared, flags),
audit_commands.py (missing cells as commands and runs).  This module holds the two
audits and `run_audit`, and re-exports the pieces' names, so
`from clbudget.analysis.audit import ...` keeps working (issue 15).
"""
from __future__ import annotations

import itertools
import json

from clbudget.analysis import rows as R
from clbudget.analysis.audit_claims import (CLAIM_KEYS, DEFAULT_SEEDS, METHOD_KEYS,  # noqa: F401
                                            METRICS, STREAM_KEYS, Claim, ClaimError,
                                            ClaimMethod, claim_budget_bytes, claim_bytes,
                                            load_claim, parse_claim)
from clbudget.analysis.audit_commands import (claim_specs, claim_sweep_commands,  # noqa: F401
                                              run_missing_cells, store_specs,
                                              store_sweep_commands)
from clbudget.analysis.audit_memory import (budgets_equal, cell_memory,  # noqa: F401
                                            held_mean_bytes, method_memory, per_seed_accuracy,
                                            seed_comparison)
from clbudget.analysis.audit_pairing import (FLAG_CHECKS, claim_rows, distinct,  # noqa: F401
                                             recipe_flags, run_flags, show_values, sort_key)
from clbudget.analysis.audit_render import (aligned_text, mib_pair, render_audit,  # noqa: F401
                                            verdict, verdict_mib)
from clbudget.analysis.compute import class_order_protocol, class_order_scope
from clbudget.streams.catalog import nearest


# ---------------------------------------------------------------- claim audit

def audit_claim(claim: Claim, rows=(), *, budget_bytes: int | None = None,
                store: str | None = None) -> dict:
    """Audit a claim against result rows (possibly none).  Pure: returns the audit as data.

    Pairs are ordered by reported accuracy (higher first, ties in file order), so the
    headline is the claimed lead.  `store` only fills the suggested sweep command."""
    if budget_bytes is None and claim.budget is not None:
        budget_bytes = claim_bytes(claim, claim.budget, "budget")
    memory = {m.name: method_memory(claim, m) for m in claim.methods}
    conv = claim.convention
    order = sorted(claim.methods, key=lambda m: -m.accuracy_pct)
    pairs, missing_cells = [], {}
    for a, b in itertools.combinations(order, 2):
        ma, mb = memory[a.name][conv], memory[b.name][conv]
        aligned = budget_bytes or max(ma, mb)
        rows_a, rows_b = (claim_rows(claim, rows, m.name, aligned) for m in (a, b))
        missing = []
        for m, rs in ((a, rows_a), (b, rows_b)):
            have = {r.get("seed") for r in rs}
            need = [s for s in claim.seeds if s not in have]
            if need:
                missing.append({"method": m.name, "backbone": m.backbone, "budget_bytes": aligned,
                                "seeds": need})
                cell = missing_cells.setdefault((m.name, m.backbone, aligned), set())
                cell.update(need)
        comparison = seed_comparison(rows_a, rows_b, claim.metric)
        flags = run_flags(rows_a, rows_b, a.label, b.label, claim.tolerance)
        for m, rs in ((a, rows_a), (b, rows_b)):
            used = sorted({(r.get("allocation") or {}).get("backbone") for r in rs}, key=str)
            if rs and used != [m.backbone]:
                flags.append({"kind": "backbone", "message":
                              f"{m.label}: the claim uses {m.backbone}, the stored runs "
                              f"{', '.join(map(str, used))}"})
            orders = distinct(rs, lambda r: R.spec_of(r).get("class_order_seed"))
            if rs and orders != [claim.class_order_seed]:
                flags.append({"kind": "class_order", "message":
                              f"{m.label}: the claim's class order seed is "
                              f"{claim.class_order_seed}, the stored runs used {show_values(orders)}"})
            epochs = distinct(rs, lambda r: R.spec_of(r).get("epochs"))
            if rs and claim.epochs is not None and epochs != [claim.epochs]:
                flags.append({"kind": "epochs", "message":
                              f"{m.label}: the claim asks for {claim.epochs} epochs, the stored "
                              f"runs used {show_values(epochs)}"})
        for m in (a, b):
            rep = memory[m.name].get("reported_bytes")
            if rep is not None and not budgets_equal(rep, memory[m.name][conv], claim.tolerance):
                flags.append({"kind": "reported_memory", "message":
                              f"{m.label}: the paper reports {R.format_mib(rep, 2)}, the cost "
                              f"model gives {R.format_mib(memory[m.name][conv], 2)} "
                              f"({conv} convention)"})
        miss_text = "; ".join(f"{_label(claim, c['method'])} seeds "
                              f"{','.join(map(str, c['seeds']))}" for c in missing)
        pairs.append({
            "a": a.name, "b": b.name, "label_a": a.label, "label_b": b.label,
            "reported_pp": {"a": a.accuracy_pct, "b": b.accuracy_pct,
                            "diff": a.accuracy_pct - b.accuracy_pct},
            "memory_bytes": {"a": {k: memory[a.name][k] for k in ("strict", "memo")},
                             "b": {k: memory[b.name][k] for k in ("strict", "memo")}},
            "convention": conv, "aligned": budgets_equal(ma, mb, claim.tolerance),
            "aligned_budget_bytes": aligned, "comparison": comparison,
            "runs": {"a": [r.get("run_key") for r in rows_a],
                     "b": [r.get("run_key") for r in rows_b]},
            "missing": missing, "flags": flags,
            "class_order": class_order_scope(map(class_order_protocol, rows_a + rows_b)),
            "verdict": verdict(a.label, b.label, aligned_bytes=aligned, comparison=comparison,
                               headline_pp=a.accuracy_pct - b.accuracy_pct, memory_a=ma,
                               memory_b=mb, tolerance=claim.tolerance, missing=miss_text),
        })
    cells = [{"method": m, "backbone": bb, "budget_bytes": bud, "seeds": sorted(seeds)}
             for (m, bb, bud), seeds in sorted(missing_cells.items())]
    return {"mode": "claim", "claim": claim.to_dict(), "convention": conv, "metric": claim.metric,
            "methods": [{"name": m.name, "label": m.label, "reported_accuracy_pct": m.accuracy_pct,
                         "backbone": m.backbone, "backbones": m.backbones,
                         "exemplars": m.exemplars, "memory_bytes": memory[m.name]}
                        for m in claim.methods],
            "pairs": pairs, "missing_cells": cells,
            "sweep_commands": claim_sweep_commands(claim, cells, store)}


def _label(claim: Claim, name: str) -> str:
    return next((m.label for m in claim.methods if m.name == name), name)


# ---------------------------------------------------------------- store audit

def _protocol(row) -> str:
    s = R.spec_of(row)
    return json.dumps({k: s.get(k) for k in ("dataset", "init", "inc", "num_classes")},
                      sort_keys=True, default=str)


def audit_rows(rows, *, metric: str = "last", tolerance: float = 0.01,
               store: str | None = None) -> dict:
    """Audit every pair of methods in a store.  Pure: returns the audit as data.

    Within each protocol (dataset, init, inc, classes): for each pair, a comparison at every
    budget both ran (budgets within `tolerance` match); a pair with no common budget is
    compared at each method's largest budget (headline, unequal memory) and the aligned cells
    at the larger one are listed as missing."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)} "
                         f"(nearest: {nearest(metric, METRICS)})")
    done = [r for r in R.finished(rows) if r.get("budgeted", True)
            and r.get("budget_bytes") is not None]
    series: dict[tuple, dict] = {}   # (protocol, method, variant) -> {budget: [rows]}
    for r in done:
        key = (_protocol(r), r.get("method"), R.variant_key(r))
        series.setdefault(key, {}).setdefault(r["budget_bytes"], []).append(r)
    variants: dict[tuple, int] = {}
    for p, m, _ in series:
        variants[(p, m)] = variants.get((p, m), 0) + 1

    def label(key):
        p, m, _ = key
        any_row = next(iter(series[key].values()))[0]
        return R.display_name(m) + (R.variant_suffix(any_row) if variants[(p, m)] > 1 else "")

    order = list(R.DISPLAY_NAMES)
    keys = sorted(series, key=lambda k: (k[0], order.index(k[1]) if k[1] in order else 99,
                                         k[1], k[2]))
    pairs, missing_cells = [], []
    for ka, kb in itertools.combinations(keys, 2):
        if ka[0] != kb[0]:
            continue
        sa, sb = series[ka], series[kb]
        common = [(ba, bb) for ba in sorted(sa) for bb in sorted(sb)
                  if budgets_equal(ba, bb, tolerance)]
        la, lb = label(ka), label(kb)
        if common:
            for ba, bb in common:
                comp = seed_comparison(sa[ba], sb[bb], metric)
                first, second, ra, rb = la, lb, sa[ba], sb[bb]
                if comp and R.finite(comp["diff"]) and comp["diff"] < 0:  # leader first
                    first, second, ra, rb = lb, la, sb[bb], sa[ba]
                    comp = seed_comparison(ra, rb, metric)
                pairs.append(_store_pair(first, second, ra, rb, max(ba, bb), comp, tolerance,
                                         headline=None))
            continue
        # no common budget: each at its largest budget, the leader first
        ends = [{"label": lab, "method": k[1], "budget": max(sr), "rows": sr[max(sr)]}
                for lab, k, sr in ((la, ka, sa), (lb, kb, sb))]
        accs = [per_seed_accuracy(e["rows"], metric) for e in ends]
        if not all(accs):
            continue
        means = [sum(acc.values()) / len(acc) for acc in accs]
        if means[1] > means[0]:
            ends.reverse()
            means.reverse()
        first, second = ends
        aligned = max(first["budget"], second["budget"])
        seeds = sorted({r.get("seed") for e in ends for r in e["rows"]}, key=sort_key)
        miss = [{"method": e["method"], "label": e["label"], "budget_bytes": aligned,
                 "seeds": seeds, "spec": R.spec_of(e["rows"][0])}
                for e in ends if e["budget"] != aligned]
        for c in miss:  # one cell per (method configuration, budget), seeds merged
            ident = lambda cell: (cell["method"], cell["budget_bytes"],
                                  R.variant_key({"spec": cell["spec"]}),
                                  R.setting_key({"spec": cell["spec"]}))
            same = next((m for m in missing_cells if ident(m) == ident(c)), None)
            if same is None:
                missing_cells.append(dict(c))
            else:
                same["seeds"] = sorted(set(same["seeds"]) | set(c["seeds"]), key=sort_key)
        miss_text = "; ".join(f"{c['label']} at {verdict_mib(aligned)} seeds "
                              f"{','.join(map(str, c['seeds']))}" for c in miss)
        pair = _store_pair(first["label"], second["label"], first["rows"], second["rows"],
                           aligned, None, tolerance, headline=means[0] - means[1],
                           missing_text=miss_text,
                           memory=(held_mean_bytes(first["rows"]), held_mean_bytes(second["rows"])))
        pair["missing"] = [{k: v for k, v in c.items() if k != "spec"} for c in miss]
        pairs.append(pair)
    return {"mode": "store", "metric": metric, "tolerance": tolerance, "pairs": pairs,
            "missing_cells": [{k: v for k, v in c.items() if k != "spec"} for c in missing_cells],
            "sweep_commands": store_sweep_commands(missing_cells, store),
            "_missing_specs": missing_cells}


def _store_pair(a, b, rows_a, rows_b, aligned, comp, tolerance, *, headline,
                missing_text="", memory=None) -> dict:
    ma, mb = memory if memory else (None, None)
    return {
        "a": rows_a[0].get("method"), "b": rows_b[0].get("method"), "label_a": a, "label_b": b,
        "budget_bytes": {"a": rows_a[0].get("budget_bytes"), "b": rows_b[0].get("budget_bytes")},
        "memory_bytes": {"a": cell_memory(rows_a), "b": cell_memory(rows_b)},
        "aligned": headline is None, "aligned_budget_bytes": aligned, "comparison": comp,
        "observed_lead_pp": headline,
        "runs": {"a": [r.get("run_key") for r in rows_a], "b": [r.get("run_key") for r in rows_b]},
        "missing": [], "flags": run_flags(rows_a, rows_b, a, b, tolerance),
        "class_order": class_order_scope(map(class_order_protocol, list(rows_a) + list(rows_b))),
        "verdict": verdict(a, b, aligned_bytes=aligned, comparison=comp, headline_pp=headline,
                           memory_a=ma, memory_b=mb, tolerance=tolerance, missing=missing_text),
    }


# ---------------------------------------------------------------- both

def run_audit(store=None, claim: Claim | None = None, *, run: bool = False,
              budget_bytes: int | None = None, metric: str = "last", tolerance: float = 0.01,
              device: str = "auto", data_root: str | None = None, epochs: int | None = None,
              progress: bool = False) -> dict:
    """Audit a claim and/or a store (a ResultStore); with `run`, have the experiment layer run
    the missing cells into the store first, then audit again."""
    location = None
    if store is not None:  # what `clbudget sweep --out` takes for this store
        location = str(store.path.parent if store.path.name == "results.sqlite" else store.path)

    def once(rows):
        if claim is not None:
            return audit_claim(claim, rows, budget_bytes=budget_bytes, store=location)
        return audit_rows(rows, metric=metric, tolerance=tolerance, store=location)

    rows = store.rows() if store is not None else []
    result = once(rows)
    ran = {}
    if run and result["missing_cells"]:
        if store is None:
            raise ValueError("--run needs --store DIR: the results store to write the runs to")
        specs = (claim_specs(claim, result["missing_cells"], device=device, data_root=data_root,
                             epochs=epochs) if claim is not None else store_specs(result))
        ran = run_missing_cells(specs, store, progress=progress) or {}
        result = once(store.rows())
        result["ran"] = ran if isinstance(ran, dict) else {"result": str(ran)}
    result.pop("_missing_specs", None)
    return result
