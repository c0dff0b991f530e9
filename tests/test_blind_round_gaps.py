"""Gaps the blind mutant round found (the mutants of origin blind-1, `python -m bench.mutants
--origin blind-1`; BENCHMARKS.md "Blind mutant round"): mutants written without reading the tests that the area's test files let
pass.  Each test here states the rule it guards and takes its expected value from the rule
(hand arithmetic, scipy), not from the code under test."""
from __future__ import annotations

import pytest
import torch
from scipy import stats as sps

from clbudget.analysis.stats import compare_seeds
from clbudget.budget.costs import COST_MODELS, StreamShape
from clbudget.methods.codecs import CodecMemory
from clbudget.streams.codecs import parse_codec
from clbudget.train.recipe_book import PYCIL_FIRST
from clbudget.train.recipe import Recipe


def test_clr_kernels_follow_kxk_convs_not_bn_channels_on_resnet18():
    """CLR adds a depthwise 3x3 kernel per output channel of each kxk conv.  ResNet-18's kxk
    convs: stem 64 + 4 x 64 + 4 x 128 + 4 x 256 + 4 x 512 = 3,904 channels; its BN layers
    have 896 more channels (the 1x1 downsample convs' BNs: 128 + 256 + 512), which get no
    kernel.  5 tasks x 9 weights x 4 bytes x 3,904 = 702,720 bytes."""
    st = StreamShape(5, (3, 32, 32), 10)
    items = {i.name: i for i in COST_MODELS["clr"].cost(st, "resnet18", 0, "strict").items}
    assert items["clr.kernels"].kind == "per_task"
    assert items["clr.kernels"].n_bytes == 5 * 9 * 4 * 3_904 == 702_720


def _feats(v):
    return v.flatten(1).float() + torch.arange(v[0].numel()).float()


def test_a_code_that_exactly_fills_the_buffer_is_kept():
    """4 PNG codes of a flat 3x8x8 image (77 bytes each) in a buffer of exactly 4 x 77 bytes:
    all 4 fit (used + len <= buffer), none is refused at the boundary."""
    codec = parse_codec("png")
    x = torch.full((4, 3, 8, 8), 7, dtype=torch.uint8)
    length = len(codec.encode(x[:1])[0])
    mem = CodecMemory(4, 4 * length, (3, 8, 8), torch.device("cpu"), codec)
    mem.rebalance(x, torch.tensor([0, 0, 1, 1]), 2, "herding", _feats)
    assert len(mem) == 4 and mem.used_bytes == mem.codes.numel() == 4 * length


def test_decoded_bytes_count_held_exemplars_not_capacity():
    """A class-balanced codec memory of 6 slots holding 4 exemplars (2 classes x 2 images,
    quota 3): replay decodes all 4 at once, 4 x 3 x 8 x 8 = 768 bytes (not 6 x 192)."""
    codec = parse_codec("png")
    x = torch.full((4, 3, 8, 8), 7, dtype=torch.uint8)
    mem = CodecMemory(6, 10_000, (3, 8, 8), torch.device("cpu"), codec)
    mem.rebalance(x, torch.tensor([0, 0, 1, 1]), 2, "herding", _feats)
    assert len(mem) == 4 and mem.decoded_bytes() == 4 * 3 * 8 * 8 == 768


def test_seeds_that_differ_give_welch_not_a_paired_test_on_a_subset():
    """a has seeds 0-2, b seeds 0-3: not the same seeds, so Welch's test over all values of
    both (scipy ttest_ind equal_var=False), b's seed 3 included."""
    a = {0: 1.0, 1: 2.0, 2: 4.0}
    b = {0: 1.5, 1: 2.5, 2: 3.0, 3: 9.0}
    got = compare_seeds(a, b)
    want = sps.ttest_ind(list(a.values()), list(b.values()), equal_var=False)
    assert got.test == "Welch's t-test"
    assert got.diff == pytest.approx(7 / 3 - 4.0)
    assert got.p_value == pytest.approx(want.pvalue, rel=1e-9)
    assert (got.n_a, got.n_b) == (3, 4)


def test_recipes_differing_only_in_normalisation_have_different_fingerprints():
    """The fingerprint is the identity of the training: normalising with PyCIL's constants or
    the training set's statistics is a different training."""
    phases = (("first", PYCIL_FIRST),)
    a = Recipe("a", "test", phases, normalization="pycil")
    b = Recipe("a", "test", phases, normalization="train-set")
    assert a.fingerprint != b.fingerprint
    assert Recipe("other name", "x", phases, normalization="pycil").fingerprint == a.fingerprint


def test_the_bytes_estimate_samples_the_whole_task_not_its_first_images():
    """512 images, the first 256 flat (PNG compresses them to a few dozen bytes), the last 256
    noise: a seeded sample of 256 out of 512 holds about half of each (hypergeometric: mean 128,
    sd 8), so the estimate lies near the mean of the two kinds, far from the flat images'
    bytes a first-256 estimate would give; two seeds draw two samples."""
    from clbudget.streams.codecs import estimate_bytes_per_image
    codec = parse_codec("png")
    g = torch.Generator().manual_seed(0)
    flat = torch.full((256, 3, 8, 8), 90, dtype=torch.uint8)
    noise = torch.randint(0, 256, (256, 3, 8, 8), generator=g, dtype=torch.uint8)
    x = torch.cat([flat, noise])
    b_flat = sum(len(c) for c in codec.encode(flat)) / 256
    b_noise = sum(len(c) for c in codec.encode(noise)) / 256
    assert b_noise > 3 * b_flat
    middle = (b_flat + b_noise) / 2
    est = [estimate_bytes_per_image(codec, x, seed) for seed in (0, 1)]
    for e in est:
        assert abs(e - middle) < 0.25 * (b_noise - b_flat), (e, b_flat, b_noise)
    assert est[0] != est[1]
