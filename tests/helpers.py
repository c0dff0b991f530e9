"""Shared test fixtures: a tiny glyphs stream and an independent count of held bytes."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from clbudget.conformance import held_bytes  # noqa: F401  (check-method's count, one code)
from clbudget.experiment.run import RunSpec

ROOT = Path(__file__).resolve().parents[1]
# The real CIFAR-10 JPEG tree (ImageFolder layout): $CLBUDGET_CIFAR10, the repository's ignored
# .data/cifar10, or shared/data/cifar10 beside the repository (or beside its worktrees' folder)
CIFAR10_CANDIDATES = tuple(p for p in (
    Path(os.environ["CLBUDGET_CIFAR10"]) if os.environ.get("CLBUDGET_CIFAR10") else None,
    ROOT / ".data" / "cifar10", ROOT.parent / "shared" / "data" / "cifar10",
    ROOT.parent.parent / "shared" / "data" / "cifar10") if p is not None)
REAL_CIFAR10 = next((p for p in CIFAR10_CANDIDATES if (p / "train").is_dir()),
                    CIFAR10_CANDIDATES[0])


def real_cifar10() -> Path:
    """The real CIFAR-10 tree, or a failure (never a skip) saying where it was looked for."""
    if not (REAL_CIFAR10 / "train").is_dir():
        pytest.fail("the real CIFAR-10 JPEG tree (train/<class>/*.jpg, test/<class>/*.jpg) is "
                    f"missing: looked in {', '.join(map(str, CIFAR10_CANDIDATES))}; set "
                    "CLBUDGET_CIFAR10=DIR to its folder", pytrace=False)
    return REAL_CIFAR10


def real_fashion_mnist() -> Path:
    """Debian's dataset-fashion-mnist IDX files at clbudget's default root, or a failure (never
    a skip) naming the set-up command that installs them."""
    from clbudget.streams.multidomain import DEFAULT_ROOTS
    root = Path(DEFAULT_ROOTS["fashion-mnist"])
    needed = [root / f"{s}-{k}-idx{n}-ubyte.gz" for s in ("train", "t10k")
              for k, n in (("images", 3), ("labels", 1))]
    missing = [str(f) for f in needed if not f.is_file()]
    if missing:
        pytest.fail(f"Fashion-MNIST files missing: {', '.join(missing)}; run ./setup.sh (it "
                    "installs Debian's dataset-fashion-mnist)", pytrace=False)
    return root


TINY_GLYPHS = (("num_classes", 6), ("train_per_class", 40), ("test_per_class", 12),
               ("image_size", 16), ("seed", 0))


def tiny_spec(method: str, **overrides) -> RunSpec:
    """3 tasks of 2 glyph classes, 16x16 images, 1 epoch, conv2: seconds on a CPU.

    `epochs` reaches every phase here, also those `--epochs` leaves alone (BMC's consolidation,
    CLR's pre-training, MIND's teacher: `Method.task_phases`), named as recipe options before
    the caller's own, so a test runs in seconds; tests of that rule build their RunSpec."""
    base = dict(method=method, dataset="glyphs", budget="5xconv2+300ex", init=0, inc=2,
                num_classes=6, epochs=1, batch_size=32, seed=0, backbone="conv2",
                device="cpu", glyphs_options=TINY_GLYPHS)
    base.update(overrides)
    if base.get("epochs") is not None:
        base["recipe_options"] = (own_phase_epochs(method, base["epochs"])
                                  + tuple(base.get("recipe_options") or ()))
    return RunSpec(**base)


def own_phase_epochs(method: str, epochs: int) -> tuple:
    """(phase, {"epochs": epochs}) for each phase of `method` that is not a task phase."""
    from clbudget.experiment.run import method_class
    from clbudget.train.recipes import task_phases_of
    try:
        cls = method_class(method)
    except (KeyError, ValueError):
        return ()
    own = task_phases_of(cls)
    return tuple((p, {"epochs": epochs}) for p in cls.phases if p not in own)


@functools.lru_cache(maxsize=None)
def tiny_stream(**kw):
    from clbudget.experiment.run import load
    return load(tiny_spec("finetune", **kw))


def quick_phases(epochs: int = 4, lr: float = 3e-3) -> tuple:
    """recipe_options for behaviour tests: Adam at a constant rate, no augmentation, learns
    plain glyphs in a few epochs, where the paper's SGD schedule needs hundreds of steps."""
    from clbudget.train.loop import LoopConfig
    phase = LoopConfig(epochs=epochs, batch_size=32, optimizer="adam", lr=lr,
                       weight_decay=0.0, schedule="constant", augment=False)
    return (("first", phase), ("later", phase))


LEARNABLE_GLYPHS = (("num_classes", 6), ("train_per_class", 100), ("test_per_class", 40),
                    ("image_size", 16), ("seed", 0), ("style", "plain"))


def learnable_spec(method: str, **overrides) -> RunSpec:
    """3 tasks of 2 plain-glyph classes at 16x16 on conv2: learns in seconds with quick_phases."""
    base = dict(backbone="conv2", budget="1xconv2+120ex", epochs=None,
                glyphs_options=LEARNABLE_GLYPHS, recipe_options=quick_phases())
    base.update(overrides)
    return tiny_spec(method, **base)


def cli(capsys, *argv):
    """Run the command line in-process: (exit code, stdout, stderr), argparse exits included."""
    from clbudget.cli import main
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err
