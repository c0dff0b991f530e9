"""The claims atlas: a folder of published "A beats B" claims audited at equal bytes.

`clbudget atlas DIR` reads every claim file of DIR (the schema, the contract, is in
atlas_claims.py and docs/atlas.md), prices every method under both conventions, and reports,
claim by claim: each method's bytes, the memory ratio of the winner to the loser, whether the
two were compared at equal memory (ratio within 1 +- tolerance, default 10%), what the cheaper
method could hold at the costlier one's bytes, and — for claims clbudget can run — whether a
results store holds the aligned cells and the `clbudget sweep` command that measures them.
Claims named by a scaled-down setting (DIR/scaled/*.yaml) are re-run small at the claim's
memory ratio and at equal bytes, and get a measured verdict (atlas_scaled.py).

The pieces, in reading order: atlas_claims.py (parsing, validation), atlas_shapes.py (datasets
and backbones), atlas_prices.py (byte models), this module (the audit as data, pure),
atlas_scaled.py (scaled-down settings and their verdicts, pure), atlas_render.py (Markdown,
HTML, CSV and the figure; the only one that writes files).

The claim's headline pair is the winner (its first method) against the runner-up (the other
method with the highest reported accuracy, the first listed on a tie): its gain (winner minus
runner-up, pp) and memory ratio (winner's bytes / runner-up's) are the claim's point in the
figure and its row in the CSV.  Every other pair with the winner is in the tables.
"""
from __future__ import annotations

import statistics

from clbudget.analysis import rows as R
from clbudget.analysis.atlas_claims import (AtlasClaim, AtlasError, AtlasMethod,  # noqa: F401
                                            citation, load_atlas, parse_atlas_claim, runner_up)
from clbudget.analysis.atlas_prices import Price, price_method, priced_only
from clbudget.analysis.atlas_shapes import BACKBONES, atlas_backbone_stats, same_network_at

DEFAULT_TOLERANCE = 0.1
CONVENTIONS = ("strict", "memo")
LABEL_BYTES = 2          # int16 exemplar labels (budget/costs.py LABEL_DTYPE), strict only


def aligned(ratio: float, tolerance: float) -> bool:
    """Equal memory: the ratio within 1 +- tolerance."""
    return abs(ratio - 1) <= tolerance


# ---------------------------------------------------------------- pairs

def _count(x: float) -> str:
    """1 decimal from 1 up, 2 significant digits below (0.0012 backbones, not 0.0)."""
    return f"{x:.1f}" if x >= 1 else f"{x:.2g}"


def exemplar_bytes(claim: AtlasClaim, convention: str) -> int:
    """One stored exemplar: its values at their dtype (uint8 pixels, a feature stream's
    float32), + an int16 label (strict)."""
    from clbudget.analysis.atlas_shapes import dataset_shape
    return dataset_shape(claim.dataset).exemplar_bytes + (LABEL_BYTES if convention == "strict"
                                                         else 0)


def backbone_bytes(claim: AtlasClaim, m: AtlasMethod, convention: str) -> int:
    """One of the method's backbones: parameters and buffers (strict), parameters (memo)."""
    s = atlas_backbone_stats(m.backbone, claim.image_shape)
    return s.state_bytes if convention == "strict" else s.params_bytes


def pair_record(claim: AtlasClaim, w: AtlasMethod, l: AtlasMethod, prices: dict,
                convention: str, tolerance: float) -> dict:
    """The winner `w` against the loser `l`: bytes, ratios, alignment, what the cheaper one
    could hold at the costlier one's bytes."""
    b = {c: (prices[w.index].bytes(c), prices[l.index].bytes(c)) for c in CONVENTIONS}
    ratio = {c: b[c][0] / b[c][1] for c in CONVENTIONS}
    bw, bl = b[convention]
    cheap, dear = (l, w) if bl < bw else (w, l)
    extra = abs(bw - bl)
    ex = extra // exemplar_bytes(claim, convention)
    bb = extra / backbone_bytes(claim, cheap, convention)
    if extra:
        hold = (f"{cheap.label} could hold {ex:,} more exemplars, or {_count(bb)} more "
                f"{cheap.backbone} backbones, at {dear.label}'s {R.format_mib(max(bw, bl), 2)}")
    else:
        hold = "both keep the same bytes"
    is_aligned = aligned(ratio[convention], tolerance)
    return {"winner": w.index, "loser": l.index, "winner_label": w.label, "loser_label": l.label,
            "gain_pp": round(w.accuracy - l.accuracy, 6),
            "bytes": {c: {"winner": b[c][0], "loser": b[c][1]} for c in CONVENTIONS},
            "ratio": ratio, "convention": convention, "aligned": is_aligned,
            "aligned_text": (f"{'aligned' if is_aligned else 'NOT aligned'}: ratio "
                             f"{ratio[convention]:.2f} ({'within' if is_aligned else 'outside'} "
                             f"1 \u00b1 {tolerance:g})"),
            "cheaper": cheap.index, "extra_bytes": extra, "extra_exemplars": ex,
            "extra_backbones": bb, "hold_text": hold}


# ---------------------------------------------------------------- runnable claims

def not_runnable_reason(claim: AtlasClaim, pair: tuple[AtlasMethod, AtlasMethod]) -> str:
    """Why `clbudget sweep` cannot measure this pair as the source ran it ("" if it can)."""
    only = [m.name for m in pair if priced_only(m.name)]
    if only:
        return f"priced, not runnable here: {', '.join(dict.fromkeys(only))} priced only"
    if not claim.loadable:
        return f"priced, not runnable here: clbudget does not load {claim.dataset}"
    if pair[0].name == pair[1].name:
        return "priced, not runnable here: two variants of one method"
    if any(m.name == "joint" for m in pair):
        return "priced, not runnable here: joint is an upper bound clbudget never budgets"
    for m in pair:
        if not m.backbone_stated:
            return (f"priced, not runnable here: the source does not state {m.label}'s "
                    f"backbone (priced as {m.backbone})")
        if not same_network_at(m.backbone, claim.image_shape):
            return (f"priced, not runnable here: clbudget builds no {m.backbone} for "
                    f"{'x'.join(map(str, claim.image_shape))} images as the source ran it")
    return ""


def _audit_claim(claim: AtlasClaim, pair, convention: str):
    """The pair as a `clbudget audit` claim (analysis/audit_claims.py)."""
    from clbudget.analysis.atlas_prices import own_stream
    from clbudget.analysis.audit_claims import Claim, ClaimMethod
    methods = []
    for m in pair:
        model, _ = own_stream(claim, m)
        methods.append(ClaimMethod(m.name, m.accuracy, BACKBONES[m.backbone].clbudget_name,
                                   m.keeps.backbones if (model.expanding or model.per_task) else 1,
                                   m.keeps.n_exemplars(claim.num_classes), m.label))
    return Claim(claim.dataset, claim.init, claim.inc, claim.num_classes, claim.image_shape,
                 tuple(methods), convention=convention, metric=claim.metric, tolerance=0.01,
                 title=claim.id, source=citation(claim))


def measure(claim: AtlasClaim, pair, convention: str, rows, store: str | None) -> dict:
    """The store's cells for the pair at the aligned budget (the larger of the two memories,
    `clbudget audit`'s pairing) and the sweep command that measures them."""
    from clbudget.analysis.audit import audit_claim
    from clbudget.analysis.audit_commands import claim_sweep_commands
    aclaim = _audit_claim(claim, pair, convention)
    result = audit_claim(aclaim, rows or [], store=store)
    [p] = result["pairs"]
    budget = p["aligned_budget_bytes"]
    cells = [{"method": m.name, "backbone": m.backbone, "budget_bytes": budget,
              "seeds": list(aclaim.seeds)} for m in aclaim.methods]
    if rows is None:
        status, text = "no store", "no store given (--store DIR)"
    elif p["comparison"] is None:
        status, text = "not measured", p["verdict"]
    else:
        status, text = ("measured" if not p["missing"] else "partly measured"), p["verdict"]
    return {"status": status, "text": text, "aligned_budget_bytes": budget,
            "comparison": p["comparison"], "missing": p["missing"],
            "flags": [f["message"] for f in p["flags"]],   # what differs between the runs
            "sweep_command": " && ".join(claim_sweep_commands(aclaim, cells, store))}


# ---------------------------------------------------------------- a claim, the atlas

def _method_record(claim: AtlasClaim, m: AtlasMethod, price: Price) -> dict:
    e = m.keeps.extra
    return {"index": m.index, "name": m.name, "label": m.label, "paper_arxiv": m.paper_arxiv,
            "paper_url": m.paper_url, "accuracy": m.accuracy, "backbone": m.backbone,
            "backbone_flag": m.backbone_flag, "priced_only": price.priced_only,
            "extra_params": None if e is None else {"count": e.count, "dtype": e.dtype,
                                                    "in_features": e.in_features},
            "n_exemplars": m.keeps.n_exemplars(claim.num_classes),
            "backbones": m.keeps.backbones, "teacher": m.keeps.teacher,
            "bytes": {c: price.bytes(c) for c in CONVENTIONS},
            "by_kind": {c: getattr(price, c).by_kind() for c in CONVENTIONS},
            "notes": list(price.notes), "keeps_note": m.keeps.note}


def audit_atlas_claim(claim: AtlasClaim, *, convention: str = "strict",
                      tolerance: float = DEFAULT_TOLERANCE, rows=None,
                      store: str | None = None, scaled=None) -> dict:
    """One claim audited (pure).  `rows`: a results store's rows (None: no store given);
    `store`: its location, for the sweep command's --out; `scaled`: (setting, its cells) when
    a scaled-down setting measures the claim (atlas_scaled.py)."""
    prices = {m.index: price_method(claim, m) for m in claim.methods}
    w, l = claim.winner, runner_up(claim)
    pairs = [pair_record(claim, w, m, prices, convention, tolerance) for m in claim.methods[1:]]
    head = next(p for p in pairs if p["loser"] == l.index)
    reason = not_runnable_reason(claim, (w, l))
    out = {"id": claim.id, "file": claim.file, "claim": claim.claim, "metric": claim.metric,
           "stream": {"dataset": claim.dataset, "init": claim.init, "inc": claim.inc,
                      "tasks": claim.tasks, "num_tasks": claim.num_tasks,
                      "num_classes": claim.num_classes, "image_shape": list(claim.image_shape),
                      "input_dtype": claim.input_dtype},
           "source": dict(claim.source), "citation": citation(claim),
           "methods": [_method_record(claim, m, prices[m.index]) for m in claim.methods],
           "pairs": pairs, "headline": head, "runnable": not reason,
           "status": "runnable" if not reason else reason}
    if reason:
        out["store"] = {"status": "n/a", "text": reason}
        out["sweep_command"] = None
    else:
        measured = measure(claim, (w, l), convention, rows, store)
        out["sweep_command"] = measured.pop("sweep_command")
        out["store"] = measured
    if scaled is not None:
        from clbudget.analysis.atlas_scaled import scaled_record
        setting, cells = scaled
        out["scaled"] = scaled_record(claim, setting, cells, convention, rows, store)
    return out


def headline_text(n_unequal: int, n: int, tolerance: float, median: float | None,
                  convention: str) -> str:
    med = "n/a" if median is None else f"{median:.2f}"
    return (f"{n_unequal} of {n} claims compared methods at unequal memory (ratio outside "
            f"1 \u00b1 {tolerance:g}); median ratio {med} ({convention} convention)")


def audit_atlas(claims, *, convention: str = "strict", tolerance: float = DEFAULT_TOLERANCE,
                rows=None, store: str | None = None, settings=()) -> dict:
    """Every claim audited, and the headline over their winner/runner-up ratios (pure).
    `settings`: the scaled-down settings (atlas_scaled.Setting) that measure some claims."""
    if convention not in CONVENTIONS:
        from clbudget.streams.catalog import nearest
        raise ValueError(f"unknown convention {convention!r}; use one of "
                         f"{', '.join(CONVENTIONS)} (nearest: {nearest(convention, CONVENTIONS)})")
    if not 0 <= tolerance < 1:
        raise ValueError(f"--tolerance must be a fraction in [0, 1), got {tolerance}")
    from clbudget.analysis.atlas_scaled import plan_setting
    by_id = {c.id: c for c in claims}
    scaled = {cid: (s, plan_setting(by_id, s, convention)) for s in settings for cid in s.claims}
    records = [audit_atlas_claim(c, convention=convention, tolerance=tolerance, rows=rows,
                                 store=store, scaled=scaled.get(c.id)) for c in claims]
    ratios = [r["headline"]["ratio"][convention] for r in records]
    unequal = sum(not r["headline"]["aligned"] for r in records)
    median = statistics.median(ratios) if ratios else None
    return {"convention": convention, "tolerance": tolerance, "n_claims": len(records),
            "n_unequal": unequal, "median_ratio": median, "store": store,
            "headline": headline_text(unequal, len(records), tolerance, median, convention),
            "claims": records}


def run_atlas(folder, *, convention: str = "strict", tolerance: float = DEFAULT_TOLERANCE,
              store=None) -> dict:
    """Load and validate every claim of `folder` and its scaled-down settings (`folder`/scaled/)
    first (AtlasError on the first fault), then audit them against `store` (a ResultStore, or
    None)."""
    from clbudget.analysis.atlas_scaled import load_settings
    claims = load_atlas(folder)
    settings = load_settings(folder, claims)
    rows, location = None, None
    if store is not None:
        rows = store.rows()
        location = str(store.path.parent if store.path.name == "results.sqlite" else store.path)
    return audit_atlas(claims, convention=convention, tolerance=tolerance, rows=rows,
                       store=location, settings=settings)
