"""BMC's two cross-entropies checked by value: the loss a training step returns equals the
formula computed here by hand (log-sum-exp minus the target's logit) from the same logits.

- an expert's task loss is the CE over its own task's classes [lo, hi), labels shifted by lo
  (bmc.py `train_expert`; stream_benchmark models/bmc.py `task_loss`, logits sliced to the task);
- the consolidation's task loss is the CE over the seen classes [0, seen) (bmc.py docstring,
  "CE over the seen classes").

The step closures are captured from `Trainer.fit` (no training runs) and evaluated on a fixed
batch holding both of a task's classes, the network in eval mode.  Mutants
bmc.expert_ce_all_classes and bmc.consolidation_ce_unmasked (origin blind-3).
"""
import pytest
import torch

from clbudget.experiment.run import prepare, to_device
from clbudget.methods import bmc as bmc_module
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
    bmc_module.train_expert(method.base.state_dict(), (task.x, task.y), method.config, 0, spec)
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
    buffer = bmc_module.ExpertResult(task.x[pick], task.y[pick].to(torch.int16),
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
