"""DER++ and online EWC take Mammoth's best arguments per data set and buffer size
(methods/best_args.py), and a buffer Mammoth does not list takes the nearest listed one,
which the row and the run summary name.

Expected values are copied by hand from aimagelab/mammoth at commit
e75a491c69fd729edeb01431afb753d9157d9a81 (`git show e75a491c:PATH`), never from clbudget:
models/config/derpp.yaml, models/config/ewc_on.yaml, utils/best_args.py (the dict literals
below keep its key names), datasets/configs/seq-cifar100/xder.yaml, and the data sets'
defaults (datasets/seq_cifar10.py, seq_cifar100.py, seq_tinyimagenet.py, seq_mnist.py)."""
from __future__ import annotations

import pytest

from clbudget.experiment.run import prepare, run_experiment
from clbudget.methods.registry import method_class
from clbudget.train.recipes import resolve
from tests.helpers import cli, tiny_spec

# utils/best_args.py best_args['seq-cifar10']['derpp']
SEQ_CIFAR10_DERPP = {
    200: {'lr': 0.03, 'minibatch_size': 32, 'alpha': 0.1, 'beta': 0.5, 'batch_size': 32,
          'n_epochs': 50},
    500: {'lr': 0.03, 'minibatch_size': 32, 'alpha': 0.2, 'beta': 0.5, 'batch_size': 32,
          'n_epochs': 50},
    5120: {'lr': 0.03, 'minibatch_size': 32, 'alpha': 0.1, 'beta': 1.0, 'batch_size': 32,
           'n_epochs': 50}}
# models/config/derpp.yaml seq-cifar100 (dataset_config: xder; 500 only); xder.yaml gives
# batch_size 32, n_epochs 50, multisteplr [35, 45], gamma 0.2; minibatch_size = batch_size
# (main.py sets it when the batch size is given)
SEQ_CIFAR100_DERPP = {500: {'alpha': 0.3, 'beta': 0.5, 'lr': 0.03, 'minibatch_size': 32,
                            'batch_size': 32, 'n_epochs': 50}}
# utils/best_args.py best_args['seq-tinyimg']['derpp']
SEQ_TINYIMG_DERPP = {
    200: {'lr': 0.03, 'minibatch_size': 32, 'alpha': 0.1, 'beta': 1.0, 'batch_size': 32,
          'n_epochs': 100},
    500: {'lr': 0.03, 'minibatch_size': 32, 'alpha': 0.2, 'beta': 0.5, 'batch_size': 32,
          'n_epochs': 100},
    5120: {'lr': 0.03, 'minibatch_size': 32, 'alpha': 0.1, 'beta': 0.5, 'batch_size': 32,
           'n_epochs': 100}}
# utils/best_args.py best_args['seq-mnist']['derpp']
SEQ_MNIST_DERPP = {
    200: {'lr': 0.03, 'minibatch_size': 128, 'alpha': 0.2, 'beta': 1.0, 'batch_size': 10,
          'n_epochs': 1},
    500: {'lr': 0.03, 'minibatch_size': 10, 'alpha': 1.0, 'beta': 0.5, 'batch_size': 10,
          'n_epochs': 1},
    5120: {'lr': 0.1, 'minibatch_size': 64, 'alpha': 0.2, 'beta': 0.5, 'batch_size': 10,
           'n_epochs': 1}}
# models/config/ewc_on.yaml seq-cifar10 (batch_size 32: datasets/seq_cifar10.py)
SEQ_CIFAR10_EWC = {'e_lambda': 10, 'gamma': 1, 'lr': 0.1, 'n_epochs': 50, 'batch_size': 32}
# utils/best_args.py best_args['seq-tinyimg']['ewc_on'][-1], ['seq-mnist']['ewc_on'][-1]
SEQ_TINYIMG_EWC = {'lr': 0.03, 'e_lambda': 25, 'gamma': 1.0, 'batch_size': 32, 'n_epochs': 100}
SEQ_MNIST_EWC = {'lr': 0.03, 'e_lambda': 90, 'gamma': 1.0, 'batch_size': 10, 'n_epochs': 1}

DERPP = {"cifar10": SEQ_CIFAR10_DERPP, "cifar100": SEQ_CIFAR100_DERPP,
         "tinyimagenet": SEQ_TINYIMG_DERPP, "mnist": SEQ_MNIST_DERPP}
EWC = {"cifar10": SEQ_CIFAR10_EWC, "tinyimagenet": SEQ_TINYIMG_EWC, "mnist": SEQ_MNIST_EWC}
# the data sets' own defaults: a schedule only on seq-cifar100; no augmentation on seq-mnist
SCHEDULE = {"cifar100": ("multistep", (35, 45))}
AUGMENT = {"mnist": False}


def check(method, dataset, size, want, mechanism):
    """The table entry of (method, dataset, size) and the recipe it resolves to hold `want`."""
    cls = method_class(method)
    entry = cls.best_args[dataset].entry(size)
    assert entry.buffer_size == size
    assert dict(entry.config) == {k: want[k] for k in mechanism}, (method, dataset, size)
    for phase in ("first", "later"):
        cfg = resolve(cls, dataset=dataset, n_exemplars=size).phase(phase)
        schedule, milestones = SCHEDULE.get(dataset, ("constant", ()))
        assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.momentum, cfg.weight_decay,
                cfg.schedule, cfg.milestones, cfg.augment) == (
            want['lr'], want['batch_size'], want['n_epochs'], 0.0, 0.0, schedule, milestones,
            AUGMENT.get(dataset, True)), (method, dataset, size, phase)
    if dataset == "cifar100":
        assert cfg.gamma == 0.2      # xder.yaml sched_multistep_lr_gamma


@pytest.mark.parametrize("dataset, size", [(d, s) for d, t in DERPP.items() for s in t])
def test_derpp_takes_mammoths_best_args_per_data_set_and_buffer(dataset, size):
    check("derpp", dataset, size, DERPP[dataset][size], ("alpha", "beta", "minibatch_size"))


@pytest.mark.parametrize("dataset", EWC)
def test_ewc_takes_mammoths_best_args_per_data_set(dataset):
    check("ewc", dataset, None, EWC[dataset], ("e_lambda", "gamma"))


def test_only_the_data_sets_mammoth_lists_have_tables():
    """Mammoth lists derpp on seq-cifar10/100, seq-tinyimg, seq-mnist; ewc_on on seq-cifar10,
    seq-tinyimg, seq-mnist (not seq-cifar100).  Their sizes are the files' keys."""
    assert {d: t.sizes for d, t in method_class("derpp").best_args.items()} == {
        d: tuple(t) for d, t in DERPP.items()}
    assert {d: (t.dataset, t.source) for d, t in method_class("ewc").best_args.items()} == {
        "cifar10": ("seq-cifar10", "models/config/ewc_on.yaml"),
        "tinyimagenet": ("seq-tinyimg", "utils/best_args.py"),
        "mnist": ("seq-mnist", "utils/best_args.py")}
    assert method_class("derpp").best_args["cifar100"].source == "models/config/derpp.yaml"


def test_the_nearest_listed_size_in_log_scale_by_hand():
    """Boundaries on 200, 500, 5120: sqrt(200 * 500) = 316.2, sqrt(500 * 5120) = 1600 (a
    tie, to the smaller)."""
    from clbudget.methods.best_args import nearest_listed
    sizes = (200, 500, 5120)
    for n, want in ((1, 200), (200, 200), (316, 200), (317, 500), (731, 500), (1600, 500),
                    (1601, 5120), (2000, 5120), (10 ** 6, 5120)):
        assert nearest_listed(sizes, n) == want, n
    assert nearest_listed((500,), 3) == nearest_listed((500,), 90_000) == 500


# budgets of the tiny glyphs stream (16x16x3, 6 classes, conv2) declared CIFAR-10 by its
# normalisation, whose DER++ buffers Mammoth does not list: n between 317 and 1600 -> 500's
# arguments, n above 1600 -> 5120's (seq-cifar10 rows above)
UNLISTED = [("5xconv2+300ex", 317, 1600, 500), ("1xconv2+2000ex", 1601, 5119, 5120)]


@pytest.mark.parametrize("budget, lo, hi, listed", UNLISTED)
def test_an_unlisted_buffer_takes_the_nearest_listed_sizes_args_and_the_row_says_so(
        budget, lo, hi, listed):
    want = SEQ_CIFAR10_DERPP[listed]
    spec = tiny_spec("derpp", normalization="mammoth:cifar10", budget=budget, num_classes=4)
    _, ctx, method = prepare(spec)
    n = ctx.allocation.n_exemplars
    assert lo <= n <= hi and n != listed
    assert (method.config.alpha, method.config.beta, method.config.minibatch_size) == (
        want['alpha'], want['beta'], want['minibatch_size'])    # what trains, not only the row
    row = run_experiment(spec)
    assert row["best_args"]["buffer_size"] == listed and row["best_args"]["n_exemplars"] == n
    assert row["best_args"]["values"] == {k: want[k] for k in ("alpha", "beta", "minibatch_size")}
    assert row["best_args"]["listed_buffer_sizes"] == [200, 500, 5120]
    assert (f"seq-cifar10 buffer {listed}, the nearest listed (200, 500, 5120; nearest in log "
            f"scale) to this run's {n}") in row["recipe_source"]
    assert "utils/best_args.py @ e75a491c" in row["recipe_source"]


def test_cifar100_lists_500_only_and_options_override_the_table():
    spec = tiny_spec("derpp", normalization="mammoth:cifar100", budget="1xconv2+2000ex",
                     num_classes=4, method_options=(("beta", 0.7),))
    _, ctx, method = prepare(spec)
    assert (method.config.alpha, method.config.beta) == (0.3, 0.7)   # derpp.yaml's alpha 0.3
    choice = ctx.best_args
    assert choice.entry.buffer_size == 500 and choice.table.source == "models/config/derpp.yaml"
    text = choice.text()
    assert f"buffer 500, the nearest listed (500; nearest in log scale) to this run's " \
           f"{ctx.allocation.n_exemplars}" in text
    assert "alpha 0.3, beta 0.7 (--option; Mammoth's 0.5)" in text
    assert "recipe mammoth-seq-cifar100-derpp" in text


def test_data_sets_mammoth_does_not_list_keep_the_defaults_and_say_so():
    _, ctx, method = prepare(tiny_spec("derpp", num_classes=4))       # glyphs
    assert (method.config.alpha, method.config.beta) == (0.2, 0.5)
    assert ctx.best_args.table is None and ctx.recipe.name == "mammoth-seq-cifar10-derpp"
    assert ctx.best_args.text().startswith("Mammoth lists no best args of derpp for glyphs")
    _, ctx, method = prepare(tiny_spec("ewc", normalization="mammoth:cifar100", num_classes=4))
    assert ctx.recipe.name == "mammoth-seq-cifar100-ewc_on" and ctx.best_args.table is None
    assert (method.config.e_lambda, method.config.gamma) == (10.0, 1.0)
    _, ctx, method = prepare(tiny_spec("ewc", normalization="mammoth:tinyimagenet",
                                       num_classes=4))
    assert (method.config.e_lambda, ctx.recipe.name) == (25, "mammoth-seq-tinyimg-ewc_on")


def test_run_keys_change_with_the_tables_not_elsewhere(monkeypatch):
    """The buffer is known after allocation only: a listed data set's run key holds the whole
    table, so changing a listed value gives another run; other methods' keys do not move."""
    import dataclasses
    from clbudget.methods import derpp
    spec = tiny_spec("derpp", normalization="mammoth:cifar10")
    glyphs, replay = tiny_spec("derpp"), tiny_spec("replay", normalization="mammoth:cifar10")
    before = (spec.key, glyphs.key, replay.key)
    table = derpp.BEST_ARGS["cifar10"]
    changed = dataclasses.replace(table, entries=(table.entries[0], dataclasses.replace(
        table.entries[1], config=(("alpha", 0.25), ("beta", 0.5), ("minibatch_size", 32))),
        table.entries[2]))
    monkeypatch.setitem(derpp.BEST_ARGS, "cifar10", changed)
    assert spec.key != before[0]
    assert (glyphs.key, replay.key) == before[1:]


def test_run_summary_prints_which_listed_size_was_used(capsys, tmp_path):
    code, out, err = cli(capsys, "run", "--method", "derpp", "--budget", "1xconv2+2000ex",
                         "--backbone", "conv2", "--init", "0", "--inc", "2", "--num-classes",
                         "4", "--epochs", "1", "--device", "cpu", "--normalization",
                         "mammoth:cifar10", "--glyphs", "num_classes=6", "--glyphs",
                         "train_per_class=40", "--glyphs", "test_per_class=12", "--glyphs",
                         "image_size=16", "--cache-dir", str(tmp_path))
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.strip().startswith("best args"))
    assert "seq-cifar10 buffer 5120, the nearest listed (200, 500, 5120" in line
    assert "alpha 0.1, beta 1.0, minibatch_size 32" in line


def write_mnist(root, per_class: int = 3):
    """A tiny MNIST in the IDX format (train-/t10k- images-idx3 / labels-idx1, raw)."""
    import struct
    import numpy as np
    rng = np.random.default_rng(0)
    for prefix, n in (("train", per_class), ("t10k", 1)):
        y = np.repeat(np.arange(10, dtype=np.uint8), n)
        x = rng.integers(0, 256, (len(y), 28, 28), dtype=np.uint8)
        for kind, a in (("images-idx3", x), ("labels-idx1", y)):
            header = struct.pack(f">I{a.ndim}I", 0x0800 + a.ndim, *a.shape)
            (root / f"{prefix}-{kind}-ubyte").write_bytes(header + a.tobytes())


@pytest.mark.parametrize("budget, lo, hi, listed", [("1xconv2+250ex", 1, 316, 200),
                                                    ("1xconv2+3000ex", 1601, 5119, 5120)])
def test_seq_mnist_buffers_pick_their_own_lr_and_minibatch(tmp_path, budget, lo, hi, listed):
    """seq-mnist is the one table whose training differs by buffer: lr 0.1 at 5120, 0.03
    below; minibatch 128 / 10 / 64; batch 10, 1 epoch, no augmentation, pixels / 255."""
    write_mnist(tmp_path)
    want = SEQ_MNIST_DERPP[listed]
    spec = tiny_spec("derpp", dataset="mnist", data_root=str(tmp_path), cache_dir=str(tmp_path),
                     glyphs_options=(), budget=budget, epochs=None, batch_size=None)
    _, ctx, method = prepare(spec)
    assert lo <= ctx.allocation.n_exemplars <= hi
    later = ctx.recipe.phase("later")
    assert (later.lr, later.batch_size, later.epochs, later.augment) == (
        want['lr'], want['batch_size'], want['n_epochs'], False)
    assert (method.config.alpha, method.config.beta, method.config.minibatch_size) == (
        want['alpha'], want['beta'], want['minibatch_size'])
    assert (ctx.trainer.pipeline.mean, ctx.trainer.pipeline.std) == ((0.0,), (1.0,))
    assert f"seq-mnist buffer {listed}, the nearest listed" in ctx.best_args.text()


def test_sweep_plan_names_the_recipe_of_each_cells_buffer(capsys, tmp_path):
    """The dry-run's recipe column follows the allocation: seq-mnist 5120's own recipe above
    1600 exemplars, 200's (lr 0.03) below 317."""
    write_mnist(tmp_path)
    code, out, err = cli(capsys, "sweep", "--methods", "derpp", "--budgets",
                         "1xconv2+250ex,1xconv2+3000ex", "--seeds", "0", "--dataset", "mnist",
                         "--data-root", str(tmp_path), "--init", "0", "--inc", "2",
                         "--backbone", "conv2", "--device", "cpu", "--cache-dir", str(tmp_path),
                         "--out", str(tmp_path / "s"), "--dry-run", "--json")
    assert code == 0, err
    import json
    recipes = {c["budget"]: c["recipe"].split(" ")[0] for c in json.loads(out)["cells"]
               if c["method"] == "derpp"}
    assert recipes == {"1xconv2+250ex": "mammoth-seq-mnist-derpp",
                       "1xconv2+3000ex": "mammoth-seq-mnist-derpp-5120"}
