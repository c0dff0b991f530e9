"""Compute beside bytes: training FLOPs per run and inference FLOPs per test image.

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode`, which counts the matrix
work (convolutions, matmuls, attention: forward and backward, 2 FLOPs per multiply-add);
batch norm, activations, pooling and the optimizer update are not counted.  Unlike wall
time they do not depend on the device or on what else runs on it.

Training.  `Trainer.fit` runs the first step of every call, and its last step when the
last batch is smaller, under the counter: the method's step closure (its forward passes,
the teacher's and the replayed samples' included) and the backward pass.  A fit's FLOPs are
then epochs x (first step x full batches + last partial step): exact whenever a step's
work depends only on its batch, as in every method here.  Each call is one phase entry
(its `desc`, e.g. "der task 2"), so a method with several kinds of steps (MIND's teacher and
student, CLR's two phases, BMC's experts and consolidation) has each counted by its own
measurement.  Feature extraction outside `fit` (herding, class means) and evaluation are
not training FLOPs; BMC experts trained as Ray tasks (`--bmc-executor ray`) are not counted.

Inference.  `inference_flops_per_image` runs the method's task-agnostic `scores` (CLR, task-
aware only: `task_scores`) on a few test images after the last task: DER's T backbones,
MEMO's T specialized blocks, MIND's per-task passes for its entropy choice are all in it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch


@contextlib.contextmanager
def counting(enabled: bool = True):
    """Yields a list that holds the FLOPs counted inside the block once it exits."""
    out: list[int] = []
    if not enabled:
        yield out
        return
    from torch.utils.flop_counter import FlopCounterMode
    mode = FlopCounterMode(display=False)
    with mode:
        yield out
    out.append(int(mode.get_total_flops()))


@dataclass
class FitMeter:
    """One `fit` call's measurement: which steps to count and what they counted."""
    tally: "FlopTally | None"
    desc: str
    epochs: int
    steps: int           # steps per epoch
    n: int               # training images per epoch
    batch_size: int
    first: int = 0
    last: int = 0

    def measure(self, epoch: int, b: int):
        """Context of step b of epoch `epoch`: counts it when it is one to measure."""
        partial = self.n % self.batch_size
        which = ("first" if b == 0 else "last" if (b == self.steps - 1 and partial) else None)
        if self.tally is None or epoch or which is None:
            return contextlib.nullcontext()
        return self._count(which)

    @contextlib.contextmanager
    def _count(self, which: str):
        with counting() as out:
            yield
        setattr(self, which, out[0])

    def close(self) -> None:
        if self.tally is None:
            return
        if self.steps == 1:
            per_epoch = self.first
        elif self.n % self.batch_size:
            per_epoch = self.first * (self.steps - 1) + self.last
        else:
            per_epoch = self.first * self.steps
        self.tally.phases.append({"desc": self.desc, "epochs": self.epochs,
                                  "steps_per_epoch": self.steps, "images_per_epoch": self.n,
                                  "batch_size": self.batch_size,
                                  "flops_per_step": self.first, "flops": self.epochs * per_epoch})


@dataclass
class FlopTally:
    """Training FLOPs of one run, phase by phase (one entry per `fit` call)."""
    phases: list[dict] = field(default_factory=list)

    @property
    def train_flops(self) -> int:
        return sum(p["flops"] for p in self.phases)

    def state(self) -> list[dict]:
        """JSON-able, for checkpoints: a resumed run keeps the FLOPs of its finished tasks."""
        return [dict(p) for p in self.phases]

    def restore(self, state) -> None:
        self.phases = [dict(p) for p in state or []]


def fit_meter(trainer, desc: str, epochs: int, steps: int, n: int, batch_size: int) -> FitMeter:
    """The meter of one fit call; a no-op when the trainer keeps no tally."""
    tally = getattr(trainer, "flops", None)
    return FitMeter(tally, desc, epochs, steps, n, batch_size)


@torch.no_grad()
def inference_flops_per_image(method, x_test_uint8: torch.Tensor, n_images: int = 8) -> int:
    """FLOPs of the method's inference on one test image (mean over a few)."""
    x = x_test_uint8[:n_images]
    if len(x) == 0:
        return 0
    method.eval()
    last = method.task
    score = ((lambda inputs: method.task_scores(inputs, last)) if method.task_aware_only
             else method.scores)
    with counting() as out:
        method.trainer.predict(score, x)
    return out[0] // len(x)


def flop_fields(tally: FlopTally, method, tasks) -> dict:
    """The row's compute fields."""
    return {"train_flops": tally.train_flops,
            "flops_by_phase": tally.state(),
            "inference_flops_per_image": inference_flops_per_image(method, tasks[-1].x_test)}
