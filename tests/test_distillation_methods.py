"""Behavioural tests of icarl, wa, lwf and ewc: each method's mechanism checked directly."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from clbudget.budget.costs import StreamShape, cost_model
from clbudget.experiment.run import prepare, to_device
from clbudget.methods.ewc import fisher_diagonal
from clbudget.methods.icarl import nme_scores, normalize
from clbudget.nets.classifier import frozen_copy
from tests.helpers import tiny_spec, tiny_stream


def start(name, **overrides):
    spec = tiny_spec(name, **overrides)
    stream, ctx, method = prepare(spec, tiny_stream())
    return method, to_device(stream, ctx.device)


def small_memory(name, n_exemplars=40):
    """A budget (in bytes) that leaves `name` exactly n_exemplars on the tiny stream."""
    st = tiny_stream()
    shape = StreamShape(st.num_tasks, tuple(st.image_shape), st.num_classes)
    return str(cost_model(name).cost(shape, "conv2", n_exemplars).total_bytes)


def run_task(method, task):
    method.begin_task(task)
    stats = method.learn(task)
    method.end_task(task)
    return stats


def feats(method, x_uint8):
    method.net.eval()
    with torch.no_grad():
        return method.net.features(method.trainer.inputs(x_uint8)).float()


# --- iCaRL: nearest-mean-of-exemplars ------------------------------------------------------

def test_nme_scores_rank_the_nearest_mean_first():
    means = torch.eye(4)[:3]                                # (K=3, D=4) unit class means
    f = torch.tensor([[0.1, 2.0, 0.0, 0.0],                 # nearest: class 1
                      [0.0, 0.2, 5.0, 0.0],                 # nearest: class 2
                      [3.0, 0.5, 0.0, 1.0]])                # nearest: class 0
    s = nme_scores(f, means)                                # (3, 3)
    assert s.argmax(1).tolist() == [1, 2, 0]
    fn = f / f.norm(dim=1, keepdim=True)
    expected = -((fn[:, None, :] - means[None]) ** 2).sum(-1)
    torch.testing.assert_close(s, expected, atol=1e-5, rtol=1e-5)
    # the scale of a feature does not matter, only its direction
    torch.testing.assert_close(nme_scores(7 * f, means), s, atol=1e-5, rtol=1e-5)


def test_icarl_class_means_are_normalised_exemplar_means_and_drive_scores():
    method, tasks = start("icarl", budget=small_memory("icarl"))
    assert method.memory.capacity == 40
    for task in tasks[:2]:
        run_task(method, task)
    mx, my = method.memory.data()
    seen = sorted(torch.unique(my).tolist())
    assert seen == list(range(method.seen))
    for c in seen:
        f = normalize(feats(method, mx[my == c]))
        mean = f.mean(0)
        torch.testing.assert_close(method.class_means[c], mean / mean.norm(),
                                   atol=1e-5, rtol=1e-4)
    assert method.class_means[method.seen:].abs().sum() == 0       # unseen classes: no mean
    assert method.class_means.dtype == torch.float32
    assert tuple(method.class_means.shape) == (6, method.net.backbone.out_dim)

    # task-agnostic scores are NME's, not the linear head's
    x = method.trainer.inputs(tasks[0].x_test)
    method.eval()
    with torch.no_grad():
        s = method.scores(x)
        expected = nme_scores(method.net.features(x), method.class_means)
        torch.testing.assert_close(s, expected)
        d = torch.cdist(normalize(method.net.features(x)), method.class_means[:method.seen])
        assert torch.equal(s[:, :method.seen].argmax(1), d.argmin(1))

    # the paper's flipped means: average of the two normalised means, normalised
    method.config = dataclasses.replace(method.config, flip_means=True)
    method.update_class_means()
    c = seen[0]
    xc = mx[my == c]
    a = normalize(feats(method, xc)).mean(0)
    b = normalize(feats(method, xc.flip(3))).mean(0)
    m = a / a.norm() + b / b.norm()
    torch.testing.assert_close(method.class_means[c], m / m.norm(), atol=1e-5, rtol=1e-4)


# --- distillation pulls the student toward the teacher -----------------------------------

def distance_to_teacher(name, epochs=4, **overrides):
    """Mean KL(teacher || student) on the old classes' softened logits (T=2), measured on
    task 1's training images after learning task 1; the teacher is the net after task 0."""
    method, tasks = start(name, epochs=epochs, **overrides)
    run_task(method, tasks[0])
    teacher = frozen_copy(method.net)
    run_task(method, tasks[1])
    x = method.trainer.inputs(tasks[1].x)
    method.net.eval()
    with torch.no_grad():
        old = len(tasks[0].classes)
        t = F.log_softmax(teacher(x)[:, :old] / 2, 1)
        s = F.log_softmax(method.net(x)[:, :old] / 2, 1)
        return float(F.kl_div(s, t, log_target=True, reduction="batchmean"))


def test_lwf_distillation_keeps_old_logits_closer_to_the_teacher_than_finetune():
    lwf, finetune = distance_to_teacher("lwf"), distance_to_teacher("finetune")
    assert lwf < 0.5 * finetune, (lwf, finetune)


def test_icarl_distillation_keeps_old_logits_closer_to_the_teacher():
    """Same memory (12 exemplars), stream and seed; only the KD weight differs (1 vs 0)."""
    budget = small_memory("icarl", 12)
    kd = distance_to_teacher("icarl", budget=budget)
    no_kd = distance_to_teacher("icarl", budget=budget, method_options=(("kd_weight", 0.0),))
    assert kd < 0.5 * no_kd, (kd, no_kd)


def test_distilling_methods_keep_a_frozen_copy_of_the_last_network():
    for name in ("lwf", "icarl", "wa"):
        method, tasks = start(name, budget=small_memory(name))
        run_task(method, tasks[0])
        assert not method.old_net.training
        assert all(not p.requires_grad for p in method.old_net.parameters())
        for p, q in zip(method.old_net.state_dict().values(), method.net.state_dict().values()):
            assert torch.equal(p, q) and p.data_ptr() != q.data_ptr()


# --- WA: weight aligning ----------------------------------------------------------------

def test_wa_aligns_new_class_weight_norms_to_old_ones():
    method, tasks = start("wa", budget=small_memory("wa"))
    stats0 = run_task(method, tasks[0])
    assert "align_gamma" not in stats0                    # nothing to align on the first task
    method.begin_task(tasks[1])
    stats = method.learn(tasks[1])
    w = method.net.head.weight.detach()
    old, seen = method.old, method.seen
    norms = w[:seen].norm(dim=1)
    torch.testing.assert_close(norms[old:].mean(), norms[:old].mean(), rtol=1e-5, atol=1e-6)
    assert stats["align_gamma"] > 0 and stats["align_gamma"] != 1.0
    method.end_task(tasks[1])
    # the teacher kept for the next task is the aligned network
    torch.testing.assert_close(method.old_net.head.weight, method.net.head.weight)


def test_wa_weight_clipping_keeps_head_weights_non_negative():
    method, tasks = start("wa", budget=small_memory("wa"), method_options=(("clip_weights", True),))
    for task in tasks[:2]:
        run_task(method, task)
    assert (method.net.head.weight >= 0).all()


# --- EWC: online Fisher and quadratic penalty ---------------------------------------------

def per_example_fisher(net, x, y, seen, trainer):
    """Reference: one autograd pass per example, p(y|x) * grad(log p(y|x))^2, averaged."""
    net.eval()
    out = [torch.zeros_like(p) for p in net.parameters()]
    for i in range(len(x)):
        xi = trainer.inputs(x[i:i + 1])
        ll = F.log_softmax(net(xi)[:, :seen], 1)[0, int(y[i])]
        grads = torch.autograd.grad(ll, list(net.parameters()), allow_unused=True)
        for o, g in zip(out, grads):
            if g is not None:
                o += ll.detach().exp() * g ** 2
    return [o / len(x) for o in out]


def test_ewc_fisher_matches_per_example_gradients():
    method, tasks = start("ewc")
    run_task(method, tasks[0])
    x, y = tasks[0].x[:10], tasks[0].y[:10]
    got = fisher_diagonal(method.net, x, y, method.seen, method.trainer, batch_size=4)
    ref = per_example_fisher(method.net, x, y, method.seen, method.trainer)
    assert len(got) == len(list(method.net.parameters()))
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, atol=1e-7, rtol=1e-4)
    assert sum(float(g.sum()) for g in got) > 0


def test_ewc_penalty_is_zero_at_the_anchor_and_fisher_accumulates_online():
    gamma = 0.5
    method, tasks = start("ewc", method_options=(("gamma", gamma), ("fisher", "eval")))
    run_task(method, tasks[0])
    f0 = [f.clone() for f in method.fisher]
    # after task 0: F = F_0 (nothing before), anchor = current parameters
    for f, fn in zip(method.fisher, method.task_fisher(tasks[0])):
        torch.testing.assert_close(f, fn)
    for a, p in zip(method.anchor, method.net.parameters()):
        assert torch.equal(a, p.detach()) and a.data_ptr() != p.data_ptr()
    with torch.no_grad():
        assert float(method.penalty()) == 0.0
    names = [n for n, _ in method.net.named_parameters()]
    for n in ("head.weight", "head.bias"):   # covered; log p(y|x) is over all K outputs
        f = method.fisher[names.index(n)]      # (Mammoth), so unseen rows carry Fisher too
        assert f[:method.seen].sum() > 0 and f[method.seen:].abs().sum() > 0

    # away from the anchor the penalty is e_lambda * sum F * delta^2 > 0
    delta = 0.01
    with torch.no_grad():
        for p in method.net.parameters():
            p.add_(delta)
    expected = method.config.e_lambda * sum(float(f.sum()) for f in method.fisher) * delta ** 2
    with torch.no_grad():
        assert float(method.penalty()) > 0
        assert float(method.penalty()) == pytest.approx(expected, rel=1e-4)
    with torch.no_grad():
        for p, a in zip(method.net.parameters(), method.anchor):
            p.copy_(a)

    # after task 1: F = gamma * F_0 + F_1, where F_1 is the Fisher of task 1 at the new anchor
    run_task(method, tasks[1])
    f1 = method.task_fisher(tasks[1])
    for f, a, b in zip(method.fisher, f0, f1):
        torch.testing.assert_close(f, gamma * a + b)
    for a, p in zip(method.anchor, method.net.parameters()):
        assert torch.equal(a, p.detach())


def test_ewc_penalty_resists_drift_on_the_second_task():
    """The penalty's pull: parameters move less from the anchor than without it."""
    def drift(e_lambda):
        method, tasks = start("ewc", epochs=3, method_options=(("e_lambda", e_lambda),))
        run_task(method, tasks[0])
        anchor = [a.clone() for a in method.anchor]
        weights = [f.clone() for f in method.fisher]
        method.begin_task(tasks[1])
        method.learn(tasks[1])
        return sum(float((w * (p.detach() - a) ** 2).sum())
                   for w, p, a in zip(weights, method.net.parameters(), anchor))
    assert drift(100.0) < 0.5 * drift(0.0)
