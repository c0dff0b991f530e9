"""Fairness audit, part 5 of 5: the missing cells as `clbudget sweep` commands and as RunSpecs,
and running them through the experiment layer (the audit itself never trains).
"""
from __future__ import annotations

import json

from clbudget.analysis.audit_claims import Claim


# ---------------------------------------------------------------- claim cells

def claim_sweep_commands(claim: Claim, cells, store: str | None = None) -> list[str]:
    """`clbudget sweep` commands that would produce the missing cells (one per backbone/budget)."""
    groups: dict[tuple, dict] = {}
    for c in cells:
        g = groups.setdefault((c["backbone"], c["budget_bytes"]), {"methods": [], "seeds": set()})
        g["methods"].append(c["method"])
        g["seeds"].update(c["seeds"])
    out = []
    for (backbone, budget), g in sorted(groups.items()):
        cmd = (f"clbudget sweep --methods {','.join(g['methods'])} --budgets {budget} "
               f"--seeds {','.join(map(str, sorted(g['seeds'])))} --dataset {claim.dataset} "
               f"--init {claim.init} --inc {claim.inc} --backbone {backbone} "
               f"--convention {claim.convention}")
        if claim.num_classes != _dataset_classes(claim.dataset):
            cmd += f" --num-classes {claim.num_classes}"
        if claim.class_order_seed != 1993:
            cmd += f" --class-order-seed {claim.class_order_seed}"
        cmd += " --class-order fixed"    # a claim's one order (a sweep's default is per-seed)
        if claim.epochs is not None:
            cmd += f" --epochs {claim.epochs}"
        out.append(cmd + f" --out {store or 'DIR'}")
    return out


def _dataset_classes(name: str) -> int:
    from clbudget.streams.catalog import dataset_info
    return dataset_info(name).num_classes


def claim_specs(claim: Claim, cells, *, device: str = "auto", data_root: str | None = None,
                epochs: int | None = None) -> list:
    """RunSpecs of the missing cells: the claim's stream and backbone, the budget as a plain
    byte count (as `clbudget sweep` writes range budgets, so the run keys match)."""
    from clbudget.experiment.run import RunSpec
    return [RunSpec(method=c["method"], dataset=claim.dataset, budget=str(c["budget_bytes"]),
                    init=claim.init, inc=claim.inc, data_root=data_root,
                    epochs=epochs if epochs is not None else claim.epochs, seed=seed,
                    class_order_seed=claim.class_order_seed, device=device,
                    num_classes=None if claim.num_classes == _dataset_classes(claim.dataset)
                    else claim.num_classes,
                    backbone=c["backbone"], convention=claim.convention)
            for c in cells for seed in c["seeds"]]


# ---------------------------------------------------------------- store cells

def store_sweep_commands(missing_cells, store: str | None = None) -> list[str]:
    out = []
    for c in missing_cells:
        s = c["spec"]
        cmd = (f"clbudget sweep --methods {c['method']} --budgets {c['budget_bytes']} "
               f"--seeds {','.join(map(str, c['seeds']))} --dataset {s.get('dataset')} "
               f"--init {s.get('init')} --inc {s.get('inc')}")
        for key in ("backbone", "epochs", "batch_size", "lr", "num_classes", "max_per_class",
                    "max_test_per_class", "data_root"):
            if s.get(key) is not None:
                cmd += f" --{key.replace('_', '-')} {s[key]}"
        for key, value in sorted((s.get("method_options") or {}).items()):
            cmd += f" --option {key}={json.dumps(value)}"
        if s.get("class_order_seed", 1993) != 1993:
            cmd += f" --class-order-seed {s['class_order_seed']}"
        # always named: a sweep's own default (per-seed) is not a run's (fixed)
        cmd += f" --class-order {s.get('class_order', 'fixed')}"
        if s.get("normalization", "recipe") != "recipe":
            cmd += f" --normalization {s['normalization']}"
        if s.get("convention", "strict") != "strict":
            cmd += f" --convention {s['convention']}"
        out.append(cmd + f" --out {store or 'DIR'}")
    return out


def store_specs(audit: dict) -> list:
    """RunSpecs of a store audit's missing cells: the method's own spec at the aligned budget."""
    from clbudget.experiment.run import RunSpec
    specs = []
    for c in audit.get("_missing_specs", []):
        base = dict(c["spec"])
        base["method_options"] = tuple(sorted((base.get("method_options") or {}).items()))
        base["glyphs_options"] = tuple(sorted((base.get("glyphs_options") or {}).items()))
        for seed in c["seeds"]:
            specs.append(RunSpec(**{**base, "budget": str(c["budget_bytes"]), "seed": seed}))
    return specs


# ---------------------------------------------------------------- running missing cells

def run_missing_cells(specs, store, *, progress: bool = False) -> dict:
    """Ask the experiment layer to run the missing cells (clbudget.experiment.sweep.run_cells);
    the audit itself never trains.  Returns run_cells' summary."""
    if not specs:
        return {}
    try:
        from clbudget.experiment import sweep   # the layer below (analysis > experiment)
        run_cells = sweep.run_cells
    except (ImportError, AttributeError):
        raise ValueError("running missing cells needs clbudget.experiment.sweep.run_cells, "
                         "which this installation lacks; run the printed `clbudget sweep` "
                         "command instead") from None
    return run_cells(list(specs), store, progress=progress)
