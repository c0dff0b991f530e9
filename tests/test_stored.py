"""Frozen networks held at a lower dtype (nets/stored.py, budget/storage.py): teachers, DER's old
backbones, MEMO's old specialized blocks and CLR's backbone at fp16/bf16/int8 compute within
tolerance of fp32, the ledger counts exactly what is held and what the allocator priced, the
bytes saved buy exemplars, the live part keeps training at fp32, resume == uninterrupted."""
from __future__ import annotations

import pytest
import torch

from clbudget.budget.allocator import BudgetError, allocate
from clbudget.budget.costs import StreamShape, cost_model
from clbudget.budget.storage import allocate_stored, expand_storage, stored_ledger
from clbudget.conformance import check_method
from clbudget.experiment.run import prepare, to_device
from clbudget.nets.backbones import create_backbone
from clbudget.nets.classifier import Classifier, frozen_copy
from clbudget.nets.stored import (Int8PerChannel, is_stored, store_as, stored_bytes,
                                  stored_dtype_name, unstored_copy)
from clbudget.budget.accountant import module_bytes
from tests.helpers import cli, held_bytes, tiny_spec

LOW = {"fp16": torch.float16, "bf16": torch.bfloat16}


@pytest.mark.parametrize("dtype,tol,ratio", [("fp16", 5e-3, 0.51), ("bf16", 3e-2, 0.51),
                                             ("int8", 6e-2, 0.27)])
def test_a_stored_network_computes_within_tolerance_of_fp32(dtype, tol, ratio):
    torch.manual_seed(0)
    net = Classifier.create("resnet32", (3, 32, 32), 10)
    x = torch.rand(16, 3, 32, 32)
    ref = frozen_copy(net)(x)
    low = store_as(frozen_copy(net), dtype)
    out = low(x)
    assert out.dtype == torch.float32 and stored_dtype_name(low) == dtype
    err = (out - ref).abs().max() / ref.abs().max()
    assert 0 < err < tol                          # rounded weights, not the fp32 ones
    held = module_bytes(low)
    assert held.total_bytes < ratio * module_bytes(net).total_bytes
    assert (held.param_bytes, held.buffer_bytes) == stored_bytes(net, dtype)   # what is priced
    assert not any(p.requires_grad for p in low.parameters())
    if dtype in LOW:
        assert {p.dtype for p in low.parameters()} == {LOW[dtype]}
        assert low.backbone.generalized[1].running_var.dtype == torch.float32   # read as fp32
    else:   # weight-only: conv/linear weights int8, biases and BN float32
        dtypes = {n: p.dtype for n, p in low.named_parameters()}
        assert {d for n, d in dtypes.items() if n.endswith("original0")} == {torch.int8}
        assert all(d == torch.float32 for n, d in dtypes.items() if "parametrizations" not in n)


def test_int8_scales_are_per_output_channel():
    conv = torch.nn.Conv2d(3, 4, 3)
    with torch.no_grad():
        conv.weight[0] *= 1000.0                  # one loud channel
    w = conv.weight.detach().clone()
    store_as(conv, "int8")
    scale = conv.parametrizations.weight.original1.flatten()
    assert scale.shape == (4,)
    assert torch.allclose(scale, w.abs().flatten(1).amax(1) / 127)
    err = (conv.weight - w).abs().flatten(1).amax(1)
    assert torch.all(err <= scale / 2 + 1e-6)     # the quiet channels keep their precision
    assert err[1:].max() < 1e-2 * scale[0]


def test_unstored_copy_is_trainable_float32_with_the_stored_values():
    bn = torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.running_mean.uniform_(); bn.weight.uniform_()
    store_as(bn, "fp16")
    plain = unstored_copy(bn)
    assert not is_stored(plain) and plain.weight.dtype == torch.float32
    assert torch.equal(plain.running_mean, bn.running_mean)


def _run_all(spec):
    stream, ctx, m = prepare(spec)
    tasks = list(to_device(stream, ctx.device))
    for task in tasks:
        m.begin_task(task)
        m.learn(task)
        m.end_task(task)
        ledger = m.ledger("strict")
        assert ledger.total_bytes == held_bytes(m) <= ctx.allocation.budget_bytes
    return ctx.allocation, m


def _by_item(ledger):
    return {i.name: (i.kind, i.n_bytes) for i in ledger.items}


@pytest.mark.parametrize("method,dtype", [("der", "fp16"), ("memo", "int8"), ("memo2", "bf16"),
                                          ("clr", "int8"), ("clr", "fp16"), ("icarl", "int8"),
                                          ("lwf", "bf16")])
def test_frozen_parts_are_held_lower_and_the_ledger_is_the_allocation(method, dtype):
    budget = {"der": "4xconv2+120ex", "memo": "3xconv2+120ex", "memo2": "3xconv2+120ex",
              "clr": "2xconv2"}.get(method, "3xconv2+120ex")
    opts = (("pretrain_classes", 2), ("pretrain_per_class", 8)) if method == "clr" else ()
    a, m = _run_all(tiny_spec(method, budget=budget, store_dtype=dtype, method_options=opts))
    assert a.store_dtype == dtype
    assert _by_item(m.ledger("strict")) == _by_item(a.ledger)      # priced == held, by item
    shape = StreamShape(3, (3, 16, 16), 6)       # the memo convention: stored bytes too
    memo = stored_ledger(cost_model(method).cost(shape, "conv2", a.n_exemplars, "memo"), method,
                         shape, "conv2", dtype)
    assert m.ledger("memo").by_kind() == memo.by_kind()
    if method in ("der", "memo", "memo2"):
        old, live = m.net.branches[:-1], m.net.branches[-1]
        assert len(old) == 2 and all(stored_dtype_name(b) == dtype for b in old)
        assert not is_stored(live) and all(p.requires_grad for p in live.parameters())
        assert not is_stored(m.net.trunk) and not is_stored(m.net.head)
    elif method == "clr":
        assert stored_dtype_name(m.backbone) == dtype
        for view in m.views:       # shared convs stored; the task's own BN float32, trained
            bns = [b for b in view.modules() if isinstance(b, torch.nn.BatchNorm2d)]
            assert bns and not any(is_stored(b) for b in bns)
            assert all(b.weight.dtype == torch.float32 and b.weight.requires_grad for b in bns)
    else:
        assert stored_dtype_name(m.old_net) == dtype and not is_stored(m.net)


def test_the_new_branch_is_copied_at_fp32_and_old_branches_never_change():
    spec = tiny_spec("der", budget="4xconv2+120ex", store_dtype="int8")
    stream, ctx, m = prepare(spec)
    tasks = list(to_device(stream, ctx.device))
    m.begin_task(tasks[0]); m.learn(tasks[0]); m.end_task(tasks[0])
    trained = {k: v.clone() for k, v in m.net.branches[0].state_dict().items()}
    m.begin_task(tasks[1])
    copy = m.net.branches[1].state_dict()
    assert all(torch.equal(copy[k], v) for k, v in trained.items())     # not the rounded values
    frozen = {k: v.clone() for k, v in m.net.branches[0].state_dict().items()}
    assert any(v.dtype == torch.int8 for v in frozen.values())
    m.learn(tasks[1]); m.end_task(tasks[1])
    after = m.net.branches[0].state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items())    # bit for bit


def test_stored_dtypes_buy_more_exemplars_and_fit_where_fp32_does_not():
    s = StreamShape(5, (3, 32, 32), 10)
    n = {d: allocate_stored("der", 12_000_000, s, backbone="resnet32", store_dtype=d).n_exemplars
         for d in ("fp32", "fp16", "bf16", "int8")}
    assert n["fp32"] < n["fp16"] == n["bf16"] < n["int8"]
    for method in ("memo", "icarl", "wa", "lwf", "clr"):
        fp32 = allocate_stored(method, 12_000_000, s, backbone="resnet32")
        int8 = allocate_stored(method, 12_000_000, s, backbone="resnet32", store_dtype="int8")
        assert int8.ledger.total_bytes <= int8.budget_bytes
        if fp32.n_exemplars:
            assert int8.n_exemplars > fp32.n_exemplars
        else:
            assert int8.ledger.total_bytes < fp32.ledger.total_bytes
    tight = 6_000_000      # 5 fp32 resnet32 backbones alone are 9.3 MB
    with pytest.raises(BudgetError):
        allocate("der", tight, s, backbone="resnet32")
    fits = allocate_stored("der", tight, s, backbone="resnet32", store_dtype="int8")
    assert fits.n_exemplars >= s.num_classes and fits.ledger.total_bytes <= tight
    ladder = allocate_stored("der", tight, s, store_dtype="int8")      # the rung is stored-priced
    assert ladder.ledger.total_bytes <= tight


def test_methods_without_a_frozen_network_are_refused_with_the_reason(capsys):
    s = StreamShape(3, (3, 32, 32), 6)
    with pytest.raises(ValueError, match="experts' frozen base copy is discarded|frozen base"):
        allocate_stored("bmc", 2_000_000, s, backbone="conv2", store_dtype="fp16")
    for method in ("replay", "ewc", "derpp", "mind", "finetune"):
        with pytest.raises(ValueError, match="keeps no frozen network"):
            allocate_stored(method, 2_000_000, s, backbone="conv2", store_dtype="int8")
    cells = expand_storage([tiny_spec(m) for m in ("der", "clr", "replay")], None, "fp32,int8")
    assert sorted((c.method, c.store_dtype) for c in cells) == [
        ("clr", "fp32"), ("clr", "int8"), ("der", "fp32"), ("der", "int8"), ("replay", "fp32")]
    code, out, _ = cli(capsys, "budget", "allocate", "--dataset", "cifar10", "--methods",
                       "der,memo", "--init", "0", "--inc", "2", "--num-classes", "6", "--budget",
                       "8MB", "--backbone", "resnet32", "--store-dtype", "fp32,fp16,int8",
                       "--json")
    import json
    got = {(a["method"], a.get("store_dtype", "fp32")): a["n_exemplars"]
           for a in json.loads(out)["allocations"]}
    assert code == 0 and got[("der", "fp32")] < got[("der", "fp16")] < got[("der", "int8")]
    assert got[("memo", "fp32")] < got[("memo", "int8")]


@pytest.mark.parametrize("method,dtype", [("der", "int8"), ("wa", "fp16")])
def test_resume_with_stored_networks_equals_uninterrupted(method, dtype):
    report = check_method(method, tiny_spec(method, budget="4xconv2+120ex", store_dtype=dtype))
    assert report["passed"], report["checks"]


def test_int8_parametrization_is_what_is_stored():
    net = create_backbone("conv2", (3, 16, 16))
    store_as(net, "int8")
    assert store_as(net, "int8") is net                 # idempotent at the same dtype
    with pytest.raises(ValueError, match="already stored as int8"):
        store_as(net, "fp16")
    rules = [m for m in net.modules() if isinstance(m, Int8PerChannel)]
    weights = [n for n, p in net.named_parameters() if n.endswith("original0")]
    assert len(rules) == len(weights) > 0
