"""Reference parity: each baseline's step loss, memory selection and classifier against the
reference's formula, written here from the reference code (PyCIL models/*.py, models/base.py,
convs/*.py, utils/data.py; Mammoth models/derpp.py, ewc_on.py, utils/buffer.py) with plain
torch on fixed small tensors, never through clbudget's loss helpers.  1e-5.

A method's step is taken from `learn` without training: `Trainer.fit` is replaced by a
function that keeps the step closure, the training data and the modules it was handed.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from clbudget.train.recipes import get_recipe, pipeline_for
from clbudget.experiment.run import prepare, to_device
from clbudget.nets.backbones import create_backbone
from clbudget.methods.memory import ExemplarMemory, herding
from clbudget.methods.registry import method_class
from tests.helpers import tiny_spec, tiny_stream

ATOL = 1e-5


# --- the reference formulas, by hand ------------------------------------------------------

def ce(logits, target):
    """F.cross_entropy by hand: mean of logsumexp(z) - z_y."""
    logits = logits.double()
    return (logits.logsumexp(1) - logits.gather(1, target.long()[:, None])[:, 0]).mean()


def pycil_kd(pred, soft, T):
    """PyCIL models/icarl.py `_KD_loss`: -sum(softmax(soft/T) * log_softmax(pred/T)) / B."""
    pred, soft = pred.double() / T, soft.double() / T
    log_p = pred - pred.logsumexp(1, keepdim=True)
    q = (soft - soft.logsumexp(1, keepdim=True)).exp()
    return -(q * log_p).sum() / pred.shape[0]


def pycil_normalise(v):
    """PyCIL models/base.py: (vectors.T / (np.linalg.norm(vectors.T, axis=0) + EPSILON)).T"""
    return v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-8)


def pycil_herding(vectors, m):
    """PyCIL models/base.py `_construct_exemplar`: the selected rows' original indices."""
    vectors = pycil_normalise(np.asarray(vectors, dtype=np.float64))
    class_mean = vectors.mean(0)
    index = list(range(len(vectors)))
    chosen, exemplar_vectors = [], []
    for k in range(1, m + 1):
        S = np.sum(exemplar_vectors, axis=0) if exemplar_vectors else np.zeros_like(class_mean)
        mu_p = (vectors + S) / k
        i = int(np.argmin(np.sqrt(np.sum((class_mean - mu_p) ** 2, axis=1))))
        chosen.append(index[i])
        exemplar_vectors.append(vectors[i].copy())
        vectors = np.delete(vectors, i, axis=0)
        del index[i]
    return chosen


def pycil_class_mean(vectors):
    """PyCIL models/base.py: mean of the normalised vectors, normalised (no epsilon)."""
    mean = pycil_normalise(np.asarray(vectors, dtype=np.float64)).mean(0)
    return mean / np.linalg.norm(mean)


# --- driving a method -----------------------------------------------------------------------

def start(name, **overrides):
    spec = tiny_spec(name, **overrides)
    stream, ctx, method = prepare(spec, tiny_stream())
    return method, to_device(stream, ctx.device)


def run_task(method, task):
    method.begin_task(task)
    method.learn(task)
    method.end_task(task)


def captured(method, task) -> dict:
    """`method.learn(task)` with `Trainer.fit` replaced: its arguments, nothing trained."""
    box = {}

    def fit(params, x, y, step, cfg, desc="", modules=()):
        box.update(params=list(params), x=x, y=y, step=step, cfg=cfg, modules=list(modules))
        return {"loss": [], "epochs": 0}
    method.ctx.trainer.fit = fit               # an instance attribute shadows the method
    try:
        box["stats"] = method.learn(task)
    finally:
        del method.ctx.trainer.fit
    return box


def at_task(name, t=1, **overrides):
    """`name` trained on tasks < t, task t begun, its step captured."""
    method, tasks = start(name, **overrides)
    for task in tasks[:t]:
        run_task(method, task)
    method.begin_task(tasks[t])
    return method, tasks, captured(method, tasks[t])


def batch(method, task, n=8):
    """A fixed batch: the first n training images of the task, normalised, no augmentation."""
    return method.trainer.inputs(task.x[:n]), task.y[:n], torch.arange(n)


def step_loss(method, box, xb, yb, idx):
    for m in method.modules():
        m.eval()                                 # BN in eval mode: both sides deterministic
    with torch.no_grad():
        return float(box["step"](xb, yb, idx))


# --- finetune, replay, joint ----------------------------------------------------------------

def test_finetune_step_is_new_class_ce():
    method, tasks, box = at_task("finetune")
    old, seen = method.old, method.seen
    assert (old, seen) == (2, 4)
    assert torch.equal(box["x"], tasks[1].x)                       # the new task's data only
    xb, yb, idx = batch(method, tasks[1])
    got = step_loss(method, box, xb, yb, idx)
    with torch.no_grad():
        logits = method.net(xb)
    # PyCIL models/finetune.py: F.cross_entropy(logits[:, known:], targets - known)
    ref = ce(logits[:, old:seen], yb - old)
    assert got == pytest.approx(float(ref), abs=ATOL)
    # old classes' rows get no gradient from the loss
    method.net.zero_grad()
    box["step"](xb, yb, idx).backward()
    assert float(method.net.head.weight.grad[:old].abs().sum()) == 0.0
    assert float(method.net.head.weight.grad[old:seen].abs().sum()) > 0.0


def test_replay_step_is_ce_over_seen_classes():
    method, tasks, box = at_task("replay")
    seen, (mx, my) = method.seen, method.memory.data()
    assert len(mx) > 0
    assert torch.equal(box["x"], torch.cat([tasks[1].x, mx]))     # new task + memory
    assert torch.equal(box["y"], torch.cat([tasks[1].y, my]))
    n = len(tasks[1].x)
    x = torch.cat([tasks[1].x[:4], mx[:4]])                          # new and old classes
    y = torch.cat([tasks[1].y[:4], my[:4]])
    xb, idx = method.trainer.inputs(x), torch.cat([torch.arange(4), n + torch.arange(4)])
    got = step_loss(method, box, xb, y, idx)
    with torch.no_grad():
        ref = ce(method.net(xb)[:, :seen], y)                        # PyCIL models/replay.py
    assert got == pytest.approx(float(ref), abs=ATOL)


def test_joint_trains_on_every_seen_image_with_ce_over_seen():
    method, tasks, box = at_task("joint", t=2)
    assert torch.equal(box["x"], torch.cat([tasks[0].x, tasks[1].x, tasks[2].x]))
    assert torch.equal(box["y"], torch.cat([tasks[0].y, tasks[1].y, tasks[2].y]))
    x = torch.cat([tasks[0].x[:3], tasks[2].x[:3]])
    y = torch.cat([tasks[0].y[:3], tasks[2].y[:3]])
    xb = method.trainer.inputs(x)
    got = step_loss(method, box, xb, y, torch.arange(6))
    with torch.no_grad():
        ref = ce(method.net(xb)[:, :method.seen], y)
    assert got == pytest.approx(float(ref), abs=ATOL)


def test_baselines_train_with_their_reference_recipes():
    for name, recipe in (("finetune", "pycil-finetune"), ("replay", "pycil-replay"),
                         ("joint", "pycil-replay"), ("icarl", "pycil-icarl"),
                         ("wa", "pycil-wa"), ("lwf", "pycil-lwf"), ("der", "pycil-der"),
                         ("ewc", "mammoth-seq-cifar10-ewc_on"),
                         ("derpp", "mammoth-seq-cifar10-derpp")):
        assert method_class(name).recipe == recipe, name
    # PyCIL models/finetune.py epochs 80, milestones [40, 70]; models/replay.py 70, [30, 50]
    for recipe, epochs, milestones in (("pycil-finetune", 80, (40, 70)),
                                       ("pycil-replay", 70, (30, 50)),
                                       ("pycil-icarl", 170, (80, 120)),
                                       ("pycil-wa", 170, (60, 100, 140)),
                                       ("pycil-lwf", 250, (60, 120, 180, 220)),
                                       ("pycil-der", 170, (80, 120, 150))):
        r = get_recipe(recipe)
        later, first = r.phase("later"), r.phase("first")
        assert (later.epochs, later.milestones, later.lr, later.weight_decay, later.momentum,
                later.batch_size) == (epochs, milestones, 0.1, 2e-4, 0.9, 128), recipe
        assert (first.epochs, first.weight_decay) == (200, 5e-4), recipe
        assert (r.augmentation, r.normalization) == ("crop-flip-brightness63", "pycil")
    # Mammoth seq-cifar10: utils/best_args.py derpp lr 0.03; models/config/ewc_on.yaml lr 0.1
    for recipe, lr in (("mammoth-seq-cifar10-derpp", 0.03), ("mammoth-seq-cifar10-ewc_on", 0.1)):
        r = get_recipe(recipe)
        assert (r.augmentation, r.normalization) == ("crop-flip", "mammoth")
        c = r.phase("later")
        assert (c.epochs, c.batch_size, c.lr, c.momentum, c.weight_decay, c.schedule) == \
            (50, 32, lr, 0.0, 0.0, "constant")


# --- the head: PyCIL's SimpleLinear rows at arrival, Mammoth's full-width nn.Linear ---------

def simple_linear_like(w, b):
    """Rows initialised as PyCIL's SimpleLinear: |w| <= sqrt(3 / D), uniform (std bound/sqrt3),
    bias exactly zero."""
    w, b = w.detach(), b.detach()
    bound = (3.0 / w.shape[1]) ** 0.5
    return (float(w.abs().max()) <= bound and float(b.abs().max()) == 0.0
            and 0.75 < float(w.std()) / (bound / 3 ** 0.5) < 1.25)


@pytest.mark.parametrize("name", ["finetune", "replay", "joint", "icarl", "wa", "lwf"])
def test_pycil_heads_initialise_arriving_rows_as_simple_linear(name):
    method, tasks = start(name)
    head = method.net.head
    with torch.no_grad():                       # a sentinel: what decay or a bad init leaves
        head.weight.fill_(5.0)
        head.bias.fill_(7.0)
    method.begin_task(tasks[0])
    assert simple_linear_like(head.weight[:2], head.bias[:2])
    assert bool((head.weight[2:] == 5.0).all() and (head.bias[2:] == 7.0).all())
    method.learn(tasks[0])
    method.end_task(tasks[0])
    trained_w, trained_b = head.weight[:2].detach().clone(), head.bias[:2].detach().clone()
    method.begin_task(tasks[1])                 # old rows untouched, arriving rows fresh
    assert torch.equal(head.weight[:2], trained_w) and torch.equal(head.bias[:2], trained_b)
    assert simple_linear_like(head.weight[2:4], head.bias[2:4])


@pytest.mark.parametrize("name", ["derpp", "ewc"])
def test_mammoth_heads_are_one_default_linear_never_reinitialised(name):
    method, tasks = start(name)
    head = method.net.head
    d = head.in_features
    # nn.Linear's default (Mammoth backbone/ResNetBlock.py classifier): bound 1/sqrt(D) on
    # both weights and biases, biases not zero
    w, b = head.weight.detach(), head.bias.detach()
    assert float(w.abs().max()) <= d ** -0.5 and float(b.abs().max()) > 0
    before_w, before_b = head.weight.detach().clone(), head.bias.detach().clone()
    method.begin_task(tasks[0])
    assert torch.equal(head.weight, before_w) and torch.equal(head.bias, before_b)


# --- herding and the class-balanced memory (PyCIL models/base.py) --------------------------

def test_herding_order_matches_the_reference_formula():
    g = torch.Generator().manual_seed(0)
    for n, d, m in ((12, 5, 6), (30, 8, 30), (7, 3, 4)):
        f = torch.randn(n, d, generator=g, dtype=torch.float64)
        f = f / f.norm(dim=1, keepdim=True)
        assert herding(f, m).tolist() == pycil_herding(f.numpy(), m)


def test_class_balanced_memory_herds_new_classes_and_keeps_old_prefixes():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (40, 1, 2, 3), generator=g, dtype=torch.uint8)
    y = torch.arange(4).repeat_interleave(10)

    def features(xs):                          # a fixed "network": the flattened pixels
        return xs.double().flatten(1) - 120.0
    memory = ExemplarMemory(8, (1, 2, 3), torch.device("cpu"))
    memory.rebalance(x[:20], y[:20], 2, "herding", features)         # 2 classes: 4 each
    expected = {}
    for c in (0, 1):
        pos = (y[:20] == c).nonzero().flatten()
        expected[c] = [int(pos[i]) for i in pycil_herding(features(x[pos]).numpy(), 4)]
    mx, my = memory.data()
    for c in (0, 1):
        assert torch.equal(mx[my == c], x[expected[c]])
    memory.rebalance(x[20:], y[20:], 4, "herding", features)         # 4 classes: 2 each
    mx, my = memory.data()
    for c in (0, 1):                             # PyCIL `_reduce_exemplar`: the first m
        assert torch.equal(mx[my == c], x[expected[c][:2]])
    for c in (2, 3):
        pos = 20 + (y[20:] == c).nonzero().flatten()
        chosen = [int(pos[i]) for i in pycil_herding(features(x[pos]).numpy(), 2)]
        assert torch.equal(mx[my == c], x[chosen])


@pytest.mark.parametrize("name", ["replay", "icarl", "wa"])
def test_memory_after_a_task_is_the_reference_herding_of_the_networks_features(name):
    from clbudget.budget.costs import StreamShape, cost_model
    st = tiny_stream()
    shape = StreamShape(st.num_tasks, tuple(st.image_shape), st.num_classes)
    budget = str(cost_model(name).cost(shape, "conv2", 20).total_bytes)   # 20 exemplars
    method, tasks = start(name, budget=budget)
    run_task(method, tasks[0])
    net, task = method.net.eval(), tasks[0]
    quota = method.memory.capacity // method.seen
    assert quota == 10 and (task.y == 0).sum() > quota           # herding picks a subset
    mx, my = method.memory.data()
    for c in (0, 1):
        pos = (task.y == c).nonzero().flatten()
        with torch.no_grad():            # PyCIL `_extract_vectors`: eval mode, test transform
            v = net.features(method.trainer.inputs(task.x[pos])).double().numpy()
        chosen = [int(pos[i]) for i in pycil_herding(v, quota)]
        assert torch.equal(mx[my == c], task.x[chosen]), c


# --- iCaRL: CE + KD, class means, NME (PyCIL models/icarl.py, models/base.py) --------------

def test_icarl_step_is_ce_plus_kd_and_nme_uses_reference_means():
    method, tasks, box = at_task("icarl")
    old, seen = method.old, method.seen
    xb, yb, idx = batch(method, tasks[1])
    got = step_loss(method, box, xb, yb, idx)
    with torch.no_grad():
        logits, teacher = method.net(xb), method.old_net(xb)
    ref = ce(logits[:, :seen], yb) + pycil_kd(logits[:, :old], teacher[:, :old], 2.0)
    assert got == pytest.approx(float(ref), abs=ATOL)

    # class means after task 0, from the exemplars with the network as it ended task 0
    method2, tasks2 = start("icarl")
    run_task(method2, tasks2[0])
    net = method2.net.eval()
    mx, my = method2.memory.data()
    with torch.no_grad():
        for c in (0, 1):
            v = net.features(method2.trainer.inputs(mx[my == c])).double().numpy()
            ref_mean = pycil_class_mean(v)
            np.testing.assert_allclose(method2.class_means[c].double().numpy(), ref_mean,
                                       atol=ATOL)
        # NME (PyCIL `_eval_nme`): sqeuclidean of the normalised vector to each class mean
        xt = method2.trainer.inputs(tasks2[0].x_test[:10])
        v = pycil_normalise(net.features(xt).double().numpy())
        means = method2.class_means[:2].double().numpy()
        dists = ((v[:, None, :] - means[None]) ** 2).sum(-1)                  # (B, 2)
        scores = method2.scores(xt)[:, :2].double().numpy()
    np.testing.assert_allclose(-scores, dists, atol=ATOL)


# --- WA: (1 - lam) CE + lam KD, then weight aligning (PyCIL models/wa.py, inc_net.py) -------

def test_wa_step_and_weight_aligning_match_the_reference():
    method, tasks = start("wa")
    for task in tasks[:2]:                      # task 2: lam = 4 / 6, not 1 / 2
        run_task(method, task)
    method.begin_task(tasks[2])
    head = method.net.head
    w_before = head.weight.detach().clone()
    b_before = head.bias.detach().clone()
    box = captured(method, tasks[2])            # fit replaced: learn only aligns
    old, seen = method.old, method.seen
    assert (old, seen) == (4, 6)
    # PyCIL IncrementalNet.weight_align: gamma = mean ||w_old|| / mean ||w_new||
    w = w_before[:seen].double()
    gamma = float(w[:old].norm(dim=1).mean() / w[old:seen].norm(dim=1).mean())
    assert box["stats"]["align_gamma"] == pytest.approx(gamma, rel=1e-6)
    torch.testing.assert_close(head.weight[old:seen], w_before[old:seen] * gamma)
    assert torch.equal(head.weight[:old], w_before[:old]) and torch.equal(head.bias, b_before)
    xb, yb, idx = batch(method, tasks[2])
    got = step_loss(method, box, xb, yb, idx)
    with torch.no_grad():
        logits, teacher = method.net(xb), method.old_net(xb)
    lam = old / seen                            # PyCIL kd_lambda = known / total
    ref = (1 - lam) * ce(logits[:, :seen], yb) + lam * pycil_kd(logits[:, :old],
                                                                 teacher[:, :old], 2.0)
    assert got == pytest.approx(float(ref), abs=ATOL)


# --- LwF: CE over new classes + lamda KD (PyCIL models/lwf.py) ------------------------------

def test_lwf_step_is_new_class_ce_plus_three_kd():
    method, tasks, box = at_task("lwf")
    old, seen = method.old, method.seen
    assert torch.equal(box["x"], tasks[1].x)                       # no exemplars
    xb, yb, idx = batch(method, tasks[1])
    got = step_loss(method, box, xb, yb, idx)
    with torch.no_grad():
        logits, teacher = method.net(xb), method.old_net(xb)
    ref = ce(logits[:, old:seen], yb - old) + 3.0 * pycil_kd(logits[:, :old],
                                                            teacher[:, :old], 2.0)
    assert got == pytest.approx(float(ref), abs=ATOL)


# --- online EWC (Mammoth models/ewc_on.py) --------------------------------------------------

def test_ewc_step_is_ce_over_all_classes_plus_penalty():
    method, tasks = start("ewc")
    run_task(method, tasks[0])
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():                       # move away from the anchor
        for p in method.net.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    method.begin_task(tasks[1])
    box = captured(method, tasks[1])
    xb, yb, idx = batch(method, tasks[1])
    got = step_loss(method, box, xb, yb, idx)
    with torch.no_grad():
        logits = method.net(xb)                 # (B, K): Mammoth's loss sees every output
        penalty = sum((f.double() * (p.double() - a.double()) ** 2).sum()
                      for f, p, a in zip(method.fisher, method.net.parameters(), method.anchor))
    ref = ce(logits, yb) + 10.0 * penalty
    assert float(penalty) > 0
    assert got == pytest.approx(float(ref), abs=ATOL)


def test_ewc_fisher_matches_the_reference_formula():
    """The "eval" alternative: Mammoth's formula with BN in eval mode on un-augmented images
    (the default, Mammoth's pass itself: tests/test_protocol.py)."""
    method, tasks = start("ewc", method_options=(("fisher", "eval"),))
    run_task(method, tasks[0])
    task = tasks[0]
    x, y = task.x[:6], task.y[:6]
    sub = type(task)(task.index, task.classes, x, y, task.x_test, task.y_test)
    got = method.task_fisher(sub)
    net = method.net.eval()
    ref = [torch.zeros_like(p, dtype=torch.float64) for p in net.parameters()]
    for i in range(len(x)):                     # Mammoth: one example at a time
        out = net(method.trainer.inputs(x[i:i + 1]))                  # (1, K), all outputs
        ll = (out - out.logsumexp(1, keepdim=True))[0, int(y[i])]
        grads = torch.autograd.grad(ll, list(net.parameters()))
        for r, gr in zip(ref, grads):
            r += float(ll.detach().exp()) * gr.double() ** 2                  # exp_cond_prob * g^2
    for gt, r in zip(got, ref):
        torch.testing.assert_close(gt.double(), r / len(x), atol=1e-7, rtol=1e-4)
    head_w = got[[n for n, _ in net.named_parameters()].index("head.weight")]
    assert float(head_w[method.seen:].abs().sum()) > 0              # unseen outputs too


# --- DER (PyCIL models/der.py, utils/inc_net.py DERNet) -------------------------------------

def test_der_step_aux_labels_and_head_growth_match_the_reference():
    method, tasks = start("der")
    run_task(method, tasks[0])
    net = method.net
    head0_w, head0_b = net.head.weight.detach().clone(), net.head.bias.detach().clone()
    branch0 = {k: v.clone() for k, v in net.branches[0].state_dict().items()}
    method.begin_task(tasks[1])
    old, seen, D = method.old, method.seen, net.out_dim
    # DERNet.update_fc: a new convnet loading the last one's state; old ones frozen; the head
    # one backbone wider with old rows copied into the first columns, the rest SimpleLinear
    assert len(net.branches) == 2
    for k, v in net.branches[1].state_dict().items():
        assert torch.equal(v, branch0[k])
    assert not any(p.requires_grad for p in net.branches[0].parameters())
    assert all(p.requires_grad for p in net.branches[1].parameters())
    assert net.head.weight.shape == (head0_w.shape[0], 2 * D)
    assert torch.equal(net.head.weight[:old, :D], head0_w[:old])
    assert torch.equal(net.head.bias[:old], head0_b[:old])
    assert simple_linear_like(net.head.weight[old:], net.head.bias[old:])
    box = captured(method, tasks[1])
    aux = box["modules"][-1]
    assert aux.out_features == seen - old + 1
    mx, my = method.memory.data()
    x = torch.cat([tasks[1].x[:4], mx[:4]])
    y = torch.cat([tasks[1].y[:4], my[:4]])
    xb = method.trainer.inputs(x)
    got = step_loss(method, box, xb, y, torch.arange(8))
    with torch.no_grad():
        f = net.features(xb)                                            # (B, 2D)
        # aux_targets = where(targets - known + 1 > 0, targets - known + 1, 0)
        aux_y = torch.where(y - old + 1 > 0, y - old + 1, torch.zeros_like(y))
        assert aux_y.tolist() == [int(v) - old + 1 for v in y[:4]] + [0] * 4
        ref = ce(net.head(f)[:, :seen], y) + ce(aux(f[:, -D:]), aux_y)
    assert got == pytest.approx(float(ref), abs=ATOL)


# --- DER++ (Mammoth models/derpp.py, utils/buffer.py) --------------------------------------

def test_derpp_step_matches_the_reference_loss():
    no_aug = (("first", {"augment": False}), ("later", {"augment": False}))
    method, tasks = start("derpp", recipe_options=no_aug)
    run_task(method, tasks[0])
    memory = method.memory
    n = len(memory)
    assert n > method.config.minibatch_size
    images, labels = memory.images[:n].clone(), memory.labels[:n].long().clone()
    logits_z = memory.logits[:n].clone()
    method.begin_task(tasks[1])
    box = captured(method, tasks[1])
    xb, yb, idx = batch(method, tasks[1], n=8)
    g = method.trainer.generator
    state = g.get_state()
    got = step_loss(method, box, xb, yb, idx)
    g.set_state(state)                           # the same two draws, by the formula
    mb = method.config.minibatch_size
    i1 = torch.randperm(n, generator=g)[:mb]     # buffer.get_data: without replacement
    i2 = torch.randperm(n, generator=g)[:mb]
    with torch.no_grad():
        net = method.net
        out = net(xb)                                                     # (B, K), unmasked
        x1, x2 = method.trainer.inputs(images[i1]), method.trainer.inputs(images[i2])
        mse = ((net(x1).double() - logits_z[i1].double()) ** 2).mean()
        ref = ce(out, yb) + 0.2 * mse + 0.5 * ce(net(x2), labels[i2])
    assert got == pytest.approx(float(ref), abs=ATOL)
    # the batch was offered un-augmented, with the logits of that step (before the update)
    assert memory.capacity >= n + 8 and len(memory) == n + 8          # appended, not full
    assert torch.equal(memory.images[n:n + 8], tasks[1].x[:8])
    assert torch.equal(memory.labels[n:n + 8].long(), tasks[1].y[:8])
    torch.testing.assert_close(memory.logits[n:n + 8], out.float())


def test_reservoir_keeps_every_offered_example_with_equal_probability():
    capacity, offered, trials = 5, 20, 1500
    counts = torch.zeros(offered)
    x = torch.arange(offered, dtype=torch.uint8).view(offered, 1, 1, 1)
    y = torch.arange(offered)
    for t in range(trials):
        memory = ExemplarMemory(capacity, (1, 1, 1), torch.device("cpu"))
        g = torch.Generator().manual_seed(t)
        for b in range(0, offered, 4):
            memory.reservoir(x[b:b + 4], y[b:b + 4], g)
        if t == 0:
            assert memory.offered == offered and len(memory) == capacity
        counts[memory.labels.long()] += 1
    # Mammoth utils/buffer.py reservoir: P(example kept) = capacity / offered for every one
    freq = counts / trials
    assert float((freq - capacity / offered).abs().max()) < 0.05
    memory = ExemplarMemory(capacity, (1, 1, 1), torch.device("cpu"))
    memory.reservoir(x[:capacity], y[:capacity], torch.Generator().manual_seed(0))
    assert memory.labels.long().tolist() == list(range(capacity))    # the first fill in order


# --- backbone initialisation, augmentation, normalisation ----------------------------------

def test_cifar_resnet_init_is_pycils_and_conv2_keeps_pytorchs():
    torch.manual_seed(0)
    net = create_backbone("resnet32", (3, 32, 32))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    for m in convs:          # PyCIL convs/cifar_resnet.py: normal(0, sqrt(2 / (k*k*out)))
        n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
        if m.weight.numel() >= 2000:
            assert float(m.weight.detach().std()) / (2.0 / n) ** 0.5 == pytest.approx(1.0, abs=0.1)
            assert abs(float(m.weight.detach().mean())) < 0.1 * (2.0 / n) ** 0.5
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert bool((m.weight == 1).all() and (m.bias == 0).all())
    conv = [m for m in create_backbone("conv2", (3, 32, 32)).modules()
            if isinstance(m, torch.nn.Conv2d)][1]          # PyTorch's default: 1/sqrt(fan_in)
    fan_in = conv.in_channels * 9
    assert float(conv.weight.detach().abs().max()) <= fan_in ** -0.5


def test_brightness_jitter_equals_pil_image_enhance():
    from PIL import Image, ImageEnhance
    from clbudget.train.loop import Pipeline, brighten
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 3, 8, 8), generator=g, dtype=torch.uint8)
    x[0] = 250                                  # saturates above 1
    factors = torch.tensor([1.2, 0.8, 1.0, 0.753, 1.247, 0.0], dtype=torch.float64)
    out = brighten(x, factors)
    for i in range(6):                          # torchvision ColorJitter on a PIL image
        img = Image.fromarray(x[i].permute(1, 2, 0).numpy())
        ref = np.asarray(ImageEnhance.Brightness(img).enhance(float(factors[i])))
        assert np.array_equal(out[i].permute(1, 2, 0).numpy(), ref), i
    p = Pipeline((0.0,) * 3, (1.0,) * 3, pad=0, brightness=63 / 255)
    f = p.brightness_factors(4000, torch.Generator().manual_seed(1))
    assert float(f.min()) >= 1 - 63 / 255 and float(f.max()) <= 1 + 63 / 255
    assert float(f.mean()) == pytest.approx(1.0, abs=0.01)           # uniform, centred
    assert float(f.std()) == pytest.approx((2 * 63 / 255) / 12 ** 0.5, rel=0.05)
    flat = torch.full((64, 3, 4, 4), 100, dtype=torch.uint8)
    aug = p.augment(flat, torch.Generator().manual_seed(2))
    per_image = aug.float().mean((1, 2, 3))
    assert float(per_image.std()) > 3 and bool((aug == aug[:, :1, :1, :1]).all())
    assert int(aug.min()) >= 75 and int(aug.max()) <= 124            # 100 * [0.753, 1.247]


def test_normalisation_uses_the_references_constants_or_the_whole_training_set():
    x = torch.randint(0, 256, (5000, 3, 2, 2), generator=torch.Generator().manual_seed(0),
                      dtype=torch.uint8)
    x[4500:] = 255                                # the tail matters: all images are used
    p = pipeline_for(get_recipe("pycil-icarl"), "cifar10", x)
    assert p.mean == (0.4914, 0.4822, 0.4465) and p.std == (0.2023, 0.1994, 0.2010)
    assert p.brightness == pytest.approx(63 / 255)
    p = pipeline_for(get_recipe("mammoth-seq-cifar10-derpp"), "cifar10", x)
    assert p.std == (0.2470, 0.2435, 0.2615) and p.brightness == 0.0
    p = pipeline_for(get_recipe("pycil-icarl"), "glyphs", x)       # no constants: the data's
    v = x.double().numpy() / 255
    np.testing.assert_allclose(p.mean, v.mean((0, 2, 3)), atol=1e-9)
    np.testing.assert_allclose(p.std, v.transpose(1, 0, 2, 3).reshape(3, -1).std(1, ddof=1),
                               atol=1e-9)
