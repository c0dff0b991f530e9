"""The encoded reservoir (methods/codecs.py `CodecMemory.reservoir`, DER++ under a codec) and
BMC's encoded memory: never over the byte buffer, ledger == bytes held, every held slot is
the code of the image offered into it, the raw reservoir's slots when the bytes allow, random
evictions counted, `sample` only of held slots, runs and resume under a codec."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from clbudget.conformance import check_method
from clbudget.experiment.run import run_experiment
from clbudget.methods.codecs import CodecMemory, parse_codec
from clbudget.methods.memory import ExemplarMemory
from tests.helpers import held_bytes, tiny_spec

SHAPE = (3, 8, 8)
BUDGET = "1xconv2+60ex"   # binds on the tiny glyphs stream, raw and encoded (240 images)


def adversarial(n: int, seed: int = 0) -> torch.Tensor:
    """Noise (compresses badly) mixed with flat images (compress to a few bytes)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *SHAPE), generator=g, dtype=torch.uint8)
    flat = torch.rand(n, generator=g) < 0.6
    x[flat] = torch.randint(0, 256, (int(flat.sum()), 1, 1, 1), generator=g,
                            dtype=torch.uint8).expand(-1, *SHAPE)
    return x


def offer(mem, x, seed: int = 1, batch: int = 16, logits_dim: int = 0, check=None):
    """Offer x in batches with label = the image's index (its identity)."""
    g = torch.Generator().manual_seed(seed)
    for i in range(0, len(x), batch):
        ids = torch.arange(i, min(i + batch, len(x)))
        z = ids[:, None].float().expand(-1, logits_dim) if logits_dim else None
        mem.reservoir(x[ids], ids, g, z)
        if check:
            check(mem)
    return g


def check_layout(mem: CodecMemory) -> None:
    """Never over the buffer; held codes disjoint inside the written region; empty slots
    have length 0 and label -1; the counters agree with the slot arrays."""
    ln, off = mem.lengths.numpy().astype(np.int64), mem.offsets.numpy()
    held = np.flatnonzero(ln)
    assert mem.used_bytes == ln.sum() <= mem.end_bytes <= mem.codes.numel()
    order = held[np.argsort(off[held])]
    ends = off[order] + ln[order]
    assert (off[order][1:] >= ends[:-1]).all() and (len(order) == 0 or ends[-1] <= mem.end_bytes)
    assert (mem.labels.numpy()[ln == 0] == -1).all() and (mem.labels.numpy()[held] >= 0).all()
    assert len(mem) == len(held) and mem.n_empty == mem.count - len(held)


@pytest.mark.parametrize("codec", ["png", "jpeg:75", "down:4"])
def test_reservoir_never_exceeds_its_bytes_and_each_slot_holds_what_was_offered(codec):
    c = parse_codec(codec)
    x = adversarial(400)
    capacity, k = 40, 5
    buffer = int(0.5 * capacity * c.expected_bytes(x[:64]))      # too small for 40 of them
    mem = CodecMemory(capacity, buffer, SHAPE, torch.device("cpu"), c, logits_dim=k)
    offer(mem, x, logits_dim=k, check=check_layout)
    assert mem.evicted_for_bytes > 0 and 0 < len(mem) < capacity
    # the strict ledger: exactly the tensors held, all at full size from the start
    assert (sum(t.numel() * t.element_size() for _, _, t in mem.retained())
            == held_bytes(mem) == buffer + capacity * (8 + 4 + 2 + 4 * k))
    held = mem.held_slots()
    ids = mem.labels[held].long()
    codes = mem._codes(held)
    want = c.encode(x[ids])
    assert all(np.array_equal(a, b) for a, b in zip(codes, want))     # the offered image's code
    assert torch.equal(mem.logits[held], ids[:, None].float().expand(-1, k))
    got = mem.images_at(held)
    if codec == "png":                                                  # lossless: exact
        assert torch.equal(got, x[ids])
    else:
        assert torch.equal(got, c.roundtrip(x[ids]))
    dx, dy = mem.data()
    assert torch.equal(dx, got) and torch.equal(dy, ids)


def test_with_bytes_to_spare_the_codec_reservoir_picks_the_raw_slots():
    """Same generator seed, a raw-sized buffer: the same slot gets the same example, and the
    generator is left in the same state (no extra draws), so DER++'s replay draws agree."""
    x = adversarial(300)
    raw = ExemplarMemory(30, SHAPE, torch.device("cpu"))
    mem = CodecMemory(30, 30 * 3 * 8 * 8 * 2, SHAPE, torch.device("cpu"), parse_codec("png"))
    g_raw, g_mem = offer(raw, x), offer(mem, x)
    assert torch.equal(raw.labels, mem.labels) and (raw.count, raw.offered) == (mem.count, mem.offered)
    assert mem.evicted_for_bytes == 0 and len(mem) == len(raw) == 30
    assert torch.equal(g_raw.get_state(), g_mem.get_state())
    assert torch.equal(raw.sample(8, g_raw), mem.sample(8, g_mem))
    assert torch.equal(mem.images_at(torch.arange(30)), raw.images)


def test_an_image_that_does_not_fit_evicts_held_slots_uniformly_at_random():
    """20 flat images fill slots 0..19 nearly to the buffer's end; a noise image (fill phase,
    slot 20, no draw) needs room: random held slots are evicted until it fits, counted."""
    c = parse_codec("png")
    flat = torch.full((20, *SHAPE), 7, dtype=torch.uint8)
    noise = torch.randint(0, 256, (1, *SHAPE), generator=torch.Generator().manual_seed(0),
                          dtype=torch.uint8)
    flat_len, noise_len = len(c.encode(flat[:1])[0]), len(c.encode(noise)[0])
    buffer = 20 * flat_len + flat_len // 2
    need = -(-(noise_len - (buffer - 20 * flat_len)) // flat_len)     # evictions to fit
    victims = []
    for seed in range(60):
        mem = CodecMemory(21, buffer, SHAPE, torch.device("cpu"), c)
        g = torch.Generator().manual_seed(seed)
        mem.reservoir(flat, torch.arange(20), g)
        mem.reservoir(noise, torch.tensor([20]), g)
        check_layout(mem)
        empty = (mem.lengths[:20] == 0).nonzero().flatten().tolist()
        assert mem.evicted_for_bytes == len(empty) == need and mem.n_empty == need
        assert np.array_equal(mem._codes([20])[0], c.encode(noise)[0])
        victims += empty
        for _ in range(5):                                  # never an empty slot, no repeats
            i = mem.sample(32, g)
            assert len(i) == len(mem) == 21 - need and len(set(i.tolist())) == len(i)
            assert (mem.lengths[i] > 0).all()
    counts = np.bincount(victims, minlength=20)
    assert (counts > 0).sum() >= 15 and counts.max() <= 0.2 * len(victims)
    # a code larger than the whole buffer: its slot stays empty, nothing else is evicted
    mem = CodecMemory(3, noise_len - 1, SHAPE, torch.device("cpu"), c)
    mem.reservoir(torch.cat([flat[:2], noise]), torch.arange(3), torch.Generator())
    assert len(mem) == 2 and mem.evicted_for_bytes == 1 and mem.lengths[2] == 0
    assert mem.labels.tolist() == [0, 1, -1]


@pytest.mark.parametrize("method,codec", [("derpp", "jpeg:75"), ("bmc", "down:8")])
def test_derpp_and_bmc_run_under_a_codec_with_more_exemplars_than_raw(method, codec):
    rows = {c: run_experiment(tiny_spec(method, budget=BUDGET, codec=c))
            for c in ("raw", codec)}
    row = rows[codec]
    assert row["exemplars_held"] > rows["raw"]["exemplars_held"] > 0
    # check_budget ran after every task; the held ledger is the allocation's prediction
    assert (row["ledger"]["total_bytes"] == row["predicted_ledger"]["total_bytes"]
            <= row["budget_bytes"])
    assert 0 < row["codec_used_bytes"] <= row["codec_buffer_bytes"]
    assert row["decoded_transient_bytes"] > 0
    if method == "bmc":   # its memory cost is the encoded memory's ledger bytes
        names = {i["name"] for i in row["ledger"]["items"]}
        assert {"memory.codes", "memory.offsets", "memory.features"} <= names
        mem_bytes = sum(i["n_bytes"] for i in row["ledger"]["items"]
                        if i["name"].startswith("memory."))
        assert row["cost_figures"]["memory_bytes"] == mem_bytes


def test_derpp_resume_with_an_encoded_reservoir_equals_uninterrupted():
    """png on glyphs at this budget evicts for bytes (asserted): the eviction draws are part
    of the checkpointed run (ledger == held, within budget, deterministic, resume)."""
    spec = tiny_spec("derpp", budget=BUDGET, codec="png")
    report = check_method("derpp", spec)
    assert report["passed"], report["checks"]
    row = run_experiment(spec)
    assert row["codec_evicted_for_bytes"] > 0 and row["codec_used_bytes"] <= row["codec_buffer_bytes"]


def test_the_device_gather_of_codes_equals_slicing_the_buffer():
    """An accelerator's memory reads its codes by one gather (`_gathered_codes`); on the CPU
    it slices: the same bytes for the same slots, in the order asked."""
    mem = CodecMemory(40, 3000, SHAPE, torch.device("cpu"), parse_codec("png"))
    offer(mem, adversarial(200))
    pos = mem.held_slots()[torch.randperm(len(mem), generator=torch.Generator().manual_seed(0))]
    a, b = mem._codes(pos), mem._gathered_codes(pos)
    assert len(a) == len(b) == len(mem) and all(np.array_equal(u, v) for u, v in zip(a, b))
    assert mem._gathered_codes([]) == []
