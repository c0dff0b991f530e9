"""FLOPs beside bytes: a conv2 step counted by hand equals FlopCounterMode; runs carry them."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from clbudget.experiment.checkpoint import Checkpoints
from clbudget.experiment.run import run_experiment
from clbudget.nets.classifier import Classifier
from tests.helpers import tiny_spec, tiny_stream

K, H = 6, 16   # the tiny glyphs stream: 6 classes, 16x16 images


def conv2_flops(batch: int, classes: int = K, size: int = H) -> dict:
    """conv2 (3->64 3x3 at HxW, pool, 64->64 3x3 at H/2, pool, global pool) + Linear(64, K).
    A conv or a matmul costs 2 FLOPs per multiply-add; BN, ReLU and pooling are not counted."""
    conv1 = 2 * batch * 64 * size * size * 3 * 9
    conv2 = 2 * batch * 64 * (size // 2) ** 2 * 64 * 9
    head = 2 * batch * 64 * classes
    return {"forward": conv1 + conv2 + head,
            # backward: conv1 only its weight gradient (its input is data), conv2 and the head
            # both input and weight gradients
            "step": (conv1 + conv2 + head) + conv1 + 2 * conv2 + 2 * head}


def test_one_conv2_training_step_by_hand_equals_flop_counter():
    torch.manual_seed(0)
    net = Classifier.create("conv2", (3, H, H), K)
    x, y = torch.randn(4, 3, H, H), torch.randint(0, K, (4,))
    with FlopCounterMode(display=False) as mode:
        F.cross_entropy(net(x), y).backward()
    assert mode.get_total_flops() == conv2_flops(4)["step"] == 63_710_208


def test_run_row_carries_training_and_inference_flops():
    """finetune: every step is one conv2 step, so the run's FLOPs are the hand count per
    image times the images trained on, partial last batches included (40 x 2 = 80 images per
    task at batch 32: two full steps and one of 16)."""
    row = run_experiment(tiny_spec("finetune", epochs=2), stream=tiny_stream())
    per_image = conv2_flops(1)["step"]
    assert [p["images_per_epoch"] for p in row["flops_by_phase"]] == [80, 80, 80]
    assert [p["flops_per_step"] for p in row["flops_by_phase"]] == [32 * per_image] * 3
    assert row["train_images"] == 3 * 2 * 80
    assert row["train_flops"] == row["train_images"] * per_image
    assert row["inference_flops_per_image"] == conv2_flops(1)["forward"]


def test_der_inference_runs_every_backbone():
    row = run_experiment(tiny_spec("der"), stream=tiny_stream())
    T, one = 3, conv2_flops(1)
    backbone = one["forward"] - 2 * 64 * K
    assert row["inference_flops_per_image"] == T * backbone + 2 * T * 64 * K
    assert row["train_flops"] > 0 and len(row["flops_by_phase"]) == T


class Stop(Exception):
    pass


def test_resumed_run_keeps_the_flops_of_its_finished_tasks(tmp_path):
    spec = tiny_spec("finetune")
    whole = run_experiment(spec, stream=tiny_stream())
    checkpoints = Checkpoints(tmp_path)

    def stop(index, _row):
        if index == 1:
            raise Stop
    with pytest.raises(Stop):
        run_experiment(spec, stream=tiny_stream(), checkpoints=checkpoints, on_task=stop)
    resumed = run_experiment(spec, stream=tiny_stream(), checkpoints=checkpoints)
    assert resumed["resumed_tasks"] == 2
    assert resumed["flops_by_phase"] == whole["flops_by_phase"]
    assert resumed["train_flops"] == whole["train_flops"]
