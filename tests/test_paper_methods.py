"""The project's source papers' methods: BMC, CLR and MIND, each mechanism checked directly."""
import dataclasses
import math
import pickle

import pytest
import torch
import torch.nn.functional as F

from clbudget.budget.costs import COST_MODELS, StreamShape
from clbudget.experiment.evaluate import evaluate
from clbudget.experiment.run import prepare, to_device
from clbudget.methods import bmc as bmc_module
from clbudget.methods import bmc_experts
from clbudget.nets.backbones import backbone_stats, create_backbone
from clbudget.methods.clr import extra_per_task, kernels_of, reprogram
from clbudget.methods.mind import conv_weights
from tests.helpers import held_bytes, tiny_spec, tiny_stream


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks on a shared 2-core machine: one intra-op thread is ~20x faster than two
    contending ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def start(name, epochs=1, **options):
    spec = tiny_spec(name, epochs=epochs, method_options=tuple(options.items()))
    stream, ctx, method = prepare(spec, tiny_stream())
    return method, to_device(stream, ctx.device)


def run(method, tasks, after_task=None):
    """Learn every task; evaluate after each; returns the task-aware accuracy rows."""
    taw = []
    for task in tasks:
        method.begin_task(task)
        method.learn(task)
        method.end_task(task)
        taw.append(evaluate(method, tasks, task.index)["taw"])
        if after_task:
            after_task(task.index)
    return taw


def clone_state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------- BMC
def expert_setup(epochs=2, **options):
    """A BMC run after its first task (a consolidated base) and the next task's expert spec."""
    method, tasks = start("bmc", epochs=epochs, **options)
    method.begin_task(tasks[0])
    method.learn(tasks[0])
    method.begin_task(tasks[1])
    spec = method.expert_spec(tasks[1])
    assert not spec.first
    return method, tasks[1], spec


def expert_distances(method, task, spec, weights, kind="l2"):
    """{lambda: the trained expert's L_bd to the base} for one expert per weight, the same
    seed and phase (`spec.phase`: the run's own, from its variant's recipe)."""
    state = method.base.state_dict()
    distance = {}
    for weight in weights:
        config = dataclasses.replace(method.config, stability=weight, distance=kind)
        result = bmc_experts.train_expert(state, (task.x, task.y), config, 7, spec)
        distance[weight] = result.stats["stability_distance"]
    return distance


@pytest.mark.parametrize("variant,kind,lam", [("paper", "l2", 1.0), ("paper-sgd", "mse", 10.0)])
def test_bmc_stability_loss_pulls_expert_features_toward_the_base(variant, kind, lam):
    """The variant "paper"'s regime: the paper's L2 norm at lambda 1 under the reference's
    AdamW (lr 0.01, the expert phase its recipe `bmc` gives) keeps the expert nearer the base
    than lambda 0.  The "mse" distance pulls under PyCIL's SGD (the recipe `bmc-pycil`)."""
    method, task, spec = expert_setup(epochs=3, variant=variant)
    assert spec.phase == method.phase("later")
    assert (spec.phase.optimizer, spec.phase.lr) == \
        {"paper": ("adamw", 0.01), "paper-sgd": ("sgd", 0.1)}[variant]
    distance = expert_distances(method, task, spec, (0.0, lam), kind)
    assert 0 < distance[lam] < 0.5 * distance[0.0], distance


def test_bmc_paper_sgd_regime_kicks_the_expert_away_from_the_base():
    """The former default, variant "paper-sgd": the L2 norm's gradient has unit size however
    close the expert is, so under PyCIL's SGD (lr 0.1, momentum 0.9) lambda 1 ends the expert
    farther from the base than lambda 0 (the divergence that made the default the
    reference's AdamW)."""
    method, task, spec = expert_setup(epochs=3, variant="paper-sgd")
    assert (spec.phase.optimizer, spec.phase.lr, spec.phase.momentum) == ("sgd", 0.1, 0.9)
    distance = expert_distances(method, task, spec, (0.0, 1.0))
    assert distance[1.0] > distance[0.0] > 0, distance


def test_bmc_communication_bytes_are_the_buffers_sent(monkeypatch):
    sent = []

    def recording(*args):
        result = train_expert(*args)
        sent.append(result.images.numel() + 2 * result.labels.numel()
                    + 4 * result.features.numel())
        return result
    train_expert = bmc_experts.train_expert
    monkeypatch.setattr(bmc_experts, "train_expert", recording)
    method, tasks = start("bmc")
    run(method, tasks)
    figures = method.cost_figures()
    assert len(sent) == len(tasks) and figures["communication_bytes"] == sum(sent)
    memory = method.ledger("strict").bytes_of("exemplars", "exemplar_aux")
    assert figures["memory_bytes"] == memory
    assert figures["total_cost_bytes"] == sum(sent) + memory
    assert held_bytes(method) == method.ledger("strict").total_bytes   # buffers discarded
    # every kept memory sample carries its expert's features
    assert bool((method.memory.logits[:len(method.memory)].abs().sum(1) > 0).all())


def test_bmc_expert_step_ships_and_runs_concurrently():
    method, task, spec = expert_setup(epochs=1)
    job = (method.base.state_dict(), (task.x, task.y), method.config, 3, spec)
    shipped = pickle.loads(pickle.dumps((bmc_experts.train_expert, job)))
    assert shipped[0] is bmc_experts.train_expert
    one = bmc_experts.train_experts([job], workers=1)[0]
    two = bmc_experts.train_experts([job, job], workers=2)
    for result in two:
        assert torch.equal(result.images, one.images) and torch.equal(result.labels, one.labels)
        assert torch.allclose(result.features, one.features, atol=1e-5)


def test_bmc_consolidates_every_k_tasks():
    method, tasks = start("bmc", experts_per_step=2, workers=1)
    init = clone_state(method.base)
    seen_states = []
    run(method, tasks, lambda t: seen_states.append(clone_state(method.base)))
    assert same_state(seen_states[0], init)                 # task 0: step not finished
    assert not same_state(seen_states[1], init)             # task 1 ends the first step
    assert not same_state(seen_states[2], seen_states[1])   # the last task always consolidates
    assert method.cost_figures()["buffers_sent"] == 3


def test_bmc_step_trains_its_experts_at_once_and_times_the_critical_path():
    """experts_per_step=2 on 2 processes: the two experts' intervals overlap, the critical path
    is below the summed time, and the result equals training them one after another."""
    from clbudget.experiment.run import run_experiment
    spec = tiny_spec("bmc", epochs=3, method_options=(("experts_per_step", 2),))
    row = run_experiment(spec)
    figures = row["cost_figures"]
    assert figures["workers"] == 2
    (t0, s0, e0), (t1, s1, e1), (t2, _, _) = figures["expert_intervals_s"]
    assert (t0, t1, t2) == (0, 1, 2)
    assert max(s0, s1) < min(e0, e1), figures["expert_intervals_s"]     # trained at the same time
    assert figures["critical_path_s"] < figures["summed_s"]
    assert row["train_images_per_task"][0] == 0 < row["train_images_per_task"][1]       # task 0 queued
    sequential = run_experiment(dataclasses.replace(
        spec, method_options=(("experts_per_step", 2), ("workers", 1))))
    assert sequential["accuracy"] == row["accuracy"] and sequential["losses"] == row["losses"]


def consolidation_inputs(monkeypatch, method):
    """Record (x, y) of every consolidation the method's trainer runs."""
    seen = []
    fit = method.trainer.fit

    def spy(params, x, y, step, phase, desc="", **kw):
        if desc.startswith("bmc consolidation"):
            seen.append((x.clone(), y.clone()))
        return fit(params, x, y, step, phase, desc, **kw)
    monkeypatch.setattr(method.trainer, "fit", spy)
    return seen


def test_bmc_consolidates_once_per_step_on_memory_and_every_buffer(monkeypatch):
    method, tasks = start("bmc", experts_per_step=2, workers=1)
    cons = consolidation_inputs(monkeypatch, method)
    sizes = []

    def record(*args):
        result = train_expert(*args)
        sizes.append(len(result.labels))
        return result
    train_expert = bmc_experts.train_expert
    monkeypatch.setattr(bmc_experts, "train_expert", record)
    memory_before = []
    for task in tasks:
        memory_before.append(len(method.memory))
        method.begin_task(task)
        method.learn(task)
        method.end_task(task)
    assert len(cons) == 2                                       # steps {0, 1} and {2}
    (x1, y1), (x2, y2) = cons
    assert len(y1) == sizes[0] + sizes[1] and set(y1.tolist()) == {0, 1, 2, 3}
    assert len(y2) == memory_before[2] + sizes[2] > sizes[2]    # the replay memory is replayed
    assert set(y2.tolist()) == set(range(6))


def test_bmc_buffer_features_are_the_experts_not_the_bases():
    method, task, spec = expert_setup(epochs=3)
    state = method.base.state_dict()
    config = dataclasses.replace(method.config, stability=0.0)
    result = bmc_experts.train_expert(state, (task.x, task.y), config, 5, spec)
    from clbudget.nets.classifier import frozen_copy
    batch_stats = bmc_experts.batch_statistics(frozen_copy(method.base))
    base = method.base.eval()
    with torch.no_grad():
        for net in (base, batch_stats):      # the base as deployed, and as the expert sees it
            of_base = method.trainer.predict(net.features, result.images)
            assert (result.features - of_base).abs().mean() > 1e-3


def test_bmc_batched_distillation_pulls_the_base_toward_the_experts_features():
    method, task, spec = expert_setup(epochs=2)
    method.end_task(task)
    result = bmc_experts.train_expert(method.base.state_dict(), (task.x, task.y), method.config,
                                      5, spec)
    start_state = clone_state(method.base)
    rng = method.trainer.generator.get_state()
    distance = {}
    for name, options in (("off", {"variant": "paper", "distill_weight": 0.0}),
                          ("on", {"variant": "paper", "distill_weight": 10.0}),
                          ("reference", {"variant": "reference"})):
        method.base.load_state_dict(start_state)
        method.trainer.generator.set_state(rng)
        method.config = dataclasses.replace(bmc_module.BMCConfig(), **options)
        method.consolidate([result])
        method.base.eval()
        with torch.no_grad():
            f = method.trainer.predict(method.base.features, result.images)
        distance[name] = float(bmc_experts.layer_distance(result.features, f).mean())
    assert distance["on"] < 0.8 * distance["off"], distance
    assert distance["reference"] == pytest.approx(distance["off"]), distance   # beta 0


def test_bmc_defaults_follow_the_reference_hparams():
    """stream_benchmark hparams/defaults.json "bmc": task_coef 1, n_experts 1, cons_epochs 100;
    minibatch_size 64.  The default variant is the code as it runs: lambda 0 (models/bmc.py
    l. 153-157 commented out) and beta 0 (l. 76-77 commented out, although distil_coef is 1);
    the paper's variants weigh both terms 1 (the equations' unweighted form)."""
    from clbudget.train.recipes import get_recipe
    c = bmc_module.BMCConfig()
    assert (c.variant, c.task_weight, c.experts_per_step) == ("reference", 1.0, 1)
    assert (c.lambda_, c.beta) == (0.0, 0.0)
    cons = get_recipe("bmc").phase("consolidation")
    assert (cons.epochs, cons.batch_size, cons.lr) == (100, 64, 0.01)
    for variant in ("paper", "paper-sgd"):
        v = bmc_module.BMCConfig(variant=variant)
        assert (v.lambda_, v.beta) == (1.0, 1.0)
        assert (bmc_module.BMCConfig(variant=variant, stability=0.25).lambda_,
                bmc_module.BMCConfig(variant=variant, distill_weight=0.5).beta) == (0.25, 0.5)
    with pytest.raises(ValueError, match="nearest: paper"):
        bmc_module.BMCConfig(variant="papr")
    with pytest.raises(ValueError, match="stability must be >= 0"):
        bmc_module.BMCConfig(stability=-1.0)


def test_bmc_default_experts_are_the_references_adamw_without_the_stability_term(monkeypatch):
    """A default run (no --epochs, --batch-size or --lr) builds its experts' phase from the
    recipe `bmc`: stream_benchmark's models/__base_model.py AdamW(lr) at torch's default
    weight decay 0.01, hparams/defaults.json lr 0.01, batch_size 64, n_epochs 20,
    scheduler_patience 10, scheduler_threshold 1e-4, ReduceLROnPlateau's factor 0.1; the
    expert it trains (from a consolidated base) really builds AdamW and the plateau
    schedule, with lambda 0 in effect.  Under variant "paper" the same expert has lambda 1,
    the first step's expert (no trained base to keep) lambda 0."""
    import clbudget.train.loop as loop
    spec = tiny_spec("bmc", epochs=None, batch_size=None)
    stream, ctx, method = prepare(spec, tiny_stream())
    tasks = to_device(stream, ctx.device)
    method.begin_task(tasks[0])
    expert = method.expert_spec(tasks[0]).phase
    assert expert == method.phase("first") == method.phase("later")
    assert (expert.optimizer, expert.lr, expert.weight_decay, expert.batch_size, expert.epochs,
            expert.schedule, expert.patience, expert.threshold, expert.gamma, expert.augment) \
        == ("adamw", 0.01, 0.01, 64, 20, "plateau", 10, 1e-4, 0.1, True)
    built = []
    real_opt, real_sched = loop.make_optimizer, loop.make_schedule
    monkeypatch.setattr(loop, "make_optimizer", lambda p, c: built.append(real_opt(p, c))
                        or built[-1])
    monkeypatch.setattr(loop, "make_schedule", lambda o, c: built.append(real_sched(o, c))
                        or built[-1])
    weights = {}
    for variant in ("reference", "paper"):
        config = bmc_module.BMCConfig(variant=variant)
        later = dataclasses.replace(method.expert_spec(tasks[1]), first=False,
                                    phase=dataclasses.replace(expert, epochs=1))
        result = bmc_experts.train_expert(method.base.state_dict(), (tasks[1].x, tasks[1].y),
                                          config, 3, later)
        weights[variant] = result.stats["stability_weight"]
    first = bmc_experts.train_expert(method.base.state_dict(), (tasks[1].x, tasks[1].y),
                                     bmc_module.BMCConfig(variant="paper"), 3,
                                     dataclasses.replace(later, first=True))
    weights["paper, first step"] = first.stats["stability_weight"]   # no trained base yet
    opt, sched = built[0], built[1]
    assert type(opt) is torch.optim.AdamW and type(sched) is \
        torch.optim.lr_scheduler.ReduceLROnPlateau
    assert (opt.param_groups[0]["weight_decay"], opt.defaults["lr"], sched.patience,
            sched.factor) == (0.01, 0.01, 10, 0.1)
    assert weights == {"reference": 0.0, "paper": 1.0, "paper, first step": 0.0}


def test_bmc_variants_name_their_weights_and_recipes():
    """`--option variant=NAME` picks the lambda, beta and the experts' recipe of a run, which
    the row records: reference (0, 0, bmc), paper (1, 1, bmc), paper-sgd (1, 1, bmc-pycil:
    PyCIL's iCaRL SGD, lr 0.1, momentum 0.9); an explicit --recipe is marked imposed; on a
    feature stream every variant keeps bmc-features."""
    from clbudget.experiment.run import RunSpec, run_experiment
    want = {"reference": (0.0, 0.0, "bmc"), "paper": (1.0, 1.0, "bmc"),
            "paper-sgd": (1.0, 1.0, "bmc-pycil")}
    assert bmc_module.VARIANTS == want
    for variant, (lam, beta, recipe) in want.items():
        options = (("variant", variant),)
        resolved = RunSpec(method="bmc", method_options=options).resolved_recipe()
        assert resolved.name == recipe
        later = resolved.phase("later")
        assert (later.optimizer, later.lr) == \
            (("sgd", 0.1) if variant == "paper-sgd" else ("adamw", 0.01))
        assert RunSpec(method="bmc", dataset="features", data_root="x.npz",
                       method_options=options).resolved_recipe().name == "bmc-features"
    row = run_experiment(tiny_spec("bmc", method_options=(("variant", "paper-sgd"),)))
    figures = row["cost_figures"]
    assert (figures["variant"], figures["stability_weight"], figures["distill_weight"]) == \
        ("paper-sgd", 1.0, 1.0)
    assert row["recipe"]["name"] == "bmc-pycil" and row["recipe"]["imposed"] is False
    imposed = run_experiment(tiny_spec("bmc", recipe="bmc",
                                       method_options=(("variant", "paper-sgd"),)))
    assert imposed["recipe"]["name"] == "bmc" and imposed["recipe"]["imposed"] is True


# ------------------------------------------------------------------------------------- CLR
def test_clr_backbone_is_bit_identical_and_old_tasks_do_not_change():
    method, tasks = start("clr", epochs=2)
    init = clone_state(method.backbone)
    snaps = {}

    def snapshot(t):
        snaps[t] = (clone_state(method.backbone),
                    [clone_state(v) for v in method.views], [clone_state(h) for h in method.heads])
    taw = run(method, tasks, snapshot)
    backbone0, views0, heads0 = snaps[0]
    backbone, views, heads = snaps[len(tasks) - 1]
    assert same_state(backbone, backbone0)
    assert not same_state(backbone0, init)                   # pre-trained before task 0
    for t in range(len(tasks)):
        assert same_state(views[t], snaps[t][1][t]) and same_state(heads[t], snaps[t][2][t])
    assert len({row[0] for row in taw}) == 1, taw            # task 0's TAW accuracy unchanged
    assert len({row[1] for row in taw[1:]}) == 1, taw
    # every task, the first included, is reprogrammed: kernels off the identity, own BN
    ident = reprogram(method.backbone)
    for view in method.views:
        assert not torch.equal(kernels_of(view)[0], kernels_of(ident)[0])
        bn_view = [m for m in view.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
        bn_base = [m for m in method.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
        assert not torch.equal(bn_view.weight, bn_base.weight)     # per-task BN, trained
    # the offline pre-training: glyph classes disjoint from the stream's 6, recorded
    pre = method.cost_figures()["pretrain"]
    assert pre["source"] == "glyphs" and pre["glyph_classes"] == list(range(6, 26))
    assert pre["epochs"] == 2 and len(pre["sha256"]) == 64
    # task-agnostic extension: per image one task's classes get finite scores, and the
    # selector really chooses among the tasks
    picked = set()
    for task in tasks:
        x = method.trainer.inputs(task.x_test)
        with torch.no_grad():
            s = method.scores(x)
        assert bool((torch.isfinite(s).sum(1) == 2).all())
        picked |= set((s.argmax(1) // 2).tolist())
    assert len(picked) > 1, picked


def test_clr_new_view_starts_as_the_backbone():
    """Identity-initialised kernels and copied BN: before training a task's view computes
    exactly the frozen backbone's features."""
    method, tasks = start("clr")
    backbone = method.backbone.eval()
    view = method.new_view().eval()
    x = method.trainer.inputs(tasks[0].x_test[:8])
    with torch.no_grad():
        assert torch.equal(view(x), backbone(x))
    assert method.task_aware_only


def test_clr_extra_parameters_counted_by_hand():
    """The paper's measure: trainable parameters added per task (kernels + BN affine)."""
    with torch.device("meta"):
        r50 = create_backbone("resnet50", (3, 224, 224))   # torchvision's: 7x7 stem
        r18 = create_backbone("resnet18", (3, 224, 224))
        r32 = create_backbone("resnet32", (3, 32, 32))
        # ResNet-50: 3x3/7x7 convs have 64 (stem) + 3*64 + 4*128 + 6*256 + 3*512 = 3,840
        # output channels; BN layers 26,560 channels; 23,508,032 parameters (no fc).
        f = extra_per_task(r50, reprogram(r50), head_params=2049 * 10)
        assert f["kernel_params"] == 9 * 3840 == 34_560
        assert f["bn_affine_params"] == 2 * 26_560 and f["backbone_params"] == 23_508_032
        assert f["trainable_params_per_task"] == 34_560 + 53_120 == 87_680
        assert round(100 * f["trainable_fraction"], 3) == 0.373
        assert f["trainable_fraction_with_head"] == (87_680 + 20_490) / 23_508_032
        assert f["stored_fraction"] == (34_560 + 4 * 26_560) / 23_508_032
        # every conv reprogrammed: 1x1 convs add 22,720 channels (26,560 in all)
        assert extra_per_task(r50, reprogram(r50, all_convs=True))["kernel_params"] == 9 * 26_560
        # ResNet-18: 64 (stem) + 4*64 + 4*128 + 4*256 + 4*512 = 3,904 kxk channels; BN
        # 64 + 256 + (512+128) + (1024+256) + (2048+512) = 4,800; 11,176,512 parameters
        f = extra_per_task(r18, reprogram(r18))
        assert f["kernel_params"] == 9 * 3904 == 35_136
        assert f["bn_affine_params"] == 9_600 and f["backbone_params"] == 11_176_512
        assert round(100 * f["trainable_fraction"], 2) == 0.40
        # ResNet-32: 16 (stem) + 10*16 + 10*32 + 10*64 = 1,136 channels, all 3x3 convs
        f = extra_per_task(r32, reprogram(r32), head_params=65 * 10)
        assert f["kernel_params"] == 9 * 1136 == 10_224
        assert f["bn_affine_params"] == 2 * 1136 and f["backbone_params"] == 463_504
        assert f["trainable_params_per_task"] == 12_496
        assert round(100 * f["trainable_fraction"], 2) == 2.70
        assert round(100 * f["stored_fraction"], 2) == 3.19
        assert f["trainable_fraction_with_head"] == (12_496 + 650) / 463_504
    # the cost model charges the same kernels: 10 tasks x 10,224 float32
    assert backbone_stats("resnet32", (3, 32, 32)).kxk_conv_channels == 1136
    ledger = COST_MODELS["clr"].cost(StreamShape(10, (3, 32, 32), 100), "resnet32", 0)
    assert {i.name: i.n_bytes for i in ledger.items}["clr.kernels"] == 10 * 4 * 10_224


def to_torchvision_names(state: dict) -> dict:
    """A clbudget ImageNet ResNet's state dict (small-image stem: 3 children before layer1)
    renamed by hand to torchvision's layout, plus torchvision's fc."""
    out = {}
    for k, v in state.items():
        k = k.replace("shortcut.", "downsample.")
        if k.startswith("generalized.0."):
            k = "conv1." + k[len("generalized.0."):]
        elif k.startswith("generalized.1."):
            k = "bn1." + k[len("generalized.1."):]
        elif k.startswith(("generalized.3.", "generalized.4.", "generalized.5.")):
            k = f"layer{int(k.split('.')[1]) - 2}." + k.split(".", 2)[2]
        elif k.startswith("specialized.0."):
            k = "layer4." + k[len("specialized.0."):]
        out[k] = v
    out["fc.weight"], out["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    return out


def test_clr_runs_from_a_torchvision_format_state_dict(tmp_path):
    from clbudget.experiment.run import run_experiment
    from clbudget.methods.pretrained import sha256_of
    source = create_backbone("resnet18", (3, 16, 16))
    for m in source.modules():          # distinctive BN statistics, to see them arrive
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.fill_(2.0)
    tv = to_torchvision_names(source.state_dict())
    # torchvision's resnet18 layout: 122 entries, e.g. these
    assert len(tv) == 122 and {"conv1.weight", "bn1.num_batches_tracked",
                               "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var",
                               "layer4.1.bn2.bias", "fc.weight"} <= set(tv)
    path = tmp_path / "resnet18-torchvision.pt"
    torch.save(tv, path)
    spec = tiny_spec("clr", backbone="resnet18", budget="2xresnet18",
                     method_options=(("backbone_weights", str(path)),))
    stream, ctx, method = prepare(spec, tiny_stream())
    assert same_state(method.backbone.state_dict(), source.state_dict())
    row = run_experiment(spec, stream=tiny_stream())
    pre = row["cost_figures"]["pretrain"]
    assert pre == {"source": "weights", "format": "torchvision", "path": str(path),
                   "sha256": sha256_of(path)}
    acc = row["accuracy"]
    assert acc["setting"] == "task-aware" and acc["last"] == acc["task_aware"]["last"]
    assert acc["last"] is not None and acc["matrix"] == acc["task_aware"]["matrix"]
    # a mismatching file is refused with the reason
    torch.save({**tv, "conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(ValueError, match="7x7 stem"):
        prepare(spec, tiny_stream())


def test_clr_loads_user_backbone_weights(tmp_path):
    weights = create_backbone("conv2", (3, 16, 16)).state_dict()
    path = tmp_path / "backbone.pt"
    torch.save(weights, path)
    method, tasks = start("clr", backbone_weights=str(path))
    assert same_state(method.backbone.state_dict(), weights)
    method.begin_task(tasks[0])
    method.learn(tasks[0])
    assert same_state(method.backbone.state_dict(), weights)
    assert method.cost_figures()["pretrain"]["format"] == "clbudget"


# ------------------------------------------------------------------------------------ MIND
def mind_run(**options):
    method, tasks = start("mind", epochs=2, **options)
    snaps = {}

    def snapshot(t):
        snaps[t] = ([w.detach().clone() for _, w in conv_weights(method.net)],
                    [m.clone() for m in method.masks], method.net.head.weight.detach().clone(),
                    [dict(s) for s in method.bn_sets])
    taw = run(method, tasks, snapshot)
    return method, tasks, snaps, taw




@pytest.mark.parametrize("options", [{}, {"self_distillation": True}])
def test_mind_never_changes_an_earlier_tasks_weights(options):
    method, tasks, snaps, taw = mind_run(**options)
    T = len(tasks)
    weights, masks, head, bn = snaps[T - 1]
    for j in range(T):
        w_j, m_j, head_j, bn_j = snaps[j]
        for w, w_then, m, m_then in zip(weights, w_j, masks, m_j):
            own = m_then == j
            assert torch.equal(m == j, own)                            # ownership is final
            assert torch.equal(w[own], w_then[own])                    # weights untouched
            assert int(own.sum()) == w.numel() // T                    # a 1/T share per layer
        rows = method.rows(j)
        assert torch.equal(head[rows], head_j[rows])
        assert all(torch.equal(bn[j][k], bn_j[j][k]) for k in bn_j[j])
    # masks are disjoint: the owners' shares add up to the owned weights
    for m in masks:
        owned = [int((m == j).sum()) for j in range(T)]
        assert sum(owned) == int((m != method.FREE).sum())
    assert len({row[0] for row in taw}) == 1, taw              # task 0's TAW accuracy unchanged
    figures = method.cost_figures()
    n = sum(m.numel() for m in masks)
    assert figures["mask_bytes"] == n == method.ledger("strict").bytes_of("masks")
    assert figures["mask_bytes_packed"] == math.ceil(n * 2 / 8)       # T = 3: 2 bits per weight


def test_mind_subnetwork_computes_with_its_own_weights_at_inference():
    """Class-incremental, weight sharing (the default): task j's subnetwork at inference
    computes with the weights of tasks 0..j (the reference's set_gating_masks:
    `layer_mask <= task_id`).  Zeroing the conv weights only task j owns changes its
    task-aware logits; zeroing those only an earlier task owns changes them too (shared);
    zeroing those only a later task owns leaves them bit for bit."""
    method, tasks = start("mind")
    run(method, tasks)
    method.eval()
    T = len(tasks)
    x = method.trainer.inputs(tasks[0].x_test[:8])
    convs = [w for _, w in conv_weights(method.net)]

    @torch.no_grad()
    def logits(j, zero_owner=None):   # (8, 2): task j's classes
        saved = [w.detach().clone() for w in convs]
        for w, m in zip(convs, method.masks):
            if zero_owner is not None:
                w[m == zero_owner] = 0.0
        out = method.task_scores(x, j)[:, method.rows(j)]
        for w, s in zip(convs, saved):
            w.copy_(s)
        return out

    for j in range(T):
        base = logits(j)
        assert not torch.allclose(logits(j, zero_owner=j), base), j
        for other in range(T):
            if other < j:
                assert not torch.allclose(logits(j, zero_owner=other), base), (j, other)
            elif other > j:
                assert torch.equal(logits(j, zero_owner=other), base), (j, other)


def test_mind_task_agnostic_scores_pick_one_subnetwork():
    method, tasks = start("mind", task_selection="top2_entropy")
    run(method, tasks)
    x = method.trainer.inputs(tasks[1].x_test[:8])
    with torch.no_grad():
        s = method.scores(x)
        aware = method.task_scores(x, 1)
    assert bool((torch.isfinite(s).sum(1) == 2).all())
    assert bool(torch.isfinite(aware[:, 2:4]).all()) and int(torch.isfinite(aware).sum()) == 16


def distillation_start_weights(monkeypatch, method):
    """Each task's conv weights and masks as its distillation starts (after pruning)."""
    seen = []
    fit_gated = method.fit_gated

    def spy(net, x, y, train, use, head_rows, loss_fn, phase, desc):
        if desc.startswith("mind distillation"):
            seen.append(([w.detach().clone() for _, w in conv_weights(net)],
                         [m.clone() for m in method.masks]))
        return fit_gated(net, x, y, train, use, head_rows, loss_fn, phase, desc)
    monkeypatch.setattr(method, "fit_gated", spy)
    return seen


def test_mind_without_sharing_reinitialises_each_tasks_weights_he_normal(monkeypatch):
    method, tasks = start("mind", weight_sharing=False)
    seen = distillation_start_weights(monkeypatch, method)
    run(method, tasks)
    for t, (weights, masks) in enumerate(seen):
        for w, m in zip(weights, masks):
            own = w[m == t]
            assert bool((own != 0).all()), t                 # not left at zero
            assert bool((w[m == method.FREE] == 0).all())    # the still-free weights are zero
            if t > 0 and own.numel() > 1000:                 # pruner.prune: sqrt(2 / (k*k*out))
                he = math.sqrt(2.0 / (w.shape[0] * w.shape[2] * w.shape[3]))
                assert 0.8 * he < float(own.std()) < 1.2 * he


def test_mind_without_sharing_redraws_each_tasks_head_rows_he_normal(monkeypatch):
    """Class-incremental, weight_sharing=False: at task t's pruning its classes' head rows
    are redrawn randn * sqrt(2 / n) with n = out * in = K * D of the head (pruner.prune's
    nn.Linear branch; the fc subset of a class-incremental task is its classes' rows); no
    other row moves.  K = 6 classes, D = 64 (conv2): std sqrt(2 / 384) = 0.0722, where a
    fan of the out size alone (sqrt(2 / 6) = 0.577) is 8 times wider."""
    method, tasks = start("mind", weight_sharing=False)
    K, D = method.net.head.weight.shape
    he = math.sqrt(2.0 / (K * D))
    seen = []
    prune = method.prune

    def spy(t, teacher):
        before = method.net.head.weight.detach().clone()
        prune(t, teacher)
        seen.append((before, method.net.head.weight.detach().clone()))
    monkeypatch.setattr(method, "prune", spy)
    run(method, tasks)
    drawn = []
    for t, (before, after) in enumerate(seen):
        rows = method.rows(t)
        others = torch.ones(K, dtype=torch.bool)
        others[rows] = False
        assert torch.equal(after[others], before[others]), t          # only task t's rows
        assert bool((after[rows] != before[rows]).all()), t            # redrawn
        drawn.append(after[rows].flatten())
    drawn = torch.cat(drawn)                                           # 3 x 2 x 64 values
    assert 0.85 * he < float(drawn.std()) < 1.15 * he, (float(drawn.std()), he)
    assert abs(float(drawn.mean())) < 4 * he / math.sqrt(drawn.numel())


def test_mind_fresh_teacher_selects_at_random(monkeypatch):
    """selection "auto" with a fresh teacher: the student's weights are chosen at random (the
    seed, pruner.select_random_weights), not by the untrained student's magnitude."""
    method, tasks = start("mind")
    init = [w.detach().clone() for _, w in conv_weights(method.net)]
    seen = distillation_start_weights(monkeypatch, method)
    method.begin_task(tasks[0])
    method.learn(tasks[0])
    _, masks = seen[0]
    ratios = [float(w[m == 0].abs().mean() / w.abs().mean()) for w, m in zip(init, masks)]
    assert all(0.8 < r < 1.2 for r in ratios), ratios        # magnitude would give ~1.7
    assert method.cost_figures()["selection"] == "random"
    sd, _ = start("mind", self_distillation=True)
    assert sd.config.selection_rule == "magnitude"


@pytest.mark.parametrize("self_distillation", [False, True])
def test_mind_trains_its_teacher_on_the_task(self_distillation):
    from tests.helpers import learnable_spec, quick_phases
    phase = quick_phases()[0][1]
    spec = learnable_spec("mind", recipe_options=(("teacher", phase), ("distill", phase)),
                          method_options=(("self_distillation", self_distillation),))
    stream, ctx, method = prepare(spec, tiny_stream(glyphs_options=spec.glyphs_options))
    task = to_device(stream, ctx.device)[1]
    method.begin_task(task)
    teacher, _ = method.train_teacher(task)
    teacher.eval()
    x = method.trainer.inputs(task.x_test)
    with torch.no_grad():
        pred = teacher(x)[:, method.rows(1)].argmax(1) + method.rows(1).start
    assert float((pred == task.y_test).float().mean()) > 0.85


def test_mind_distillation_loss_is_ce_plus_beta_symmetric_kl_to_the_teacher(monkeypatch):
    """The distillation step's loss, on a batch, is CE + beta * L_SD(teacher, student) with the
    task's (trained) teacher, beta = distill_beta 5."""
    from clbudget.methods.losses import symmetric_kl
    method, tasks = start("mind")
    captured = {}
    fit_gated = method.fit_gated

    def spy(net, x, y, train, use, head_rows, loss_fn, phase, desc):
        if desc.startswith("mind distillation"):
            captured["loss_fn"] = loss_fn
        return fit_gated(net, x, y, train, use, head_rows, loss_fn, phase, desc)
    monkeypatch.setattr(method, "fit_gated", spy)
    teachers = []
    train_teacher = method.train_teacher
    monkeypatch.setattr(method, "train_teacher",
                        lambda task: teachers.append(train_teacher(task)) or teachers[-1])
    task = tasks[0]
    method.begin_task(task)
    method.learn(task)
    teacher = teachers[0][0]
    x = method.trainer.inputs(task.x[:16])
    y = task.y[:16]
    logits = torch.randn(16, 2)
    with torch.no_grad():
        target = teacher(x)[:, method.rows(0)]
        got = captured["loss_fn"](logits, x, y)
    want = F.cross_entropy(logits, y) + 5.0 * symmetric_kl(target, logits)
    assert torch.allclose(got, want, atol=1e-6), (got, want)
    assert float(symmetric_kl(target, logits)) > 0.01          # the term is not negligible


def test_mind_task_agnostic_probabilities_use_the_temperature():
    method, tasks = start("mind", temperature=6.5)
    run(method, tasks)
    x = method.trainer.inputs(tasks[0].x_test[:8])
    with torch.no_grad():
        s = method.scores(x)
        probs = [F.softmax(method.subnet_logits(x, j).float() / 6.5, dim=1) for j in range(3)]
    for i in range(8):
        j = int(s[i].argmax()) // 2
        assert torch.allclose(s[i, 2 * j:2 * j + 2], probs[j][i], atol=1e-6)


def test_mind_costs_masks_in_both_conventions_and_reports_the_teacher():
    teachers = {}
    for options in ({}, {"self_distillation": True}):
        method, tasks = start("mind", **options)
        run(method, tasks)
        masks = sum(m.numel() for m in method.masks)
        assert method.ledger("memo").bytes_of("masks") == masks == \
            method.ledger("strict").bytes_of("masks")
        figures = method.cost_figures()
        net = sum(t.numel() * t.element_size() for t in method.net.state_dict().values())
        teachers[bool(options)] = figures["teacher_bytes"]
        assert figures["peak_task_bytes"][0] == net + masks + figures["teacher_bytes"][0]
    assert teachers[False] == [net] * 3                       # a fresh network per task
    # the self-teacher holds the free weights' values (all, then 2/3, then 1/3 of the conv
    # weights), its BN set and its head rows (2 classes): by hand
    convs = sum(w.numel() for _, w in conv_weights(method.net))
    bn = sum(v.numel() * v.element_size() for v in method.bn_sets[0].values())
    head = 2 * (method.net.head.in_features + 1) * 4
    owned = [sum(m.numel() // 3 for m in method.masks) * j for j in range(3)]
    assert teachers[True] == [4 * (convs - o) + bn + head for o in owned]
    assert teachers[True][2] < teachers[True][0] < net
    shape = StreamShape(10, (3, 32, 32), 100)
    memo = COST_MODELS["mind"].cost(shape, "resnet32", 0, "memo")
    assert {i.name: i.n_bytes for i in memo.items}["masks"] == \
        backbone_stats("resnet32", (3, 32, 32)).conv_weights


def test_bmc_resumes_inside_a_step_of_k_tasks(tmp_path):
    """Killed after a queued task (the step's first of 2), resumed: the queued task's data comes
    back from the checkpoint and the row equals an uninterrupted run's."""
    from clbudget.experiment.checkpoint import Checkpoints
    from clbudget.experiment.run import run_experiment
    from tests.test_reliability import comparable, interrupted
    spec = tiny_spec("bmc", method_options=(("experts_per_step", 2), ("workers", 1)))
    reference = run_experiment(spec, stream=tiny_stream())
    checkpoints = Checkpoints(tmp_path)
    interrupted(spec, checkpoints, after_task=0)
    row = run_experiment(spec, stream=tiny_stream(), checkpoints=checkpoints)
    assert row["resumed_tasks"] == 1
    assert comparable(row) == comparable(reference)


# ------------------------------------------------------------------ BMC as written (issue 25)
def test_bmc_layer_distance_is_the_per_sample_l2_norm_summed_over_layers_by_hand():
    """L_bd = sum over layers of ||sg(phi_i^t) - phi_i^s||_2 per sample (seed 000), the
    batch reduced by its mean (the paper's E_x; the reference's F.mse_loss mean).  Hand
    arithmetic: layer 1, sample 0 differs by (3, 4) -> 5, sample 1 by (0, 0, 1, 0) -> 1;
    layer 2, sample 0 by (1, 2, 2) -> 3, sample 1 by (6, 8, 0) -> 10.  Per sample 5 + 3 = 8
    and 1 + 10 = 11; mean 9.5.  The mean squared error would give (25/4 + 9/3) = 9.25 and
    (1/4 + 100/3) for the samples, mean 21.4166..."""
    t1 = torch.tensor([[[[3.0, 4.0], [0.0, 0.0]]], [[[0.0, 0.0], [1.0, 0.0]]]])   # (2,1,2,2)
    s1 = torch.zeros(2, 1, 2, 2, requires_grad=True)
    t2 = torch.tensor([[1.0, 2.0, 2.0], [6.0, 8.0, 0.0]])                          # (2, 3)
    s2 = torch.zeros(2, 3)
    per_sample = bmc_experts.layer_distance(t1, s1) + bmc_experts.layer_distance(t2, s2)
    assert per_sample.tolist() == [8.0, 11.0]
    loss = bmc_experts.stability_loss([t1, t2], [s1, s2])
    assert float(loss.detach()) == 9.5
    assert bmc_module.BMCConfig().distance == "l2"          # the paper's form is the default
    mse = bmc_experts.stability_loss([t1, t2], [s1, s2], "mse")
    assert float(mse.detach()) == pytest.approx((25 / 4 + 9 / 3 + 1 / 4 + 100 / 3) / 2)
    loss.backward()                                          # the teacher is detached
    assert s1.grad is not None and not t1.requires_grad


def _consolidation_spy(monkeypatch, method):
    seen = []
    fit = method.trainer.fit

    def spy(params, x, y, step, cfg, desc="train", modules=(), groups=None):
        out = fit(params, x, y, step, cfg, desc, modules, groups)
        if desc.startswith("bmc consolidation"):
            seen.append((cfg, groups, out))
        return out
    monkeypatch.setattr(method.trainer, "fit", spy)
    return seen


def test_bmc_reference_consolidation_is_adamw_plateau_on_a_validation_split_mixup_balanced(
        monkeypatch):
    """consolidation="reference" (default; stream_benchmark models/bmc.py l. 86-107, 51-52,
    utils/bmc.py l. 95-121): AdamW lr 0.01, ReduceLROnPlateau (patience 10, factor 0.1) on
    the loss of a 20% held-out split, mixup 0.4, samples drawn balanced by buffer (= task);
    "today": Adam at a constant rate, every sample once, no split, no mixup."""
    import torch.optim as optim
    made = []
    for cls in (optim.AdamW, optim.Adam, optim.lr_scheduler.ReduceLROnPlateau):
        monkeypatch.setattr(cls, "__init__", _recording(cls.__init__, made, cls.__name__))
    method, tasks = start("bmc", epochs=1)
    seen = _consolidation_spy(monkeypatch, method)
    for task in tasks[:2]:
        method.begin_task(task)
        method.learn(task)
        method.end_task(task)
    cfg, groups, out = seen[-1]
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.schedule, cfg.patience, cfg.gamma,
            cfg.mixup, cfg.validation, cfg.sampler, cfg.augment) == \
        ("adamw", 0.01, 0.01, "plateau", 10, 0.1, 0.4, 0.2, "balanced", False)
    assert "AdamW" in made and "ReduceLROnPlateau" in made
    assert len(out["val_loss"]) == 1 and "final_lr" in out
    assert sorted(set(groups.tolist())) == [0, 1]           # one group per task's buffer
    today, _ = start("bmc", epochs=1, consolidation="today")
    c = today.consolidation_phase()
    assert (c.optimizer, c.schedule, c.mixup, c.validation, c.sampler) == \
        ("adam", "constant", 0.0, 0.0, "shuffle")
    assert today.cost_figures()["consolidation"] == "today"


def _recording(init, made, name):
    def wrapped(self, *a, **k):
        made.append(name)
        return init(self, *a, **k)
    return wrapped


def test_loop_mixup_plateau_validation_and_balanced_sampler_act_as_the_reference():
    """The shared loop under BMC's reference consolidation phase, on 40 one-pixel images:
    mixup hands the step lam in [0.6, 1] and inputs lam * x + (1 - lam) * x[perm]
    (utils/train.py mixup_data); 20% (8) positions are held out and never trained on; the
    plateau schedule cuts the lr by 0.1 after `patience` epochs without a lower validation
    loss (a constant loss: after epoch 1 + patience); the balanced sampler draws the 4-sample
    group as often as the 28-sample one (ImbalancedDatasetSampler)."""
    import dataclasses as dc
    from clbudget.train.loop import Pipeline, Trainer
    from clbudget.train.recipe_book import BMC_CONSOLIDATION
    x = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1)
    y = torch.zeros(40, dtype=torch.long)
    groups = torch.tensor([0] * 4 + [1] * 36)
    w = torch.nn.Parameter(torch.zeros(1))
    trainer = Trainer(torch.device("cpu"), Pipeline((0.0,), (1 / 255,), pad=0),
                      torch.Generator().manual_seed(0))
    trained, lams, held_groups = [], [], []

    def step(xb, yb, idx, mix=None):
        if torch.is_grad_enabled():
            trained.append(idx.clone())
            mixed = mix.lam * idx.float() + (1 - mix.lam) * idx[mix.perm].float()
            assert torch.allclose(xb.flatten(), mixed)       # pixel value = position
            lams.append(mix.lam)
        return (w * 0).sum() + 1.0                           # a constant loss: no improvement
    cfg = dc.replace(BMC_CONSOLIDATION, epochs=13, batch_size=4, patience=3)
    out = trainer.fit([w], x, y, step, cfg, "t", groups=groups)
    assert all(0.6 <= lam <= 1.0 for lam in lams) and min(lams) < 0.95
    used = torch.cat(trained)
    assert len(set(used.tolist())) <= 32 and len(out["val_loss"]) == 13
    # plateau: best at epoch 1; lr * 0.1 once more than 3 epochs passed without improving
    # (epochs 5, 9, 13)
    assert out["final_lr"] == pytest.approx(0.01 * 0.1 ** 3)
    share = float((groups[used] == 0).float().mean())       # without balancing: ~4/32
    assert 0.35 < share < 0.65, share


def test_mind_self_distillation_prunes_by_the_teachers_magnitude(monkeypatch):
    """With self-distillation, task 0's weights in each layer are the numel // T of largest
    magnitude in the trained self-teacher (the deviation mind.py names: the reference scores
    the student's stale weights).  The student's untrained weights would give another set."""
    method, tasks = start("mind", self_distillation=True)
    student = [w.detach().clone() for _, w in conv_weights(method.net)]
    dense = []
    prune = method.prune

    def spy(t, teacher):
        dense.append([w.detach().clone() for w in teacher.dense_weights()])
        return prune(t, teacher)
    monkeypatch.setattr(method, "prune", spy)
    method.begin_task(tasks[0])
    method.learn(tasks[0])
    T = method.ctx.stream.num_tasks
    for tw, sw, mask in zip(dense[0], student, method.masks):
        mine = mask == 0
        assert int(mine.sum()) == tw.numel() // T
        by_teacher = tw.abs().flatten().topk(tw.numel() // T).indices
        assert bool(mine.flatten()[by_teacher].all())
    by_student = [sw.abs().flatten().topk(sw.numel() // T).indices for sw in student]
    assert not all(bool(m.flatten()[i].all()) for m, i in zip(method.masks, by_student))


def test_clr_task_phase_trains_without_augmentation_as_the_reference():
    """The reference's loaders (dataset/dataloader_reader.py) only resize and normalise."""
    from clbudget.train.recipes import get_recipe
    assert get_recipe("clr").phase("task").augment is False
    method, _ = start("clr")
    assert method.phase("task").augment is False and method.ctx.dataset == "glyphs"


def test_bmc_mixup_weights_the_two_targets_by_lam(monkeypatch):
    """Under mixup BMC's consolidation step is lam * L(y, its features) + (1 - lam) * L(y[perm],
    their features) on the same mixed batch (models/bmc.py _cons_forward l. 58-73, the
    distillation weighted alike).  `mixed_loss` by hand: lam 0.75, losses 2 and 6 -> 3."""
    from clbudget.train.loop import Mix, mixed_loss
    y, idx = torch.tensor([0, 1]), torch.tensor([5, 9])
    by_target = {(0, 1): 2.0, (1, 0): 6.0}
    loss = mixed_loss(lambda yy, ii: torch.tensor(by_target[tuple(yy.tolist())]), y, idx,
                      Mix(torch.tensor([1, 0]), 0.75))
    assert float(loss) == 3.0
    method, task, spec = expert_setup(epochs=1, variant="paper")   # beta 1: L_bmc mixed too
    method.end_task(task)
    result = bmc_experts.train_expert(method.base.state_dict(), (task.x, task.y), method.config,
                                     5, spec)
    steps = []
    monkeypatch.setattr(method.trainer, "fit",
                        lambda params, x, y, step, *a, **k: steps.append((step, x, y)) or
                        {"loss": []})
    method.consolidate([result])
    step, x, yall = steps[0]
    method.base.eval()
    pick = torch.arange(6)
    xb, yb = method.trainer.inputs(x[pick]), yall[pick]
    perm, lam = torch.tensor([3, 4, 5, 0, 1, 2]), 0.7
    with torch.no_grad():
        mixed = step(xb, yb, pick, mix=Mix(perm, lam))
        first, second = step(xb, yb, pick), step(xb, yb[perm], pick[perm])
    assert float(mixed) == pytest.approx(lam * float(first) + (1 - lam) * float(second),
                                         rel=1e-5)
    assert abs(float(first) - float(second)) > 1e-3


def test_loop_validation_split_never_leaves_a_phase_without_training_data():
    """A consolidation over 1 or 2 samples (a tiny buffer) still trains: the held-out split
    keeps at least one training sample (1 -> no split, the plateau on the training loss)."""
    from clbudget.train.loop import Pipeline, Trainer
    from clbudget.train.recipe_book import BMC_CONSOLIDATION
    trainer = Trainer(torch.device("cpu"), Pipeline((0.0,), (1.0,), pad=0),
                      torch.Generator().manual_seed(0))
    w = torch.nn.Parameter(torch.ones(1))
    for n, val_losses in ((1, None), (2, 3)):
        x = torch.zeros(n, 1, 1, 1, dtype=torch.uint8)
        out = trainer.fit([w], x, torch.zeros(n, dtype=torch.long),
                          lambda xb, yb, idx, mix=None: (w ** 2).sum(),
                          dataclasses.replace(BMC_CONSOLIDATION, epochs=3), "tiny")
        assert len(out["loss"]) == 3 and len(out.get("val_loss", [])) == (val_losses or 0)


def test_mind_fresh_teacher_learns_only_its_tasks_rows(monkeypatch):
    """MIND's fresh teacher is trained with CE over its task's classes alone (main.py: the
    teacher's output is the task's head): the head rows of every other class get no gradient,
    so under Adam without weight decay they keep their initial values exactly, while the
    task's rows move."""
    from clbudget.nets.classifier import Classifier
    from tests.helpers import learnable_spec, quick_phases
    phase = quick_phases()[0][1]
    spec = learnable_spec("mind", recipe_options=(("teacher", phase), ("distill", phase)))
    stream, ctx, method = prepare(spec, tiny_stream(glyphs_options=spec.glyphs_options))
    task = to_device(stream, ctx.device)[1]
    created = []
    real = Classifier.create.__func__

    def spy(cls, *args, **kwargs):
        net = real(cls, *args, **kwargs)
        created.append((net, net.head.weight.detach().clone(), net.head.bias.detach().clone()))
        return net
    monkeypatch.setattr(Classifier, "create", classmethod(spy))
    method.begin_task(task)
    teacher, _ = method.train_teacher(task)
    net, w0, b0 = next(c for c in created if c[0] is teacher)
    rows = method.rows(1)
    others = [r for r in range(w0.shape[0]) if not rows.start <= r < rows.stop]
    assert others and phase.optimizer == "adam" and phase.weight_decay == 0
    assert torch.equal(teacher.head.weight[others], w0[others])
    assert torch.equal(teacher.head.bias[others], b0[others])
    assert not torch.equal(teacher.head.weight[rows], w0[rows])


def test_memo_auxiliary_head_reads_the_new_branchs_features(monkeypatch):
    """MEMO's auxiliary classifier (PyCIL memo.py: `aux_logits = self.aux_fc(features[:,
    -self.out_dim:])`) reads the features of the branch being trained, the last D columns:
    at every step of task 1 its input equals what the newest branch output on that batch."""
    import clbudget.methods.expanding as expanding
    method, tasks = start("memo")
    method.begin_task(tasks[0]); method.learn(tasks[0]); method.end_task(tasks[0])
    method.begin_task(tasks[1])
    newest, aux_inputs = [], []
    method.net.branches[-1].register_forward_hook(
        lambda m, args, out: newest.append(out.detach().clone()))
    real = expanding.simple_linear

    def spy(*args, **kwargs):
        fc = real(*args, **kwargs)
        fc.register_forward_pre_hook(lambda m, args: aux_inputs.append(args[0].detach().clone()))
        return fc
    monkeypatch.setattr(expanding, "simple_linear", spy)
    method.learn(tasks[1])
    assert len(aux_inputs) >= 2 and len(newest) == len(aux_inputs)   # one of each per step
    for got, want in zip(aux_inputs, newest):
        assert torch.equal(got, want)
