"""Loss values of the source papers' methods on hand-made tensors, against the formulas.

- MIND (Bonato et al. 2024; Lsabetta/MIND mind.py `get_distill_loss_JS`): L_SD =
  (KL(p_teacher || p_student) + KL(p_student || p_teacher)) / 2 at temperature 1 (the
  temperature 6.5 is for task selection at inference only), batch mean; the distillation
  step minimises CE(student, y - task offset) + beta * L_SD with beta 5 (parse.py).
- CLR (Ge et al. 2023; reference utils.py `train`, reg="l2"): CE + lamda * sum over the
  trainable tensors of their L2 norm (not squared), lamda 1e-5 (main.py).
- MEMO (Zhou et al. 2023; PyCIL models/memo.py `_update_representation`): CE over the seen
  classes + alpha_aux * CE of the auxiliary head over (new classes + 1 "old" class), labels
  y - known + 1 for new classes and 0 for old ones; alpha_aux 1 (exps/memo.json).
Expected values are written with math.log on literals.  The methods' own steps are reached
through their real `learn` (the trainer's `fit` only captures the step instead of training).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from clbudget.experiment.run import prepare, to_device
from clbudget.methods.losses import js_divergence, kd_loss, symmetric_kl
from helpers import tiny_spec

LN = math.log


def test_symmetric_kl_by_hand():
    # p = softmax(0, ln 3) = (1/4, 3/4); q = softmax(0, 0) = (1/2, 1/2)
    p_logits = torch.tensor([[0.0, LN(3)]])
    q_logits = torch.tensor([[5.0, 5.0]])
    kl_pq = 0.25 * LN(0.25 / 0.5) + 0.75 * LN(0.75 / 0.5)
    kl_qp = 0.5 * LN(0.5 / 0.25) + 0.5 * LN(0.5 / 0.75)
    assert float(symmetric_kl(p_logits, q_logits)) == pytest.approx(0.5 * (kl_pq + kl_qp))
    assert float(symmetric_kl(q_logits, p_logits)) == pytest.approx(0.5 * (kl_pq + kl_qp))
    # a batch of two: the mean over the batch; the second pair is equal (0)
    both = symmetric_kl(torch.cat([p_logits, q_logits]), torch.cat([q_logits, q_logits]))
    assert float(both) == pytest.approx(0.25 * (kl_pq + kl_qp))
    # temperature 2: p = softmax(0, ln 3 / 2) = (1, sqrt 3) / (1 + sqrt 3)
    s = math.sqrt(3)
    p2 = (1 / (1 + s), s / (1 + s))
    kl2 = 0.5 * (sum(a * LN(a / 0.5) for a in p2) + sum(0.5 * LN(0.5 / a) for a in p2))
    assert float(symmetric_kl(p_logits, q_logits, T=2.0)) == pytest.approx(kl2)


def test_symmetric_kl_is_the_references_js_up_to_its_epsilons():
    """The reference adds 1e-4 to logits (no effect), log-probabilities and probabilities
    inside kl_div; the difference to the exact divergence is O(K x 1e-4)."""
    g = torch.Generator().manual_seed(0)
    old, new = torch.randn(8, 10, generator=g) * 3, torch.randn(8, 10, generator=g) * 3
    e = 10e-5
    lo, ln_ = F.log_softmax(old + e, 1), F.log_softmax(new + e, 1)
    so, sn = F.softmax(old + e, 1), F.softmax(new + e, 1)
    ref = (F.kl_div(ln_ + e, so + e, reduction="batchmean")
           + F.kl_div(lo + e, sn + e, reduction="batchmean")) / 2
    ours = symmetric_kl(old, new)
    assert float(ours) == pytest.approx(float(ref), abs=5e-3)
    assert float(ours) != pytest.approx(float(js_divergence(old, new)), rel=0.05)   # not JS


def test_kd_and_js_by_hand():
    s, t = torch.tensor([[0.0, LN(3)]]), torch.tensor([[0.0, 0.0]])
    assert float(kd_loss(s, t, 1.0)) == pytest.approx(-(0.5 * LN(0.25) + 0.5 * LN(0.75)))
    m = (0.375, 0.625)
    js = 0.5 * (0.25 * LN(0.25 / m[0]) + 0.75 * LN(0.75 / m[1])) \
        + 0.5 * (0.5 * LN(0.5 / m[0]) + 0.5 * LN(0.5 / m[1]))
    assert float(js_divergence(s, t)) == pytest.approx(js, rel=1e-5)


def capture_fits(method, monkeypatch):
    """Replace the trainer's fit by a recorder: (params, step, cfg) per call, no training."""
    calls = []

    def fit(params, x, y, step, cfg, desc="train", modules=()):
        calls.append({"params": list(params), "step": step, "cfg": cfg, "x": x, "y": y})
        return {"loss": [], "epochs": cfg.epochs}
    monkeypatch.setattr(method.trainer, "fit", fit)
    return calls


class FixedTeacher(torch.nn.Module):
    """Returns the same logits for every input (B, K)."""
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits.expand(len(x), -1)

    def parameters(self, recurse=True):
        return iter(())


def test_mind_distillation_step_is_ce_plus_beta_symmetric_kl(monkeypatch):
    """Task 1 (classes 2, 3): teacher logits (0, ln 3) on the task's classes, student logits
    (0, 0) from the gated network; labels 2 and 3 -> 0 and 1 in the task.
    loss = CE(student) + 5 * L_SD = ln 2 + 5 * (KL(p||q) + KL(q||p)) / 2."""
    stream, ctx, mind = prepare(tiny_spec("mind", budget="5xconv2"))
    tasks = to_device(stream, ctx.device)
    losses = {}

    def fit_gated(net, x, y, train, use, head_rows, loss_fn, phase, desc):
        losses["fn"], losses["rows"] = loss_fn, head_rows
        return {"loss": []}
    teacher_logits = torch.zeros(1, 6)
    teacher_logits[0, 3] = LN(3)
    teacher_logits[0, 0] = 50.0                  # another task's class: must be sliced away
    monkeypatch.setattr(mind, "train_teacher",
                        lambda task: (FixedTeacher(teacher_logits), {"loss": []}))
    monkeypatch.setattr(mind, "prune", lambda t, teacher: None)
    monkeypatch.setattr(mind, "fit_gated", fit_gated)
    mind.begin_task(tasks[0])
    mind.begin_task(tasks[1])
    mind.learn(tasks[1])
    assert losses["rows"] == slice(2, 4)
    student = torch.zeros(2, 2, requires_grad=True)
    xb = torch.zeros(2, *stream.image_shape)
    loss = losses["fn"](student, xb, torch.tensor([2, 3]))
    kl_pq = 0.25 * LN(0.5) + 0.75 * LN(1.5)
    kl_qp = 0.5 * LN(2) + 0.5 * LN(0.5 / 0.75)
    assert loss.item() == pytest.approx(LN(2) + 5 * 0.5 * (kl_pq + kl_qp))
    assert mind.config.distill_weight == 5.0 and mind.config.temperature == 6.5


def test_clr_step_is_ce_plus_lambda_times_l2_norms(monkeypatch):
    """The task step of CLR's view: head zeroed (logits 0 -> CE = ln 2 over a task's two
    classes), every other trainable tensor filled with 0.5: penalty = lamda * sum 0.5 sqrt(n)."""
    for lam in (1e-5, 0.1):
        stream, ctx, clr = prepare(tiny_spec("clr", budget="5xconv2",
                                             method_options={"pretrain": "first_task",
                                                             "l2_reg": lam}))
        tasks = to_device(stream, ctx.device)
        calls = capture_fits(clr, monkeypatch)
        for task in tasks[:2]:
            clr.begin_task(task)
            clr.learn(task)
        call = calls[-1]                          # task 1's reprogramming step
        head = clr.heads[1]
        with torch.no_grad():
            for p in call["params"]:
                p.fill_(0.5)
            head.weight.zero_()
            head.bias.zero_()
        rest = [p for p in call["params"] if p is not head.weight and p is not head.bias]
        assert len(rest) == len(call["params"]) - 2 and rest
        penalty = lam * sum(0.5 * math.sqrt(p.numel()) for p in rest)
        x = call["x"][:4]
        loss = call["step"](clr.trainer.inputs(x), call["y"][:4], None)
        assert loss.item() == pytest.approx(LN(2) + penalty, rel=1e-6)


def test_memo_step_is_ce_plus_the_auxiliary_ce_with_pycils_labels(monkeypatch):
    """Task 1 of a 2+2+2 stream (old 2, seen 4).  Head: weights 0, biases 0 -> CE = ln 4 over
    the 4 seen classes.  Aux head (2 new + 1 old classes): weights 0, biases (0, ln 2, ln 4) ->
    probabilities (1, 2, 4) / 7.  Labels 0, 1, 2, 3 -> aux labels 0, 0, 1, 2:
    aux CE = (ln 7 + ln 7 + ln 7/2 + ln 7/4) / 4; loss = ln 4 + 1.0 * aux CE."""
    stream, ctx, memo = prepare(tiny_spec("memo", budget="5xconv2+300ex"))
    tasks = to_device(stream, ctx.device)
    calls = capture_fits(memo, monkeypatch)
    memo.begin_task(tasks[0])
    memo.learn(tasks[0])
    memo.begin_task(tasks[1])
    memo.learn(tasks[1])
    call = calls[-1]
    aux_w, aux_b = call["params"][-2:]
    assert aux_w.shape[0] == 3 == aux_b.shape[0]
    with torch.no_grad():
        memo.net.head.weight.zero_()
        memo.net.head.bias.zero_()
        memo.net.head.bias[4:] = 100.0            # unseen classes: must not enter the CE
        aux_w.zero_()
        aux_b.copy_(torch.tensor([0.0, LN(2), LN(4)]))
    picks = [(tasks[c // 2], int((tasks[c // 2].y == c).nonzero()[0])) for c in range(4)]
    x = torch.stack([task.x[i] for task, i in picks])
    y = torch.stack([task.y[i] for task, i in picks])
    assert y.tolist() == [0, 1, 2, 3]
    loss = call["step"](memo.trainer.inputs(x), y, None)
    aux = (LN(7) + LN(7) + LN(7 / 2) + LN(7 / 4)) / 4
    assert loss.item() == pytest.approx(LN(4) + 1.0 * aux, rel=1e-6)
    # the first task has no auxiliary head: plain CE over its 2 classes
    first = calls[0]
    assert float(first["step"](memo.trainer.inputs(x[:2]), y[:2], None)) == \
        pytest.approx(LN(2), rel=1e-6)
