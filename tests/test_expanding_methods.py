"""DER and MEMO (expanding representations) and DER++ (reservoir + dark logits): mechanisms."""
import functools

import pytest
import torch
from torch import nn

from clbudget.budget.accountant import module_bytes
from clbudget.budget.costs import COST_MODELS, StreamShape
from clbudget.train.recipes import get_recipe
from clbudget.experiment.run import prepare, to_device
from clbudget.methods.derpp import DERpp
from tests.helpers import held_bytes, tiny_spec, tiny_stream


def _setup(name, **overrides):
    spec = tiny_spec(name, **overrides)
    stream, ctx, method = prepare(spec, tiny_stream())
    return ctx, method, to_device(stream, ctx.device)


def _state(module: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@functools.lru_cache(maxsize=None)
def expanding_trace(name: str, options: tuple = (), n_tasks: int = 3):
    """Run DER/MEMO through the tiny stream, recording what each task boundary holds."""
    ctx, method, tasks = _setup(name, method_options=options)
    rec = []
    for task in tasks[:n_tasks]:
        method.begin_task(task)
        net = method.net
        inherited = (task.index == 0 or _same(_state(net.branches[-1]), _state(net.branches[-2])))
        stats = method.learn(task)
        method.end_task(task)
        rec.append(dict(
            stats=stats, inherited=inherited, bytes=module_bytes(net),
            n_branches=len(net.branches), branches=[_state(b) for b in net.branches],
            trunk=_state(net.trunk), trunk_params=[id(p) for p in net.trunk.parameters()],
            trunk_id=id(net.trunk), head=net.head.weight.detach().clone(),
            ledger=method.ledger("strict").by_kind(), memo=method.ledger("memo").total_bytes,
            held=held_bytes(method), seen=method.seen, old=method.old,
            modules=[n for n, _ in net.named_modules()]))
    return ctx, method, rec


@pytest.mark.parametrize("name", ["der", "memo"])
def test_parameters_grow_as_the_cost_model_says(name):
    ctx, method, rec = expanding_trace(name)
    a, s = ctx.allocation, ctx.stream
    for t, r in enumerate(rec):
        shape = StreamShape(t + 1, s.image_shape, s.num_classes)
        cost = COST_MODELS[name].cost(shape, a.backbone, a.n_exemplars)
        assert r["n_branches"] == t + 1
        assert r["bytes"].param_bytes == cost.bytes_of("params"), t
        assert r["bytes"].buffer_bytes == cost.bytes_of("buffers"), t
        assert r["ledger"] == cost.by_kind() and r["held"] == cost.total_bytes, t
        assert r["memo"] == COST_MODELS[name].cost(shape, a.backbone, a.n_exemplars,
                                                   "memo").total_bytes
    # the head: T*D inputs over all K classes
    D = method.net.out_dim
    assert tuple(method.net.head.weight.shape) == (s.num_classes, s.num_tasks * D)


@pytest.mark.parametrize("name", ["der", "memo"])
def test_old_branches_are_frozen_bit_for_bit(name):
    """Parameters and BN statistics of every earlier branch survive later tasks unchanged;
    the new branch starts as a copy of the previous one and then trains."""
    _, _, rec = expanding_trace(name)
    T = len(rec)
    for t in range(T):
        for later in range(t + 1, T):
            assert _same(rec[t]["branches"][t], rec[later]["branches"][t]), (t, later)
        if t > 0:
            assert rec[t]["inherited"]
            assert not _same(rec[t]["branches"][t], rec[t - 1]["branches"][t - 1])
    assert any(k.endswith("running_mean") for k in rec[0]["branches"][0])


@pytest.mark.parametrize("name", ["der", "memo"])
def test_aux_head_is_temporary_and_weights_are_aligned(name):
    ctx, method, rec = expanding_trace(name)
    for r in rec:
        assert not any("aux" in m for m in r["modules"])
        assert r["held"] == sum(r["ledger"].values())
    for r in rec[1:]:  # weight aligning: new classes' rows as long as old ones on average
        norms = r["head"][:r["seen"]].norm(dim=1)
        assert torch.allclose(norms[:r["old"]].mean(), norms[r["old"]:].mean(), rtol=1e-4)
    _, _, no_aux = expanding_trace(name, (("aux_weight", 0.0),), n_tasks=2)
    assert no_aux[0]["stats"]["loss"] == rec[0]["stats"]["loss"]   # no aux loss in task 0
    assert no_aux[1]["stats"]["loss"] != rec[1]["stats"]["loss"]


def test_memo_shares_one_generalized_block():
    ctx, method, rec = expanding_trace("memo")
    assert len({r["trunk_id"] for r in rec}) == 1
    assert all(r["trunk_params"] == rec[0]["trunk_params"] for r in rec)
    assert method.net.trunk is not None and len(method.net.branches) == ctx.stream.num_tasks
    # train_base (PyCIL exps/memo.json): the shared blocks keep learning after task 0 ...
    assert not _same(rec[0]["trunk"], rec[-1]["trunk"])
    # ... unless switched off, when they stay as task 0 left them
    _, _, fixed = expanding_trace("memo", (("train_generalized", False),), n_tasks=2)
    assert all(_same(fixed[0]["trunk"], r["trunk"]) for r in fixed)


def test_der_stacks_whole_backbones():
    ctx, method, _ = expanding_trace("der")
    assert len(list(method.net.trunk.parameters())) == 0
    assert all(b.name == ctx.allocation.backbone for b in method.net.branches)
    ptrs = {p.data_ptr() for b in method.net.branches for p in b.parameters()}
    assert len(ptrs) == sum(1 for b in method.net.branches for _ in b.parameters())


# --- DER++ ------------------------------------------------------------------------------

def _derpp_budget(n_exemplars: int) -> str:
    s = tiny_stream()
    shape = StreamShape(s.num_tasks, tuple(s.image_shape), s.num_classes)
    return f"{COST_MODELS['derpp'].cost(shape, 'conv2', n_exemplars).total_bytes}B"


def test_derpp_reservoir_holds_logits_from_insertion_time():
    ctx, method, tasks = _setup("derpp", budget=_derpp_budget(30),
                                method_options=(("minibatch_size", 7),))
    memory = method.memory
    assert memory.capacity == 30 < len(tasks[0].x)
    produced = []   # every output of the net on a new batch (buffer batches have 7 rows)
    method.net.register_forward_hook(
        lambda m, i, out: produced.append(out.detach().clone()) if len(out) != 7 else None)
    for task in tasks[:2]:
        method.begin_task(task)
        method.learn(task)
        method.end_task(task)
        n_seen = sum(len(t.x) for t in tasks[:task.index + 1])
        assert len(memory) == memory.capacity and memory.offered == n_seen
    rows = torch.cat(produced)                                  # (steps * B, K)
    x = torch.cat([t.x for t in tasks[:2]])
    y = torch.cat([t.y for t in tasks[:2]])
    for k in range(memory.capacity):
        # the stored logits are exactly a row the net produced while training
        assert (rows == memory.logits[k]).all(1).any(), k
        # the stored image is an un-augmented training image with its own label
        match = (x == memory.images[k]).flatten(1).all(1)
        assert match.any() and int(memory.labels[k]) in y[match].tolist()
    # reservoir keeps examples of the first task after the second
    assert set(memory.labels.tolist()) & set(tasks[0].y.tolist())
    assert set(memory.labels.tolist()) & set(tasks[1].y.tolist())


def _derpp_run(alpha, beta):
    """One task: the buffer fills in the first step, the replay terms act from the second."""
    ctx, method, tasks = _setup("derpp", method_options=(("alpha", alpha), ("beta", beta)))
    method.begin_task(tasks[0])
    losses = method.learn(tasks[0])["loss"]
    return losses, _state(method.net)


def test_derpp_both_replay_terms_are_active():
    cfg = DERpp.Config()
    assert (cfg.alpha, cfg.beta, cfg.minibatch_size) == (0.2, 0.5, 32)
    assert get_recipe(DERpp.recipe).phase("first").lr == 0.03
    runs = {ab: _derpp_run(*ab) for ab in [(0.0, 0.0), (cfg.alpha, 0.0), (0.0, cfg.beta),
                                           (cfg.alpha, cfg.beta)]}
    keys = list(runs)
    for i in range(len(keys)):
        for j in range(i + 1, len(keys)):
            assert runs[keys[i]][0] != runs[keys[j]][0], (keys[i], keys[j])
            assert not _same(runs[keys[i]][1], runs[keys[j]][1]), (keys[i], keys[j])


def test_memo2_specializes_the_last_two_stages_and_its_ledger_is_what_it_holds():
    from clbudget.budget.costs import COST_MODELS, memo2_stats
    from clbudget.experiment.run import prepare, to_device
    from clbudget.nets.backbones import backbone_stats
    from tests.helpers import held_bytes, tiny_spec, tiny_stream
    spec = tiny_spec("memo2", backbone="resnet14", budget="8xresnet14+300ex")
    stream, ctx, method = prepare(spec, tiny_stream())
    one = backbone_stats("resnet14", (3, 16, 16))
    two = memo2_stats(one, (3, 16, 16))
    # by hand, resnet14 (n = 2 blocks per stage): stage2 = 16->32 block (3x3x16x32 + 3x3x32x32
    # + 2 BN of 32) + 32->32 block (2 x 3x3x32x32 + 2 BN of 32) = 4608 + 9216 + 128 + 18432
    # + 128 = 32,512 parameters move from the generalized part into every branch
    assert two.specialized_params - one.specialized_params == 32_512
    assert two.generalized_params + two.specialized_params == one.params
    branch = method.net.branches[0]
    assert sum(p.numel() for p in branch.parameters()) == two.specialized_params
    assert sum(p.numel() for p in method.net.trunk.parameters()) == two.generalized_params
    tasks = to_device(stream, ctx.device)
    for task in tasks:
        method.begin_task(task)
        method.learn(task)
        method.end_task(task)
    assert len(method.net.branches) == len(tasks)
    for convention in ("strict", "memo"):
        predicted = COST_MODELS["memo2"].cost(ctx.stream, ctx.allocation.backbone,
                                              ctx.allocation.n_exemplars, convention)
        assert method.ledger(convention).total_bytes == predicted.total_bytes, convention
    assert held_bytes(method) == method.ledger("strict").total_bytes
    # MEMO (one stage) on the same backbone holds less per task
    memo = COST_MODELS["memo"].cost(ctx.stream, "resnet14", 0).total_bytes
    assert COST_MODELS["memo2"].cost(ctx.stream, "resnet14", 0).total_bytes > memo


def test_memo_memory_is_the_herding_selection_on_its_concatenated_features():
    """After a task, each new class keeps the iCaRL herding selection (memory.herding) over the
    network's L2-normalised features of that class's images, in herding order."""
    from clbudget.methods.memory import herding
    ctx, method, tasks = _setup("memo", budget="3xconv2+20ex")
    task = tasks[0]
    method.begin_task(task)
    method.learn(task)
    method.end_task(task)
    quota = method.memory.capacity // method.seen
    mx, my = method.memory.data()
    features = method.features_of(method.net)
    classes = torch.unique(task.y).tolist()
    assert len(classes) == 2 and 0 < quota < 40         # a real choice among 40 per class
    for c in classes:
        pos = (task.y == c).nonzero().flatten()
        f = features(task.x[pos]).float()
        f = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
        expected = task.x[pos][herding(f, quota)]
        assert len(expected) == quota and torch.equal(mx[my == c], expected), c
