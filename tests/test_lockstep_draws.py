"""The lockstep's shared draws (bench/lockstep_draws.py), without PyCIL: the recorded draws
reproduce clbudget's augmentation exactly, with its tensor code and with the PIL calls
PyCIL's torchvision transforms make (against a by-hand crop and flip of a 4x4 image); the
batch order replays through a DataLoader onto a PyCIL-shaped data set in another order; the
control reverses each mini-batch with its draws.

PyCIL's training data set (`DummyDataset`: `images` (N, H, W, C), `labels`, `trsf`, a
torchvision Compose) is stood in for by one with transforms named as torchvision's and
carrying the attributes the replay reads; ToTensor + Normalize by the same float formula.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bench import lockstep_draws as draws_mod
from tests.test_parity_bench import pycil_checkout  # noqa: F401  (the `pycil` fixture)
from clbudget.train.loop import AugmentDraws, LoopConfig, Pipeline, Trainer

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)     # PyCIL's CIFAR-10
B = 63 / 255                                                        # its brightness


def pil_batch(x, draws, pad=4):
    """(B, C, H, W) uint8 through `augment_pil`, image by image, back to (B, C, H, W)."""
    return np.stack([np.asarray(draws_mod.augment_pil(
        Image.fromarray(img.transpose(1, 2, 0)), *draws_mod.draw_of(draws, k), pad=pad))
        .transpose(2, 0, 1) for k, img in enumerate(x.numpy())])


def test_recorded_draws_give_clbudgets_augmentation_in_tensors_and_in_pil():
    """64 random images: `augment` with a seeded generator equals `apply` of the draws the same
    seed gives, and the PIL replay of those draws equals it pixel for pixel (crop, flip and
    brightness with clamping and truncation); without brightness, no factors are drawn."""
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    p = Pipeline(MEAN, STD, brightness=B)
    out = p.augment(x, torch.Generator().manual_seed(5))
    d = p.draw(64, torch.Generator().manual_seed(5))
    assert torch.equal(p.apply(x, d), out)
    assert d.flip.any() and not d.flip.all() and (d.factors > 1).any() and (d.factors < 1).any()
    assert np.array_equal(pil_batch(x, d), out.numpy())
    plain = Pipeline(MEAN, STD)
    d0 = plain.draw(64, torch.Generator().manual_seed(5))
    assert d0.factors is None
    assert np.array_equal(pil_batch(x, d0), plain.augment(x, torch.Generator().manual_seed(5)).numpy())


def known_image() -> torch.Tensor:
    """(1, 3, 4, 4): channel 0 = 4r + c + 1 (1..16), channel 1 = 200, channel 2 = 0."""
    x = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    x[0, 0] = torch.arange(1, 17, dtype=torch.uint8).view(4, 4)
    x[0, 1] = 200
    return x


def test_crop_and_flip_of_a_known_image_by_hand():
    """pad 1, crop at row 0, column 2, mirrored: the padded 6x6 image's rows 0-3, columns 2-5
    are [0 0 0 0 / 2 3 4 0 / 6 7 8 0 / 10 11 12 0], mirrored [0 0 0 0 / 0 4 3 2 / 0 8 7 6 /
    0 12 11 10]; channel 1 is 200 inside the image, 0 in the padding.  Brightness 1.5 on
    the same draw: floor(1.5 v), 200 -> 255 (clamped); 0.5: 3 -> 1, 7 -> 3."""
    x = known_image()
    p = Pipeline(MEAN, STD, pad=1)
    d = AugmentDraws(torch.tensor([0]), torch.tensor([2]), torch.tensor([True]))
    want0 = [[0, 0, 0, 0], [0, 4, 3, 2], [0, 8, 7, 6], [0, 12, 11, 10]]
    want1 = [[0, 0, 0, 0], [0, 200, 200, 200], [0, 200, 200, 200], [0, 200, 200, 200]]
    for out in (p.apply(x, d).numpy(), pil_batch(x, d, pad=1)):
        assert out[0, 0].tolist() == want0 and out[0, 1].tolist() == want1
        assert not out[0, 2].any()
    unflipped = AugmentDraws(torch.tensor([0]), torch.tensor([2]), torch.tensor([False]))
    for out in (p.apply(x, unflipped).numpy(), pil_batch(x, unflipped, pad=1)):
        assert out[0, 0].tolist() == [row[::-1] for row in want0]
    for factor, row, ch1 in ((1.5, [0, 18, 16, 15], 255), (0.5, [0, 6, 5, 5], 100)):
        bright = AugmentDraws(d.dy, d.dx, d.flip, torch.tensor([factor], dtype=torch.float64))
        for out in (p.apply(x, bright).numpy(), pil_batch(x, bright, pad=1)):
            assert out[0, 0, 3].tolist() == row and out[0, 1, 3, 1] == ch1


def test_pairing_matches_same_images_then_the_rest_in_order():
    """clbudget's set: a, b (label 0), c, d, e (label 1); PyCIL's holds them as e, b, c, a, x
    with labels 1, 0, 1, 0, 1 (x in place of d: the memories differ there).  a -> 3, b -> 1,
    c -> 2, e -> 0, d -> 4 (the one left): one pair differs.  Other counts per label: error."""
    c_h, c_y = ["a", "b", "c", "d", "e"], [0, 0, 1, 1, 1]
    p_h, p_y = ["e", "b", "c", "a", "x"], [1, 0, 1, 0, 1]
    pos, differing = draws_mod.pair_positions(c_h, c_y, p_h, p_y)
    assert pos.tolist() == [3, 1, 2, 4, 0] and differing == 1
    same, n = draws_mod.pair_positions(["a", "a", "b"], [0, 0, 0], ["b", "a", "a"], [0, 0, 0])
    assert same.tolist() == [1, 2, 0] and n == 0
    with pytest.raises(RuntimeError, match="numbers of images per class"):
        draws_mod.pair_positions(c_h, c_y, p_h, [1, 1, 1, 0, 1])


class RandomCrop:
    padding, padding_mode, fill = 4, "constant", 0


class RandomHorizontalFlip:
    pass


class ColorJitter:
    brightness, contrast, saturation, hue = (1 - B, 1 + B), None, None, None


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms


def to_input(image) -> torch.Tensor:
    """ToTensor + Normalize: (x / 255 - mean) / std in float32, as the Pipeline computes."""
    x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float().div(255)
    return (x - torch.tensor(MEAN).view(-1, 1, 1)) / torch.tensor(STD).view(-1, 1, 1)


class PycilSet:
    def __init__(self, images, labels):
        self.images, self.labels = images, labels
        self.trsf = Compose([RandomCrop(), RandomHorizontalFlip(), ColorJitter(), to_input])


def tiny_fit(reverse: bool, epochs: int = 2, batch_size: int = 3, n: int = 7, order=None,
             follow=None, seed: int = 11):
    """Trainer.fit on n random images (labels 0, 1 alternating; `order`: the set held in that
    order), augmented, under `recording(reverse, follow)`; returns the records and every
    batch's inputs as the step got them."""
    torch.manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(n) % 2
    if order is not None:
        x, y = x[order], y[order]
    w = torch.zeros(1, requires_grad=True)
    seen = []

    def step(xb, yb, idx):
        seen.append(xb.clone())
        return (w * xb.mean()).sum() + w.square().sum()
    trainer = Trainer(torch.device("cpu"), Pipeline(MEAN, STD, brightness=B),
                      torch.Generator().manual_seed(seed))
    cfg = LoopConfig(epochs=epochs, batch_size=batch_size, milestones=(epochs,))
    with draws_mod.recording(reverse, follow) as records:
        trainer.fit([w], x, y, step, cfg)
    return x, y, records, seen


def test_batch_order_and_draws_replay_onto_a_set_in_another_order():
    """The recorded 2 epochs of 3 batches (3, 3, 1 images) replayed through a DataLoader onto
    PyCIL's set holding the same images in another order: every batch's inputs equal the
    step's bit for bit, the first batch's uint8 images pixel for pixel; the check counts
    6/6.  The replay trains no more epochs than recorded."""
    x, y, records, seen = tiny_fit(reverse=False)
    rec, = records
    assert [len(e) for e in rec.batches] == [3, 3] and [len(b) for b in rec.batches[0]] == [3, 3, 1]
    assert sorted(torch.cat(rec.batches[1]).tolist()) == list(range(7))
    order = np.array([4, 0, 6, 2, 5, 1, 3])       # PyCIL's position j holds clbudget's order[j]
    ds = PycilSet(x.numpy().transpose(0, 2, 3, 1)[order], y.numpy()[order])
    loader = draws_mod.replay_loader(type("L", (), {"dataset": ds})(), rec, augment=True)
    got = [inputs for _ in range(2) for _, inputs, _ in loader]
    assert len(got) == len(seen) == 6
    assert all(torch.equal(a, b) for a, b in zip(got, seen))
    assert loader.check(strict=True) == {"batches_equal": 6, "batches": 6,
                                         "images_differing": 0, "first_batch_equal": True}
    with pytest.raises(RuntimeError, match="more epochs than the 2 recorded"):
        list(loader)


def test_the_runtime_check_stops_a_replay_that_differs():
    """The same replay with one crop offset changed on PyCIL's side: the first batch differs
    and the strict check stops; a replay that trained fewer epochs than recorded stops too."""
    x, y, records, _ = tiny_fit(reverse=False)
    rec, = records
    ds = PycilSet(x.numpy().transpose(0, 2, 3, 1), y.numpy())
    loader = draws_mod.replay_loader(type("L", (), {"dataset": ds})(), rec, augment=True)
    d = rec.draws[0][0]
    loader.dataset.draws = [[AugmentDraws((d.dy + 1) % 9, d.dx, d.flip, d.factors)]
                            + rec.draws[0][1:]] + rec.draws[1:]
    for _ in range(2):
        list(loader)
    with pytest.raises(RuntimeError, match="different batches"):
        loader.check(strict=True)
    assert loader.check(strict=False)["first_batch_equal"] is False
    short = draws_mod.replay_loader(type("L", (), {"dataset": ds})(), rec, augment=True)
    list(short)
    with pytest.raises(RuntimeError, match="trained 1 epochs of the 2"):
        short.check(strict=False)


def test_control_reverses_each_mini_batch_with_its_draws():
    """Reversed: the same batches (3, 3, 1 images) each in reverse order, every image with the
    augmentation it had: batch b's inputs are the plain run's batch b flipped along the batch,
    exactly.  One batch an epoch (batch 100): the whole epoch reversed."""
    _, _, plain, seen = tiny_fit(reverse=False)
    _, _, rev, seen_rev = tiny_fit(reverse=True)
    for a, b in zip(plain[0].batches, rev[0].batches):
        assert all(torch.equal(u.flip(0), v) for u, v in zip(a, b))
    assert all(torch.equal(u.flip(0), v) for u, v in zip(seen, seen_rev))
    _, _, whole, _ = tiny_fit(reverse=False, batch_size=100)
    _, _, whole_rev, _ = tiny_fit(reverse=True, batch_size=100)
    assert torch.equal(whole[0].batches[0][0].flip(0), whole_rev[0].batches[0][0])


def test_control_follows_the_first_runs_batches_by_image_content():
    """The reversed run on the same 7 images held in another order (as a memory in another
    herding order holds them): without `follow` its batches are the same positions, so other
    images; following the first run's records, batch b's inputs are the first run's batch b
    flipped along the batch, exactly, and no image differs.  A run whose generator is out of
    step (another seed) draws other augmentation: an error."""
    _, _, plain, seen = tiny_fit(reverse=False)
    order = torch.tensor([4, 0, 6, 2, 5, 1, 3])
    _, _, _, unfollowed = tiny_fit(reverse=True, order=order)
    assert not all(torch.equal(u.flip(0), v) for u, v in zip(seen, unfollowed))
    _, _, rev, followed = tiny_fit(reverse=True, order=order, follow=plain)
    assert all(torch.equal(u.flip(0), v) for u, v in zip(seen, followed))
    assert rev[0].differing == 0
    with pytest.raises(RuntimeError, match="out of step"):
        tiny_fit(reverse=True, order=order, follow=plain, seed=12)


def test_recording_restores_what_it_patched():
    from clbudget.train import loop
    before = (torch.randperm, loop.Trainer.fit, loop.Pipeline.draw, loop.Pipeline.__call__,
              loop.Pipeline.apply)
    with draws_mod.recording(reverse=True):
        assert torch.randperm is not before[0]
    assert (torch.randperm, loop.Trainer.fit, loop.Pipeline.draw, loop.Pipeline.__call__,
            loop.Pipeline.apply) == before


@pytest.mark.pycil
def test_the_pil_replay_is_pycils_own_transforms_given_their_draws(pycil_checkout):
    """PyCIL's iCIFAR10 training transforms (its checkout's RandomCrop, RandomHorizontalFlip,
    ColorJitter objects) on 24 images, each with torch seeded: `augment_pil` with the draws
    torchvision makes in that order (RandomCrop.get_params: top, then left; the flip:
    rand(1) < p; ColorJitter.get_params: randperm(4), then the brightness factor) gives the
    same pixels."""
    import sys
    if pycil_checkout not in sys.path:
        sys.path.insert(0, pycil_checkout)
    from utils import data
    crop, flip, jitter = data.iCIFAR10.train_trsf[:3]
    images = np.random.default_rng(0).integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    flips = []
    for k, img in enumerate(images):
        torch.manual_seed(k)
        got = jitter(flip(crop(Image.fromarray(img))))
        torch.manual_seed(k)
        top, left = int(torch.randint(0, 9, (1,))), int(torch.randint(0, 9, (1,)))
        flips.append(bool(torch.rand(1) < flip.p))
        torch.randperm(4)
        factor = float(torch.empty(1).uniform_(*jitter.brightness))
        want = draws_mod.augment_pil(Image.fromarray(img), top, left, flips[-1], factor, pad=4)
        assert np.array_equal(np.asarray(got), np.asarray(want)), k
    assert any(flips) and not all(flips)
