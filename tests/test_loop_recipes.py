"""Every reference recipe, every phase, at several `--epochs`: the optimizer and schedule that
`Trainer.fit` really builds, field by field, and the lr it really uses at every epoch.

Expected values are literals: the recipes as their sources publish them (PyCIL
models/<method>.py module constants and exps/memo.json; Mammoth utils/best_args.py
seq-cifar10, datasets/seq_cifar100.py + datasets/configs/seq-cifar100/xder.yaml; CLR main.py;
MIND cifar100_exp.sh / parse.py; stream_benchmark models/bmc.py consolidate and utils/bmc.py
make_consolidation_dataloader), and
the milestones at other epoch counts worked out by hand from the documented rule
(`LoopConfig.with_epochs`: each milestone m of an E0-epoch phase becomes max(1, round(m * E /
E0)), Python's round, halves to even; milestones landing on one epoch merge into one).
`--epochs` reaches only the phases that train on the task: BMC's consolidation, CLR's
pre-training and MIND's teacher keep their recipe's epochs (issue: phases keep their identity).
ReduceLROnPlateau's lr curve is checked against a plain re-statement of torch's documented rule
(mode min, relative threshold, patience, factor, eps 1e-8) run on the loss history.

The path under test is the run's: `recipes.resolve(method, epochs=E)` (what `run` calls) ->
`Trainer.fit`, whose `make_optimizer` / `make_schedule` are wrapped only to look at what they
return; the lr is read from the optimizer inside the training step, once per epoch.
"""
from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

import clbudget.train.loop as loop
from clbudget.methods.registry import load_all, method_class
from clbudget.train.loop import LoopConfig, Pipeline, Trainer
from clbudget.train.recipes import RECIPES, get_recipe, resolve

PLAIN = dict(patience=10, threshold=1e-4, mixup=0.0, validation=0.0, sampler="shuffle")
SGD = dict(PLAIN, optimizer="sgd", momentum=0.9, batch_size=128, gamma=0.1,
           schedule="multistep", augment=True)
PYCIL_FIRST = dict(SGD, epochs=200, lr=0.1, weight_decay=5e-4, milestones=(60, 120, 170))


def pycil(epochs, milestones, first=PYCIL_FIRST):
    later = dict(SGD, epochs=epochs, lr=0.1, weight_decay=2e-4, milestones=milestones)
    return {"first": first, "later": later}


MAMMOTH = dict(PLAIN, optimizer="sgd", momentum=0.0, batch_size=32, epochs=50, lr=0.03,
               weight_decay=0.0, schedule="constant", milestones=(), gamma=0.1, augment=True)
# datasets/seq_cifar100.py: multisteplr [35, 45]; xder.yaml gamma 0.2 (derpp), utils/args.py 0.1
MAMMOTH_C100 = dict(MAMMOTH, schedule="multistep", milestones=(35, 45), gamma=0.2)
MAMMOTH_MNIST = dict(MAMMOTH, batch_size=10, epochs=1, augment=False)
ADAM = dict(PLAIN, optimizer="adam", momentum=0.9, weight_decay=0.0, schedule="multistep",
            augment=True)

BMC_FEATURE_EXPERTS = dict(ADAM, optimizer="adamw", epochs=20, batch_size=64, lr=0.01,
                           weight_decay=0.01, schedule="plateau", milestones=(), gamma=0.1,
                           patience=10, threshold=1e-4, augment=False)

# recipe -> phase -> every LoopConfig field, from the sources named in the module docstring
EXPECTED = {
    "pycil-finetune": pycil(80, (40, 70)),
    "pycil-replay": pycil(70, (30, 50)),
    "pycil-icarl": pycil(170, (80, 120)),
    "pycil-wa": pycil(170, (60, 100, 140)),
    "pycil-lwf": pycil(250, (60, 120, 180, 220),
                       first=dict(PYCIL_FIRST, milestones=(60, 120, 160))),
    "pycil-der": pycil(170, (80, 120, 150)),                       # exps/memo.json
    "mammoth-seq-cifar10-derpp": {"first": MAMMOTH, "later": MAMMOTH},
    # models/config/ewc_on.yaml seq-cifar10: lr 0.1
    "mammoth-seq-cifar10-ewc_on": {"first": dict(MAMMOTH, lr=0.1), "later": dict(MAMMOTH, lr=0.1)},
    "mammoth-seq-cifar100-derpp": {"first": MAMMOTH_C100, "later": MAMMOTH_C100},
    # no seq-cifar100 ewc_on in Mammoth: its data set's schedule, gamma 0.1, ewc_on.yaml's lr 0.1
    "mammoth-seq-cifar100-ewc_on": {"first": dict(MAMMOTH_C100, gamma=0.1, lr=0.1),
                                    "later": dict(MAMMOTH_C100, gamma=0.1, lr=0.1)},
    # best_args.py seq-tinyimg (derpp, ewc_on): n_epochs 100; seq_tinyimagenet.py no schedule
    "mammoth-seq-tinyimg-derpp": {"first": dict(MAMMOTH, epochs=100),
                                  "later": dict(MAMMOTH, epochs=100)},
    "mammoth-seq-tinyimg-ewc_on": {"first": dict(MAMMOTH, epochs=100),
                                   "later": dict(MAMMOTH, epochs=100)},
    # best_args.py seq-mnist: batch 10, n_epochs 1, lr 0.03 (derpp 5120: 0.1); seq_mnist.py
    # TRANSFORM None: no augmentation
    "mammoth-seq-mnist-derpp": {"first": MAMMOTH_MNIST, "later": MAMMOTH_MNIST},
    "mammoth-seq-mnist-derpp-5120": {"first": dict(MAMMOTH_MNIST, lr=0.1),
                                     "later": dict(MAMMOTH_MNIST, lr=0.1)},
    "mammoth-seq-mnist-ewc_on": {"first": MAMMOTH_MNIST, "later": MAMMOTH_MNIST},
    # AdamW at torch's default weight decay 0.01; ReduceLROnPlateau factor 0.1 (default),
    # patience 10, threshold 1e-4; mixup 0.4; 20% validation; sampler balanced; no augmentation
    "bmc": {"first": PYCIL_FIRST, "later": pycil(170, (80, 120))["later"],
            "consolidation": dict(ADAM, optimizer="adamw", epochs=100, batch_size=64, lr=0.01,
                                  weight_decay=0.01, schedule="plateau", milestones=(),
                                  gamma=0.1, patience=10, threshold=1e-4, mixup=0.4,
                                  validation=0.2, sampler="balanced", augment=False)},
    # on a feature stream: hparams/defaults.json (lr 0.01, batch 64, n_epochs 20, scheduler
    # patience 10, threshold 1e-4), models/__base_model.py AdamW at torch's default decay 0.01,
    # utils/train.py ReduceLROnPlateau factor 0.1; features are not augmented
    "bmc-features": {"first": BMC_FEATURE_EXPERTS, "later": BMC_FEATURE_EXPERTS},
    # dataset/dataloader_reader.py: no augmentation of the task's images
    "clr": {"task": dict(ADAM, epochs=60, batch_size=32, lr=1e-3, milestones=(20, 40),
                         gamma=0.1, augment=False),
            "pretrain": PYCIL_FIRST},
    "mind": {"teacher": dict(ADAM, epochs=50, batch_size=256, lr=0.005, milestones=(35,),
                             gamma=0.5),
             "distill": dict(ADAM, epochs=50, batch_size=256, lr=0.035, milestones=(40,),
                             gamma=0.5)},
}

# BMC's consolidation is the same on pixels and on features (one consolidate in models/bmc.py)
EXPECTED["bmc-features"]["consolidation"] = EXPECTED["bmc"]["consolidation"]

# (recipe milestones, recipe epochs) -> {epochs: milestones}, by hand from the rule above
SCALED = {
    ((60, 120, 170), 200): {1: (1,), 2: (1, 2), 3: (1, 2, 3), 7: (2, 4, 6), 50: (15, 30, 42)},
    ((60, 120, 160), 200): {1: (1,), 2: (1, 2), 3: (1, 2), 7: (2, 4, 6), 50: (15, 30, 40)},
    ((40, 70), 80): {1: (1,), 2: (1, 2), 3: (2, 3), 7: (4, 6), 50: (25, 44)},
    ((30, 50), 70): {1: (1,), 2: (1,), 3: (1, 2), 7: (3, 5), 50: (21, 36)},
    ((80, 120), 170): {1: (1,), 2: (1,), 3: (1, 2), 7: (3, 5), 50: (24, 35)},
    ((60, 100, 140), 170): {1: (1,), 2: (1, 2), 3: (1, 2), 7: (2, 4, 6), 50: (18, 29, 41)},
    ((60, 120, 180, 220), 250): {1: (1,), 2: (1, 2), 3: (1, 2, 3), 7: (2, 3, 5, 6),
                                 50: (12, 24, 36, 44)},
    ((80, 120, 150), 170): {1: (1,), 2: (1, 2), 3: (1, 2, 3), 7: (3, 5, 6), 50: (24, 35, 44)},
    ((20, 40), 60): {1: (1,), 2: (1,), 3: (1, 2), 7: (2, 5), 50: (17, 33)},
    ((35,), 50): {1: (1,), 2: (1,), 3: (2,), 7: (5,), 50: (35,)},
    ((40,), 50): {1: (1,), 2: (2,), 3: (2,), 7: (6,), 50: (40,)},
    ((35, 45), 50): {1: (1,), 2: (1, 2), 3: (2, 3), 7: (5, 6), 50: (35, 45)},
    ((), 50): {1: (), 2: (), 3: (), 7: (), 50: ()},
    ((), 100): {1: (), 2: (), 3: (), 7: (), 50: ()},
    ((), 1): {1: (), 2: (), 3: (), 7: (), 50: ()},
    ((), 20): {1: (), 2: (), 3: (), 7: (), 50: ()},
}
EPOCHS = (1, 2, 3, 7, 50, None)      # None: the recipe's own
# (method, phase) that --epochs leaves at the recipe's values (not a task phase)
KEEPS_RECIPE = {("bmc", "consolidation"), ("clr", "pretrain"), ("mind", "teacher")}


def method_of_recipe() -> dict:
    """recipe -> (a registered method whose reference recipe it is, the data set that picks
    it: None for the method's own, e.g. "cifar100" for Mammoth's per-dataset recipes, and
    the buffer size that picks it among Mammoth's best args: None for the planning one)."""
    out = {}
    for name in sorted(load_all()):
        cls = method_class(name)
        out.setdefault(cls.recipe, (name, None, None))
        for dataset, recipe in sorted(cls.dataset_recipes.items()):
            out.setdefault(recipe, (name, dataset, None))
        for dataset, table in sorted(cls.best_args.items()):
            for entry in table.entries:
                out.setdefault(entry.recipe, (name, dataset, entry.buffer_size))
    return out


def test_the_expectations_cover_every_recipe_and_every_phase():
    get_recipe("pycil-icarl")   # loads the book
    assert set(EXPECTED) == set(RECIPES)
    for name, recipe in RECIPES.items():
        assert set(EXPECTED[name]) == set(recipe.phase_names), name
    assert set(method_of_recipe()) <= set(RECIPES)
    # the per-dataset recipes are some method's (derpp and ewc_on on CIFAR-100)
    assert method_of_recipe()["mammoth-seq-cifar100-derpp"] == ("derpp", "cifar100", None)
    assert method_of_recipe()["mammoth-seq-cifar100-ewc_on"] == ("ewc", "cifar100", None)
    assert method_of_recipe()["mammoth-seq-mnist-derpp-5120"] == ("derpp", "mnist", 5120)


def expected_phase(recipe: str, phase: str, epochs, task_phase: bool = True):
    want = dict(EXPECTED[recipe][phase])
    if task_phase and epochs is not None and epochs != want["epochs"]:
        want["milestones"] = SCALED[(want["milestones"], want["epochs"])][epochs]
        want["epochs"] = epochs
    return want


def expected_lrs(want, losses=()) -> list[float]:
    """lr of each epoch: MultiStepLR decays by gamma at the start of epoch m for every
    milestone m (epoch 0 first); a constant schedule keeps lr; ReduceLROnPlateau (mode min,
    relative threshold) counts the epochs whose loss is not below best * (1 - threshold) and,
    once that count passes the patience, multiplies lr by gamma (unless the step is under
    eps 1e-8) and starts counting again: torch's documented rule, restated on `losses`."""
    if want["schedule"] == "plateau":
        lr, best, bad, out = want["lr"], math.inf, 0, []
        for loss in losses:
            out.append(lr)
            if loss < best * (1 - want["threshold"]):
                best, bad = loss, 0
            else:
                bad += 1
            if bad > want["patience"]:
                if lr - lr * want["gamma"] > 1e-8:
                    lr = lr * want["gamma"]
                bad = 0
        return out
    out = []
    for e in range(want["epochs"]):
        decays = sum(1 for m in want["milestones"] if m <= e) if want["schedule"] == "multistep" \
            else 0
        out.append(want["lr"] * want["gamma"] ** decays)
    return out


def run_fit(cfg: LoopConfig, monkeypatch):
    """Trainer.fit on one 4x4 image: what it built and the lr seen in each epoch's step."""
    built = {}

    def spy(name, fn):
        def wrapper(*args, **kwargs):
            built[name] = fn(*args, **kwargs)
            return built[name]
        monkeypatch.setattr(loop, name, wrapper)
    spy("make_optimizer", loop.make_optimizer)
    spy("make_schedule", loop.make_schedule)
    w = torch.zeros(3, requires_grad=True)
    lrs = []

    def step(xb, yb, idx, mix=None):
        lrs.append(built["make_optimizer"].param_groups[0]["lr"])
        return (w * xb.mean()).sum() + (w ** 2).sum()

    trainer = Trainer(torch.device("cpu"), Pipeline((0.5,), (0.25,)), torch.Generator())
    out = trainer.fit([w], torch.zeros(1, 1, 4, 4, dtype=torch.uint8), torch.zeros(1), step, cfg)
    return built["make_optimizer"], built["make_schedule"], lrs, out


CASES = [(recipe, method, dataset, buffer, epochs)
         for recipe, (method, dataset, buffer) in sorted(method_of_recipe().items())
         for epochs in EPOCHS]


@pytest.mark.parametrize("recipe,method,dataset,buffer,epochs", CASES)
def test_fit_builds_the_recipes_optimizer_and_schedule_at_any_epochs(recipe, method, dataset,
                                                                     buffer, epochs, monkeypatch):
    cls = method_class(method)
    resolved = resolve(cls, epochs=epochs, dataset=dataset, n_exemplars=buffer)
    assert resolved.name == recipe
    for phase, cfg in resolved.phases:
        want = expected_phase(recipe, _source_phase(cls, recipe, phase), epochs,
                              task_phase=(method, phase) not in KEEPS_RECIPE)
        for field, value in want.items():
            assert getattr(cfg, field) == pytest.approx(value), (phase, field)
        opt, sched, lrs, out = run_fit(cfg, monkeypatch)
        group = opt.param_groups[0]
        if want["optimizer"] == "sgd":
            assert type(opt) is torch.optim.SGD
            assert group["momentum"] == want["momentum"] and group["dampening"] == 0
            assert group["nesterov"] is False
        else:
            # Adam is AdamW at weight decay 0; AdamW decays decoupled from the gradient
            assert type(opt) is {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[
                want["optimizer"]]
            assert group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8
            assert group["amsgrad"] is False
        assert group.get("initial_lr", want["lr"]) == want["lr"] == lrs[0]
        assert group["weight_decay"] == want["weight_decay"]
        if want["schedule"] == "multistep":
            assert type(sched) is torch.optim.lr_scheduler.MultiStepLR
            assert sched.milestones == Counter(want["milestones"]) and sched.gamma == want["gamma"]
        elif want["schedule"] == "plateau":
            assert type(sched) is torch.optim.lr_scheduler.ReduceLROnPlateau
            assert (sched.mode, sched.threshold_mode, sched.factor, sched.patience,
                    sched.threshold, sched.cooldown) == ("min", "rel", want["gamma"],
                                                         want["patience"], want["threshold"], 0)
        else:
            assert type(sched) is torch.optim.lr_scheduler.LambdaLR
        assert out["epochs"] == len(lrs) == want["epochs"]
        assert lrs == pytest.approx(expected_lrs(want, out["loss"]), rel=1e-9, abs=0), phase


def _source_phase(cls, recipe, phase):
    """The recipe phase a method's phase reads (its fallback when the recipe lacks it)."""
    return phase if phase in EXPECTED[recipe] else cls.phase_fallbacks[phase]


def test_recipes_phases_not_used_by_their_method_are_right_too():
    """Phases of a recipe no method of that recipe runs (checked on the recipe itself)."""
    for name, recipe in RECIPES.items():
        for phase, cfg in recipe.phases:
            for epochs in EPOCHS:
                want = expected_phase(name, phase, epochs)
                got = cfg.with_epochs(epochs)
                assert {f: getattr(got, f) for f in want} == want, (name, phase, epochs)


def test_lr_curves_by_hand():
    """Literal curves: PyCIL's first task at 7 epochs (milestones 2, 4, 6) and MIND's teacher
    at 3 epochs (milestone 2, gamma 0.5)."""
    first = get_recipe("pycil-icarl").phase("first").with_epochs(7)
    assert expected_lrs(expected_phase("pycil-icarl", "first", 7)) == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.0001])
    assert first.milestones == (2, 4, 6)
    teacher = get_recipe("mind").phase("teacher").with_epochs(3)
    assert teacher.milestones == (2,)
    assert expected_lrs(expected_phase("mind", "teacher", 3)) == pytest.approx(
        [0.005, 0.005, 0.0025])


def test_cosine_schedule_follows_its_formula(monkeypatch):
    cfg = LoopConfig(epochs=4, lr=0.2, schedule="cosine", milestones=())
    _, sched, lrs, _ = run_fit(cfg, monkeypatch)
    assert type(sched) is torch.optim.lr_scheduler.CosineAnnealingLR and sched.T_max == 4
    assert lrs == pytest.approx([0.2 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])


@pytest.mark.parametrize("n_images", [1, 10])
def test_plateau_lr_curve_by_hand_on_a_flat_loss(n_images, monkeypatch):
    """BMC's consolidation (ReduceLROnPlateau, patience 10, factor 0.1) on a loss that never
    improves: the first epoch sets the best, epochs 1..11 are 11 bad epochs (> patience 10),
    so lr drops at the start of epoch 12, then every 11 epochs (23, 34, 45, 56, 67), until a
    step would be under eps 1e-8 (1e-8 -> 1e-9 is not taken).  With 10 images 20% (2) are
    held out and the plateau steps on their loss (a flat 1.0 too); 8 images under batch 64
    and the balanced sampler's drop_last still make one step an epoch."""
    cfg = get_recipe("bmc").phase("consolidation")
    built = {}
    real = loop.make_optimizer

    def capture(params, c):
        built["opt"] = real(params, c)
        return built["opt"]
    monkeypatch.setattr(loop, "make_optimizer", capture)
    w = torch.zeros(3, requires_grad=True)
    lrs = []

    def step(xb, yb, idx, mix=None):
        if torch.is_grad_enabled():          # a training step (validation runs without grad)
            lrs.append(built["opt"].param_groups[0]["lr"])
        return (w * 0).sum() + 1.0

    trainer = Trainer(torch.device("cpu"), Pipeline((0.5,), (0.25,)), torch.Generator())
    out = trainer.fit([w], torch.zeros(n_images, 1, 4, 4, dtype=torch.uint8),
                      torch.zeros(n_images), step, cfg)
    want = [0.01] * 12 + [1e-3] * 11 + [1e-4] * 11 + [1e-5] * 11 + [1e-6] * 11 + [1e-7] * 11 \
        + [1e-8] * 33
    assert len(want) == 100
    assert lrs == pytest.approx(want, rel=1e-9)
    assert out["final_lr"] == pytest.approx(1e-8, rel=1e-9)
    if n_images == 10:
        assert len(out["val_loss"]) == 100 and set(out["val_loss"]) == {1.0}
