"""BMC's two cross-entropies checked by value: the loss a training step returns equals the
formula computed here by hand (log-sum-exp minus the target's logit) from the same logits.

- an expert's task loss is the CE over its own task's classes [lo, hi), labels shifted by lo
  (bmc.py `train_expert`; stream_benchmark models/bmc.py `task_loss`, logits sliced to the task);
- the consolidation's task loss is the CE over the seen classes [0, seen) (bmc.py docstring,
  "CE over the seen classes");
- the default variant ("reference", stream_benchmark as it runs) adds nothing to either: a
  later expert's loss is its CE alone however far it is from the base (lambda 0), the
  consolidation's is the CE alone whatever the buffers' features (beta 0); variant "paper"
  adds 1 * L_bd and 1 * L_bmc, L_bmc computed here as the mean over the batch of the L2 norm
  of (target features - the base's features).

The step closures are captured from `Trainer.fit` (no training runs) and evaluated on a fixed
batch holding both of a task's classes, the network in eval mode.  Mutants
bmc.expert_ce_all_classes and bmc.consolidation_ce_unmasked (origin blind-3),
bmc.reference_variant_stability_on, bmc.reference_variant_distills.
"""
import dataclasses

import pytest
import torch

from clbudget.experiment.run import prepare, to_device
from clbudget.nets.classifier import frozen_copy
from clbudget.methods import bmc_experts
from clbudget.train.loop import Trainer
from tests.helpers import tiny_spec, tiny_stream


def hand_ce(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Mean over the batch of log(sum_j exp(z_j)) - z_y: the cross-entropy written out."""
    return float((torch.logsumexp(logits, 1) - logits[torch.arange(len(y)), y]).mean())


def bmc_and_tasks(**options):
    spec = tiny_spec("bmc", method_options=tuple(options.items()))
    stream, ctx, method = prepare(spec, tiny_stream())
    return method, to_device(stream, ctx.device)


def record_fit(monkeypatch) -> list:
    """Replace `Trainer.fit` (the experts' trainers and the run's): record its step closure,
    data and modules, train nothing."""
    calls = []

    def fit(self, params, x, y, step, cfg, desc="train", modules=(), groups=None):
        calls.append((self, step, x, y, list(modules)))
        return {"loss": [], "epochs": 0}
    monkeypatch.setattr(Trainer, "fit", fit)
    return calls


def both_classes(y: torch.Tensor, per_class: int = 4) -> torch.Tensor:
    """Positions of the first `per_class` samples of each class in y."""
    return torch.cat([(y == c).nonzero().flatten()[:per_class] for c in torch.unique(y)])


def test_bmc_expert_ce_is_over_its_own_tasks_classes_with_labels_shifted(monkeypatch):
    """The second task's expert (classes [2, 4) of 6): its step's loss is, by hand,
    mean(logsumexp(z[:, 2:4]) - z[i, y_i]) with labels y - 2, z the expert's logits of the
    batch; not the CE over the columns [0, 4) with the labels unshifted (the mutant)."""
    method, tasks = bmc_and_tasks()
    method.begin_task(tasks[0])
    task = tasks[1]
    spec = method.spec_for(1, 2, len(task.y))
    assert (spec.lo, spec.hi, spec.first) == (2, 4, True)   # first step: lambda 0, CE alone
    calls = record_fit(monkeypatch)
    bmc_experts.train_expert(method.base.state_dict(), (task.x, task.y), method.config, 0, spec)
    trainer, step, x, y, (expert,) = calls[0]
    idx = both_classes(y)
    xb, yb = trainer.inputs(x[idx]), y[idx]
    assert set(yb.tolist()) == {2, 3}
    expert.eval()
    with torch.no_grad():
        loss = float(step(xb, yb, idx))
        z = expert.head(expert.backbone(xb))                                         # (B, 6)
    expected = hand_ce(z[:, 2:4], yb - 2)
    assert loss == pytest.approx(expected, abs=1e-5)
    assert abs(expected - hand_ce(z[:, :4], yb)) > 1e-2   # the mutant's value differs here


def test_bmc_consolidation_ce_is_over_the_seen_classes_only(monkeypatch):
    """Consolidating after the first task (seen = 2 of 6 classes), the distillation off
    (beta 0): the step's loss is, by hand, mean(logsumexp(z[:, :2]) - z[i, y_i]), z the base's
    logits; not the CE over all 6 columns (the mutant)."""
    method, tasks = bmc_and_tasks(distill_weight=0.0)
    task = tasks[0]
    method.begin_task(task)
    assert (method.seen, method.ctx.stream.num_classes) == (2, 6)
    pick = both_classes(task.y)
    dim = method.base.backbone.out_dim
    buffer = bmc_experts.ExpertResult(task.x[pick], task.y[pick].to(torch.int16),
                                     torch.zeros(len(pick), dim))
    calls = record_fit(monkeypatch)
    method.consolidate([buffer])
    trainer, step, x, y, _ = calls[0]
    idx = torch.arange(len(y))
    xb = trainer.inputs(x)
    assert set(y.tolist()) == {0, 1}
    method.base.eval()
    with torch.no_grad():
        loss = float(step(xb, y, idx))
        z = method.base.head(method.base.backbone(xb))                               # (B, 6)
    expected = hand_ce(z[:, :2], y)
    assert loss == pytest.approx(expected, abs=1e-5)
    assert abs(expected - hand_ce(z, y)) > 1e-2            # the mutant's value differs here


def test_bmc_default_expert_loss_is_its_ce_alone_and_paper_adds_the_stability_loss(monkeypatch):
    """A later expert (the base consolidated on task 0), its weights moved away from the base
    (+0.05 on every parameter): under the default variant its step's loss is the hand CE
    over its task's classes exactly; under variant "paper" it is that CE plus 1 * L_bd, the
    per-layer L2 norms of (base - expert) features summed (bmc_experts.stability_loss, whose
    arithmetic test_bmc_layer_distance_is_the_per_sample_l2_norm_summed_over_layers_by_hand
    checks by hand), the base on the batch's statistics."""
    method, tasks = bmc_and_tasks()
    method.begin_task(tasks[0])
    method.learn(tasks[0])
    task = tasks[1]
    method.begin_task(task)
    spec = method.expert_spec(task)
    assert not spec.first
    calls = record_fit(monkeypatch)
    for variant in ("reference", "paper"):
        config = dataclasses.replace(method.config, variant=variant)
        bmc_experts.train_expert(method.base.state_dict(), (task.x, task.y), config, 0, spec)
    losses = []
    for trainer, step, x, y, (expert,) in calls:
        idx = both_classes(y)
        xb, yb = trainer.inputs(x[idx]), y[idx]
        with torch.no_grad():
            for p in expert.parameters():
                p.add_(0.05)
            loss = float(step(xb, yb, idx))
            z = expert.head(expert.backbone(xb))
            base = bmc_experts.batch_statistics(frozen_copy(method.base))
            l_bd = float(bmc_experts.stability_loss(
                bmc_experts.interim_features(base.backbone, xb),
                bmc_experts.interim_features(expert.backbone, xb)))
        losses.append((loss, hand_ce(z[:, 2:4], yb - 2), l_bd))
    (ref, ce_ref, bd_ref), (paper, ce_paper, bd_paper) = losses
    assert bd_ref > 1.0 and bd_paper > 1.0                 # the experts are off the base
    assert ref == pytest.approx(ce_ref, abs=1e-5)
    assert paper == pytest.approx(ce_paper + bd_paper, rel=1e-5)


def test_bmc_default_consolidation_is_the_task_loss_alone(monkeypatch):
    """Consolidating after the first task with buffer features far from the base's (all 3.0):
    the default variant's step is the hand CE over the seen classes alone (beta 0, the
    reference's commented-out distillation); variant "paper"'s is that CE plus 1 * the batch
    mean of ||target - base features||_2 per sample (L_bmc)."""
    got = {}
    for variant in ("reference", "paper"):
        method, tasks = bmc_and_tasks(variant=variant)
        task = tasks[0]
        method.begin_task(task)
        pick = both_classes(task.y)
        dim = method.base.backbone.out_dim
        target = torch.full((len(pick), dim), 3.0)
        buffer = bmc_experts.ExpertResult(task.x[pick], task.y[pick].to(torch.int16), target)
        calls = record_fit(monkeypatch)
        method.consolidate([buffer])
        trainer, step, x, y, _ = calls[-1]
        idx = torch.arange(len(y))
        xb = trainer.inputs(x)
        method.base.eval()
        with torch.no_grad():
            loss = float(step(xb, y, idx))
            f = method.base.backbone(xb)                                              # (B, D)
            z = method.base.head(f)
        l2 = float((target - f).pow(2).sum(1).sqrt().mean())
        got[variant] = (loss, hand_ce(z[:, :2], y), l2)
    loss, ce, l2 = got["reference"]
    assert l2 > 1.0 and loss == pytest.approx(ce, abs=1e-5)
    loss, ce, l2 = got["paper"]
    assert loss == pytest.approx(ce + l2, rel=1e-5)
