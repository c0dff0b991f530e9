"""One-line bugs of the third blind mutant round (issue 23) that survived their area's test
files, each pinned here by a test whose expected value is written by hand: literal strings and
byte counts, the plateau schedule's rule (PyTorch's ReduceLROnPlateau documentation), the
breakdown's documented bars.  The mutants are those of origin blind-3 (`python -m bench.mutants
--origin blind-3`; bench/mutant_catalog/origins.py, BLIND3_TESTS) (MIND's
domain-incremental head masks: tests/test_multidomain.py, on two streams); these kills are not
blind (the tests were written after reading them)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from clbudget.analysis import rows as R
from clbudget.budget.accountant import format_bytes
from clbudget.train.loop import LoopConfig
from test_analysis import MIB, make_row
from test_blind2_gaps import images, tiny_trainer


# ------------------------------------------------------------------------- budget: printing
@pytest.mark.parametrize("n,text", [
    (2**10, "1.00 KiB (1,024 B)"), (2**10 - 1, "1,023 B"),
    (2**20, "1.00 MiB (1,048,576 B)"), (2**20 - 1, "1024.00 KiB (1,048,575 B)"),
    (2**30, "1.00 GiB (1,073,741,824 B)"), (3 * 2**29, "1.50 GiB (1,610,612,736 B)"),
    (0, "0 B")])
def test_format_bytes_switches_unit_at_exactly_one_unit(n, text):
    assert format_bytes(n) == text


# ------------------------------------------------------------------ analysis: breakdown
def test_per_task_modules_are_in_the_model_bar():
    """CLR's kernels and BN sets, MIND's BN sets (kind per_task) are model bytes; masks, old
    models, class statistics and importance are 'other' (rows.py BREAKDOWN)."""
    row = make_row("clr", MIB, 0, by_kind={"params": 1000, "buffers": 20, "per_task": 300,
                                           "exemplars": 3072, "masks": 7, "importance": 5})
    assert R.ledger_breakdown(row) == {"model": 1320, "exemplars": 3072, "other": 12}


# ------------------------------------------------------------------ loop: plateau schedule
@pytest.mark.parametrize("patience,epochs,cuts", [(0, 4, 3), (1, 5, 2), (2, 7, 2)])
def test_plateau_steps_on_the_validation_loss_when_there_is_one(patience, epochs, cuts):
    """The training loss falls every epoch (10, 9, 8, ...) while the held-out loss stays at
    1.0.  ReduceLROnPlateau (mode min) on the held-out loss: the first epoch sets the best,
    every later one is bad, and after `patience + 1` bad epochs the lr is cut by `gamma`
    (the count restarts), so `epochs` epochs cut floor((epochs - 1) / (patience + 1)) times.
    Stepped on the falling training loss it would never cut."""
    w = nn.Parameter(torch.zeros(1))
    x, y = images(20)
    calls = {"train": 0}

    def step(xb, yb, idx):
        if not torch.is_grad_enabled():
            return (w * 0).sum() + 1.0
        calls["train"] += 1
        return (w * 0).sum() + 10.0 - (calls["train"] - 1) // 4   # 4 steps an epoch
    cfg = LoopConfig(epochs=epochs, batch_size=4, optimizer="adam", lr=0.01, schedule="plateau",
                     gamma=0.5, patience=patience, milestones=(), augment=False, validation=0.2)
    out = tiny_trainer().fit([w], x, y, step, cfg)
    assert out["val_loss"] == [1.0] * epochs
    assert out["loss"] == [10.0 - e for e in range(epochs)]
    assert out["final_lr"] == pytest.approx(0.01 * 0.5 ** cuts)
    assert cuts == (epochs - 1) // (patience + 1)


def test_plateau_without_a_split_steps_on_the_training_loss():
    """No held-out split: the schedule reads the training loss (constant here, so it cuts
    after patience + 1 bad epochs: 5 epochs, patience 1 -> 2 cuts)."""
    w = nn.Parameter(torch.zeros(1))
    x, y = images(8)
    cfg = LoopConfig(epochs=5, batch_size=4, optimizer="adam", lr=0.01, schedule="plateau",
                     gamma=0.1, patience=1, milestones=(), augment=False)
    out = tiny_trainer().fit([w], x, y, lambda xb, yb, idx: (w * 0).sum() + 2.0, cfg)
    assert "val_loss" not in out
    assert out["final_lr"] == pytest.approx(0.01 * 0.1 ** 2)


# ----------------------------------------------------------------- loop: comparing recipes
@pytest.mark.parametrize("key,a,b", [("normalization", "pycil", "train-set"),
                                     ("precision", "fp32", "bf16"),
                                     ("augmentation", "pycil", "none")])
def test_recipes_differing_in_one_protocol_field_train_differently(key, a, b):
    """Recorded recipe dicts without `applied_normalization` (older rows): the recipe's own
    normalisation, precision and augmentation each make the training differ."""
    from clbudget.train.recipes import training_differs
    base = {"precision": "fp32", "augmentation": "pycil", "normalization": "pycil",
            "phases": {"task": {"epochs": 3, "lr": 0.1}}}
    assert not training_differs(base, dict(base))
    assert training_differs({**base, key: a}, {**base, key: b})
    assert training_differs({**base, key: b}, {**base, key: a})


# ---------------------------------------------------------------- losses: MEMO's trunk
def test_memo_without_train_generalized_trains_its_shared_blocks_in_task_0_only():
    """PyCIL MEMO (train_base false): the generalized blocks learn in the first task and are
    frozen from the second on."""
    from test_expanding_methods import _same, _setup, _state
    ctx, method, tasks = _setup("memo", method_options=(("train_generalized", False),))
    method.begin_task(tasks[0])
    start = _state(method.net.trunk)
    method.learn(tasks[0])
    method.end_task(tasks[0])
    after0 = _state(method.net.trunk)
    assert not _same(start, after0)
    method.begin_task(tasks[1])
    method.learn(tasks[1])
    assert _same(after0, _state(method.net.trunk))
