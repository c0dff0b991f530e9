"""The nine one-line bugs of the second blind mutant round (issue 23) that survived their
area's tests, each pinned here by a test whose expected value is written by hand: from the
documented formula (module docstrings), literal numbers, or a plain second implementation in
the test.  Every mutant of origin blind-2 (`python -m bench.mutants --origin blind-2`) runs this
file among its tests (bench/mutant_catalog/origins.py, BLIND2_TESTS).

- exemplar_bytes: n * (image bytes + logits_dim * bytes of the logit dtype);
- stored.logical_numel: the parameters a module computes with (an int8 weight counts once);
- CodecMemory.rebalance: per-class quota = capacity // classes seen (floor);
- relative_times: a row's seed without finetune -> mean over seeds of the per-seed means;
- fit: AdamW decays decoupled by lr * weight_decay per step (Loshchilov & Hutter), the
  balanced sampler drops the last partial batch (max(1, n // batch) steps), the held-out split
  is ceil(share * N) samples;
- kd_loss: -sum softmax(t / T) * log_softmax(s / T), batch mean (Hinton et al. 2015);
- BMC consolidation: the balanced sampler's group of a sample is the task of its class.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from clbudget.analysis import rows as R
from clbudget.budget.accountant import exemplar_bytes
from clbudget.experiment.run import prepare, to_device
from clbudget.methods.codecs import CodecMemory, parse_codec
from clbudget.methods.losses import kd_loss
from clbudget.nets.stored import logical_numel, store_as, stored_bytes
from clbudget.train.loop import LoopConfig, Pipeline, Trainer
from helpers import tiny_spec
from test_analysis import MIB, make_row


# ------------------------------------------------------------------------- budget: logits
@pytest.mark.parametrize("dtype,logit_bytes", [(torch.float16, 2), (torch.bfloat16, 2),
                                               (torch.float32, 4)])
def test_stored_logits_are_priced_at_their_dtype(dtype, logit_bytes):
    # 2000 uint8 3x32x32 images (3072 B each) with 10 logits each
    assert exemplar_bytes(2000, (3, 32, 32), logits_dim=10, logit_dtype=dtype) == \
        2000 * (3072 + 10 * logit_bytes)
    # 7 uint8 1x28x28 images (784 B) with 100 logits and an int16 label (2 B)
    assert exemplar_bytes(7, (1, 28, 28), label_dtype=torch.int16, logits_dim=100,
                          logit_dtype=dtype) == 7 * (784 + 2 + 100 * logit_bytes)


def test_fp16_logits_literal_total():
    assert exemplar_bytes(2000, (3, 32, 32), logits_dim=10, logit_dtype=torch.float16) \
        == 6_184_000                         # 2000 x (3072 + 20)


# ------------------------------------------------------------- storage: stored networks
def small_net():
    """conv 3->5 3x3 with bias (135 + 5), BN(5) (5 + 5 params, 10 + 1 buffers), linear 5->4
    without bias (20): 170 parameters, by hand."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 5, 3), nn.BatchNorm2d(5), nn.Flatten(),
                         nn.Linear(5, 4, bias=False))


@pytest.mark.parametrize("name", ["fp32", "fp16", "bf16", "int8"])
def test_logical_numel_is_the_plain_parameter_count(name):
    assert logical_numel(store_as(nn.Linear(7, 3), name)) == 7 * 3 + 3
    assert logical_numel(store_as(nn.Linear(7, 3, bias=False), name)) == 21
    assert logical_numel(store_as(small_net(), name)) == 135 + 5 + 10 + 20


# bytes by hand (stored.py docstring): fp16/bf16 every float tensor at 2 bytes,
# num_batches_tracked int64 kept; int8 weights of rank >= 2 as 1-byte codes + a float32
# scale per output channel, everything else float32
@pytest.mark.parametrize("name,params_bytes,buffers_bytes", [
    ("fp32", 4 * 170, 4 * 10 + 8),
    ("fp16", 2 * 170, 2 * 10 + 8),
    ("bf16", 2 * 170, 2 * 10 + 8),
    ("int8", (135 + 4 * 5) + 4 * 5 + 4 * 10 + (20 + 4 * 4), 4 * 10 + 8),
])
def test_stored_bytes_by_hand_with_bias_bn_and_no_bias(name, params_bytes, buffers_bytes):
    net = small_net()
    assert stored_bytes(net, name) == (params_bytes, buffers_bytes)
    held = store_as(net, name)
    assert sum(p.numel() * p.element_size() for p in held.parameters()) == params_bytes
    assert sum(b.numel() * b.element_size() for b in held.buffers()) == buffers_bytes


# ------------------------------------------------------------ storage: codec memory quota
def per_class_counts(capacity, per_class, classes, select="random"):
    """Rebalance a raw-size (`down:4` on 1x4x4, 16 B each) codec memory, the buffer roomy."""
    shape = (1, 4, 4)
    mem = CodecMemory(capacity, capacity * 16, shape, torch.device("cpu"), parse_codec("down:4"))
    g = torch.Generator().manual_seed(0)
    y = torch.arange(classes).repeat_interleave(per_class)
    x = torch.randint(0, 256, (len(y), *shape), generator=g, dtype=torch.uint8)
    mem.rebalance(x, y, classes, select, features=lambda v: v.flatten(1).float(), generator=g)
    held = mem.labels[mem.held_slots()].long()
    return [int((held == c).sum()) for c in range(classes)]


@pytest.mark.parametrize("capacity,classes,quota", [(10, 3, 3), (7, 2, 3), (11, 4, 2)])
@pytest.mark.parametrize("select", ["random", "herding"])
def test_codec_memory_quota_is_capacity_floor_divided_by_classes(capacity, classes, quota,
                                                                 select):
    assert per_class_counts(capacity, 8, classes, select) == [quota] * classes


def test_codec_memory_with_unequal_classes_keeps_what_each_class_has():
    """capacity 12, 3 classes -> quota 4; a class with 2 images keeps 2 (slots stay free)."""
    shape = (1, 4, 4)
    mem = CodecMemory(12, 12 * 16, shape, torch.device("cpu"), parse_codec("down:4"))
    g = torch.Generator().manual_seed(1)
    y = torch.tensor([0] * 9 + [1] * 2 + [2] * 6)
    x = torch.randint(0, 256, (len(y), *shape), generator=g, dtype=torch.uint8)
    mem.rebalance(x, y, 3, "random", generator=g)
    held = mem.labels[mem.held_slots()].long()
    assert [int((held == c).sum()) for c in range(3)] == [4, 2, 4] and len(mem) == 10
    mem.rebalance(x[:0], y[:0], 5, "random", generator=g)     # 5 classes seen: quota 2
    held = mem.labels[mem.held_slots()].long()
    assert [int((held == c).sum()) for c in range(3)] == [2, 2, 2]


# ----------------------------------------------------------------- analysis: relative time
@pytest.mark.parametrize("walls,reference", [
    ({0: [10.0, 20.0, 30.0], 1: [40.0]}, (20 + 40) / 2),      # pooled would be 25
    ({0: [10.0], 1: [20.0, 50.0]}, (10 + 35) / 2),            # pooled would be 80 / 3
])
def test_relative_time_without_its_seed_is_over_the_mean_of_seed_means(walls, reference):
    rows = [make_row("finetune", MIB, seed, wall_s=w) for seed, ws in walls.items() for w in ws]
    other = make_row("der", MIB, 7, wall_s=60.0)              # seed 7 has no finetune row
    same = make_row("der", MIB, 1, wall_s=60.0)
    rel = R.relative_times(rows + [other, same])
    assert rel[other["run_key"]] == pytest.approx(60.0 / reference)
    assert rel[same["run_key"]] == pytest.approx(60.0 / (sum(walls[1]) / len(walls[1])))


# -------------------------------------------------------------------------- loop: fit
def tiny_trainer():
    return Trainer(torch.device("cpu"), Pipeline((0.0,), (1 / 255,), pad=0),
                   torch.Generator().manual_seed(0))


def images(n):
    """n one-pixel images whose value is their position (< 256)."""
    return torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1), torch.zeros(n, dtype=torch.long)


@pytest.mark.parametrize("weight_decay", [5e-4, 0.0, 0.1])
@pytest.mark.parametrize("steps", [1, 3])
def test_adamw_decays_by_the_phases_weight_decay(weight_decay, steps):
    """A zero gradient: Adam's update is 0 / (0 + eps) = 0, so each AdamW step only decays,
    w <- w * (1 - lr * weight_decay) (decoupled weight decay)."""
    w = nn.Parameter(torch.ones(2, dtype=torch.float64))
    x, y = images(4 * steps)
    cfg = LoopConfig(epochs=1, batch_size=4, optimizer="adamw", lr=0.1,
                     weight_decay=weight_decay, schedule="constant", milestones=(),
                     augment=False)
    tiny_trainer().fit([w], x, y, lambda xb, yb, idx: (w * 0).sum(), cfg)
    assert w.tolist() == pytest.approx([(1 - 0.1 * weight_decay) ** steps] * 2, rel=1e-12)


def test_sgd_momentum_and_weight_decay_by_hand():
    """Zero loss gradient: SGD's gradient is weight_decay * w; heavy-ball momentum buf <- m *
    buf + g (buf = g at the first step), w <- w - lr * buf."""
    lr, m, wd = 0.1, 0.9, 0.05
    w = nn.Parameter(torch.ones(1, dtype=torch.float64))
    x, y = images(12)
    cfg = LoopConfig(epochs=1, batch_size=4, lr=lr, momentum=m, weight_decay=wd,
                     schedule="constant", milestones=(), augment=False)
    tiny_trainer().fit([w], x, y, lambda xb, yb, idx: (w * 0).sum(), cfg)
    v, buf = 1.0, None
    for _ in range(3):
        g = wd * v
        buf = g if buf is None else m * buf + g
        v = v - lr * buf
    assert float(w.detach()) == pytest.approx(v, rel=1e-12)


def steps_per_epoch(n, batch_size, sampler, validation=0.0):
    """(training steps, trained positions, held-out positions) of one epoch of `fit`."""
    w = nn.Parameter(torch.zeros(1))
    x, y = images(n)
    trained, held = [], []

    def step(xb, yb, idx):
        (trained if torch.is_grad_enabled() else held).append(idx.clone())
        return (w * 0).sum() + 1.0
    cfg = LoopConfig(epochs=1, batch_size=batch_size, optimizer="adam", lr=0.01,
                     schedule="constant", milestones=(), augment=False, sampler=sampler,
                     validation=validation)
    tiny_trainer().fit([w], x, y, step, cfg)
    flat = lambda parts: torch.cat(parts).tolist() if parts else []   # noqa: E731
    return len(trained), flat(trained), flat(held)


@pytest.mark.parametrize("n,batch_size,balanced,shuffle", [
    (10, 4, 2, 3), (7, 3, 2, 3), (3, 8, 1, 1), (12, 4, 3, 3)])
def test_balanced_sampler_drops_the_last_partial_batch(n, batch_size, balanced, shuffle):
    assert steps_per_epoch(n, batch_size, "balanced")[0] == balanced
    assert steps_per_epoch(n, batch_size, "shuffle")[0] == shuffle


@pytest.mark.parametrize("n,share,n_held", [
    (10, 0.25, 3),      # 2.5 -> 3
    (11, 0.2, 3),       # 2.2 -> 3
    (10, 0.05, 1),      # 0.5 -> 1: a split is kept even below 1 / share samples
    (10, 0.2, 2),       # whole: 2
    (2, 0.9, 1)])       # 1.8 -> 2, but at most N - 1
def test_validation_split_holds_out_the_ceiling_of_share_times_n(n, share, n_held):
    _, trained, held = steps_per_epoch(n, 64, "shuffle", validation=share)
    assert len(held) == n_held and len(set(held)) == n_held
    assert sorted(trained) == sorted(set(range(n)) - set(held))


# ------------------------------------------------------------------------- losses: KD
def kd_by_hand(student, teacher, T):
    """-(1/B) sum_b sum_k q_bk log p_bk, q = softmax(t / T), p = softmax(s / T), in floats."""
    def softmax(row):
        e = [math.exp(v / T) for v in row]
        return [v / sum(e) for v in e]
    total = 0.0
    for s, t in zip(student, teacher):
        p, q = softmax(s), softmax(t)
        total -= sum(qk * math.log(pk) for qk, pk in zip(q, p))
    return total / len(student)


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0, 0.5])
def test_kd_softens_teacher_and_student_by_the_same_temperature(T):
    s = [[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]]
    t = [[3.0, 0.0, 0.0], [-1.0, 1.0, 4.0]]
    got = kd_loss(torch.tensor(s), torch.tensor(t), T)
    assert float(got) == pytest.approx(kd_by_hand(s, t, T), rel=1e-6)


def test_kd_at_t2_literal():
    """Teacher (2 ln 3, 0) at T = 2 -> q = (3/4, 1/4); student (0, 0) -> p = (1/2, 1/2):
    loss = ln 2 (whatever q, as p is uniform); student (2 ln 3, 0) -> p = q: the entropy."""
    t = torch.tensor([[2 * math.log(3), 0.0]])
    assert float(kd_loss(torch.zeros(1, 2), t, 2.0)) == pytest.approx(math.log(2))
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert float(kd_loss(t.clone(), t, 2.0)) == pytest.approx(entropy, rel=1e-6)


# ------------------------------------------------------------------ losses: BMC buffers
def bmc_consolidation_groups(monkeypatch, n_tasks, **spec):
    """(labels, groups) of BMC's last consolidation after `n_tasks` tasks (real `fit`)."""
    stream, ctx, method = prepare(tiny_spec("bmc", epochs=1, **spec))
    tasks = to_device(stream, ctx.device)
    seen = []
    fit = method.trainer.fit

    def spy(params, x, y, step, cfg, desc="train", modules=(), groups=None):
        if desc.startswith("bmc consolidation"):
            seen.append((y.clone(), groups.clone(), cfg))
        return fit(params, x, y, step, cfg, desc, modules, groups)
    monkeypatch.setattr(method.trainer, "fit", spy)
    for task in tasks[:n_tasks]:
        method.begin_task(task)
        method.learn(task)
        method.end_task(task)
    return seen[-1]


@pytest.mark.parametrize("n_tasks,spec,task_of_class", [
    (2, dict(init=0, inc=2), {0: 0, 1: 0, 2: 1, 3: 1}),
    (3, dict(init=3, inc=1, num_classes=5), {0: 0, 1: 0, 2: 0, 3: 1, 4: 2}),
])
def test_bmc_balanced_sampler_groups_each_sample_by_its_classs_task(monkeypatch, n_tasks, spec,
                                                                    task_of_class):
    y, groups, cfg = bmc_consolidation_groups(monkeypatch, n_tasks, **spec)
    assert set(y.tolist()) == set(task_of_class)
    assert groups.tolist() == [task_of_class[c] for c in y.tolist()]
    # the reference's consolidation regime (stream_benchmark models/bmc.py, utils/bmc.py)
    assert (cfg.sampler, cfg.mixup, cfg.validation, cfg.optimizer) == \
        ("balanced", 0.4, 0.2, "adamw")


# ------------------------------------------------- losses: the KD users' temperature
class FixedLogits(nn.Module):
    """Returns the same logits (1, K) for every input."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits.expand(len(x), -1)


def ce_by_hand(logits, label):
    return -(logits[label] - math.log(sum(math.exp(v) for v in logits)))


# PyCIL models/lwf.py (T 2, lamda 3, CE on the new classes only), models/icarl.py (T 2,
# loss_clf + loss_kd), models/wa.py (T 2, (1 - n/(n+m)) CE + n/(n+m) KD, WA paper eq. 3)
@pytest.mark.parametrize("name", ["lwf", "icarl", "wa"])
def test_kd_methods_step_distils_at_temperature_2_by_hand(name, monkeypatch):
    """Task 1 of a 2+2+2 stream (old 2, seen 4): student logits s, teacher logits t on the
    old classes, label 3; the step's loss against the formula, KD by `kd_by_hand` at T = 2."""
    stream, ctx, method = prepare(tiny_spec(name))
    tasks = to_device(stream, ctx.device)
    steps = []

    def fit(params, x, y, step, cfg, desc="train", modules=(), **kw):
        steps.append(step)
        return {"loss": [], "epochs": cfg.epochs}
    monkeypatch.setattr(method.trainer, "fit", fit)
    method.begin_task(tasks[0])
    method.learn(tasks[0])
    method.end_task(tasks[0])
    method.begin_task(tasks[1])
    method.learn(tasks[1])
    s = [0.5, -1.0, 1.5, 0.25, 0.0, 0.0]
    t = [2.0, -0.5, 9.0, 9.0, 9.0, 9.0]                  # only the 2 old classes are read
    monkeypatch.setattr(method, "net", FixedLogits(torch.tensor([s])))
    monkeypatch.setattr(method, "old_net", FixedLogits(torch.tensor([t])))
    loss = float(steps[-1](torch.zeros(1, *stream.image_shape), torch.tensor([3]),
                           torch.tensor([0])))
    kd = kd_by_hand([s[:2]], [t[:2]], 2.0)
    want = {"lwf": ce_by_hand(s[2:4], 1) + 3 * kd,
            "icarl": ce_by_hand(s[:4], 3) + kd,
            "wa": 0.5 * ce_by_hand(s[:4], 3) + 0.5 * kd}[name]
    assert loss == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("n,batch_size,sampler,per_epoch", [
    (10, 4, "balanced", 8), (10, 4, "shuffle", 10), (3, 8, "balanced", 3), (7, 3, "balanced", 6)])
def test_images_processed_counts_the_images_trained_on(n, batch_size, sampler, per_epoch):
    """Training work = images through the steps: the balanced sampler's 2 full batches of 4 of
    10 images are 8, its one step on 3 images under batch 8 is 3."""
    w = nn.Parameter(torch.zeros(1))
    x, y = images(n)
    cfg = LoopConfig(epochs=2, batch_size=batch_size, optimizer="adam", lr=0.01,
                     schedule="constant", milestones=(), augment=False, sampler=sampler)
    trainer = tiny_trainer()
    trainer.fit([w], x, y, lambda xb, yb, idx: (w * 0).sum() + 1.0, cfg)
    assert trainer.images_processed == 2 * per_epoch
