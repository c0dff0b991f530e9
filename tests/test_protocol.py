"""The protocol choices that must match the references' (issue 24): class order per seed
(PyCIL utils/data_manager.py `_setup_data`), the normalisation a run records, iCaRL's two
accuracies (PyCIL models/base.py `eval_task`), joint from scratch.

Expected values come from the references' rules written out here (numpy's global-seed
permutation, torchvision-style normalisation by hand, argmax of hand-built scores), never from
the code under test."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from clbudget.experiment.run import RunSpec, load, run_experiment
from helpers import tiny_spec


def pycil_order(shuffle: bool, seed: int, K: int) -> list[int]:
    """PyCIL utils/data_manager.py `_setup_data`, its lines verbatim (idata.class_order of
    iCIFAR10/100 is np.arange(K).tolist(), utils/data.py)."""
    order = [i for i in range(K)]
    if shuffle:
        np.random.seed(seed)
        order = np.random.permutation(len(order)).tolist()
    else:
        order = np.arange(K).tolist()
    return order


# ------------------------------------------------------------------------- class order

@pytest.mark.parametrize("seed", [0, 1, 5, 1993])
def test_class_order_protocols_follow_pycils_setup_data(seed):
    K = 6     # the tiny glyphs data set has 6 classes
    fixed = load(tiny_spec("finetune", seed=seed))
    per_seed = load(tiny_spec("finetune", seed=seed, class_order="per-seed"))
    unshuffled = load(tiny_spec("finetune", seed=seed, class_order="unshuffled"))
    assert list(fixed.class_order) == pycil_order(True, 1993, K)
    assert list(per_seed.class_order) == pycil_order(True, seed, K)
    assert list(unshuffled.class_order) == pycil_order(False, seed, K) == list(range(K))
    # labels are remapped to positions in the order: task 0 holds the order's first classes
    names = load(tiny_spec("finetune", seed=seed, class_order="unshuffled")).class_names
    assert per_seed.class_names == tuple(names[c] for c in pycil_order(True, seed, K))


def test_class_order_protocol_errors_name_the_nearest_choice():
    with pytest.raises(ValueError, match="nearest: per-seed"):
        tiny_spec("finetune", class_order="perseed").order_seed
    assert tiny_spec("finetune").key != tiny_spec("finetune", class_order="per-seed").key


def test_sweep_with_per_seed_orders_records_a_different_order_per_seed(tmp_path):
    from clbudget.experiment.store import ResultStore
    from clbudget.experiment.sweep import run_cells
    from clbudget.analysis.audit_pairing import run_flags
    from clbudget.analysis.compute import provenance
    cells = [tiny_spec(m, seed=s, class_order="per-seed", epochs=1, num_classes=4)
             for m in ("finetune", "replay") for s in (0, 1)]
    store = ResultStore(tmp_path)
    assert run_cells(cells, store)["finished"] == 4
    rows = store.rows("finished")
    for r in rows:
        assert r["spec"]["class_order"] == "per-seed" == r["class_order_protocol"]
        assert r["class_order"] == pycil_order(True, r["seed"], 6)[:4]
    orders = {r["seed"]: tuple(r["class_order"]) for r in rows}
    assert orders[0] != orders[1]
    prov = provenance(rows)["class_orders"]
    assert len(prov) == 2 and all(p.startswith("per-seed (seed ") for p in prov)
    # pairing: two methods on the same seeds' per-seed orders are paired, not flagged
    ft = [r for r in rows if r["method"] == "finetune"]
    rp = [r for r in rows if r["method"] == "replay"]
    assert [f for f in run_flags(ft, rp, "finetune", "replay") if f["kind"] == "class_order"] == []
    # ... but the same seed on another order is
    swapped = [dict(r, class_order=orders[1 - r["seed"]]) for r in rp]
    kinds = [f["kind"] for f in run_flags(ft, swapped, "finetune", "replay")]
    assert "class_order" in kinds
    # and a per-seed run is not paired with a fixed-order run
    fixed = [dict(r, spec={**r["spec"], "class_order": "fixed"}) for r in rp]
    assert "class_order" in [f["kind"] for f in run_flags(ft, fixed, "finetune", "replay")]
