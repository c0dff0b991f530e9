"""Evaluation batch: `Trainer.predict` batches by `Trainer.eval_batch_size` (chosen per device
type by bench/eval_batch.py, BENCHMARKS.md), and the batch size does not change a score."""
import numpy as np
import torch

from clbudget.train.loop import Pipeline, Trainer
from clbudget.nets.classifier import Classifier
from tests.helpers import tiny_stream


def trainer_on(device: str) -> Trainer:
    return Trainer(torch.device(device), Pipeline((0.5,) * 3, (0.25,) * 3),
                   torch.Generator().manual_seed(0))


def test_predict_batches_by_the_devices_eval_batch_size():
    cpu = trainer_on("cpu")
    n = 2 * cpu.eval_batch_size + 5
    sizes = []

    def score(x):                                           # (B, C, H, W) -> (B, 2)
        sizes.append(len(x))
        return x.flatten(1)[:, :2]

    out = cpu.predict(score, torch.zeros(n, 3, 4, 4, dtype=torch.uint8))
    assert out.shape == (n, 2)
    assert sizes == [cpu.eval_batch_size, cpu.eval_batch_size, 5]
    sizes.clear()
    cpu.predict(score, torch.zeros(n, 3, 4, 4, dtype=torch.uint8), batch_size=n)
    assert sizes == [n]                                     # an explicit batch wins
    assert cpu.eval_batch_size < trainer_on("cuda").eval_batch_size == 1024


def test_scores_are_bitwise_equal_at_any_eval_batch_size():
    """ResNet20 in eval mode with real running BN statistics, 240 glyph images: the scores at
    the old batch (1024, one batch), the CPU default and 32 are the same bits."""
    stream = tiny_stream()
    x = torch.from_numpy(np.concatenate([t.train.x for t in stream.tasks]))   # (240, 3, 16, 16)
    trainer = trainer_on("cpu")
    torch.manual_seed(0)
    net = Classifier.create("resnet20", tuple(x.shape[1:]), 6)
    with torch.no_grad():                                   # fill the running statistics
        net.train()
        for b in range(0, len(x), 48):
            net(trainer.inputs(x[b:b + 48]))
    net.eval()
    assert len(x) > trainer.eval_batch_size                 # the default really splits
    old = trainer.predict(net, x, batch_size=1024)
    assert torch.equal(trainer.predict(net, x), old)
    assert torch.equal(trainer.predict(net, x, batch_size=32), old)
    assert torch.equal(trainer.predict(net.features, x), trainer.predict(net.features, x, 1024))
