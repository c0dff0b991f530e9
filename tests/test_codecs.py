"""Exemplar codecs and stored precision as budget choices (methods/codecs.py, budget/storage.py):
ledger == bytes held, never over budget with real encoded sizes, decoded exemplars replay,
resume == uninterrupted.  Frozen networks stored lower: tests/test_stored.py."""
from __future__ import annotations

import dataclasses
import glob

import numpy as np
import pytest
import torch

from clbudget.budget.costs import StreamShape
from clbudget.budget.storage import allocate_stored, expand_storage
from clbudget.conformance import check_method
from clbudget.experiment.run import prepare, run_experiment, to_device
from clbudget.methods.codecs import CodecMemory, parse_codec
from clbudget.methods.memory import herding
from tests.helpers import cli, held_bytes, real_cifar10, tiny_spec

BUDGET = "2xconv2+120ex"       # binds on the tiny glyphs stream (40 images per class)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.float() - b.float()) ** 2).mean().item()
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def cifar_images(n: int = 48) -> torch.Tensor:
    from PIL import Image
    files = sorted(glob.glob(f"{real_cifar10()}/train/*/*"))[::997][:n]
    assert len(files) == n, f"{len(files)} images in the real CIFAR-10 tree, expected {n}"
    a = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    return torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()


def test_parse_codec_names_and_errors():
    assert [parse_codec(t).spec for t in ("raw", "PNG", "jpeg:75", "down:16")] == \
        ["raw", "png", "jpeg:75", "down:16"]
    for bad, hint in (("jpeg:0", "jpeg:75"), ("jpeg", "jpeg:75"), ("down:x", "down:16"),
                      ("jpg:75", "nearest: jpeg")):
        with pytest.raises(ValueError, match=hint):
            parse_codec(bad)
    with pytest.raises(ValueError, match="down:S with S <= 16"):
        parse_codec("down:32").check((1, 16, 16))


@pytest.mark.parametrize("method,codec,store", [("replay", "jpeg:75", "fp32"),
                                                ("icarl", "down:8", "fp16"),
                                                ("icarl", "png", "bf16"),
                                                ("wa", "jpeg:50", "fp16"),
                                                ("der", "down:8", "fp32"),
                                                ("derpp", "jpeg:75", "fp32"),
                                                ("bmc", "down:8", "fp32")])
def test_encoded_ledger_equals_bytes_held_and_the_allocation(method, codec, store):
    spec = tiny_spec(method, budget="4xconv2+120ex" if method == "der" else BUDGET,
                     codec=codec, store_dtype=store)
    stream, ctx, m = prepare(spec)
    a = ctx.allocation
    assert (a.codec, a.store_dtype) == (codec, store) and isinstance(m.memory, CodecMemory)
    for task in to_device(stream, ctx.device):
        m.begin_task(task)
        m.learn(task)
        m.end_task(task)
        ledger = m.ledger("strict")
        assert ledger.total_bytes == held_bytes(m) <= a.budget_bytes
        if task.index == stream.num_tasks - 1:     # the prediction (after the last task), by item
            def items(led):   # BMC names its network "base", the cost model "net" (raw alike)
                return {i.name.replace("base.", "net.", 1) if method == "bmc" else i.name:
                        (i.kind, i.n_bytes) for i in led.items}
            assert items(ledger) == items(a.ledger)
        assert 0 < m.memory.used_bytes <= m.memory.codes.numel()
        assert len(m.memory) <= a.n_exemplars
    # the count was bought at the encoded size measured on the first task's images
    from clbudget.methods.codecs import estimate_bytes_per_image
    first = torch.from_numpy(np.ascontiguousarray(stream.tasks[0].train.x))
    assert a.bytes_per_image == estimate_bytes_per_image(parse_codec(codec), first, spec.seed)
    mean_held = m.memory.used_bytes / len(m.memory)
    assert abs(mean_held - a.bytes_per_image) < 0.2 * a.bytes_per_image
    if store != "fp32":
        from clbudget.nets.stored import stored_dtype_name
        assert stored_dtype_name(m.old_net) == store
        assert ledger.bytes_of("old_model") < m.ledger("strict").bytes_of("params") * 0.6


def test_codec_and_store_dtype_buy_more_exemplars_at_the_same_bytes():
    s = StreamShape(3, (3, 32, 32), 6)
    raw = allocate_stored("icarl", 2_000_000, s, backbone="conv2")
    fp16 = allocate_stored("icarl", 2_000_000, s, backbone="conv2", store_dtype="fp16")
    down = allocate_stored("icarl", 2_000_000, s, backbone="conv2", codec="down:16")
    jpeg = allocate_stored("icarl", 2_000_000, s, backbone="conv2", codec="jpeg:75",
                           bytes_per_image=900.0)
    assert raw.n_exemplars < fp16.n_exemplars and raw.n_exemplars < jpeg.n_exemplars
    assert down.n_exemplars == int((2_000_000 - down.ledger.total_bytes
                                    + down.exemplar_buffer_bytes
                                    + 14 * down.n_exemplars) // (768 + 14))
    for a in (raw, fp16, down, jpeg):
        assert a.total_bytes <= 2_000_000
    with pytest.raises(ValueError, match="keeps no exemplars"):
        allocate_stored("lwf", 2_000_000, s, backbone="conv2", codec="down:16")
    for method in ("derpp", "bmc"):       # the reservoir and the feature-carrying memory
        assert (allocate_stored(method, 2_000_000, s, backbone="conv2", codec="down:16").n_exemplars
                > allocate_stored(method, 2_000_000, s, backbone="conv2").n_exemplars)
    with pytest.raises(ValueError, match="keeps no frozen network"):
        allocate_stored("replay", 2_000_000, s, backbone="conv2", store_dtype="fp16")


def _memory_of(capacity, buffer_bytes, codec, shape=(3, 32, 32)):
    return CodecMemory(capacity, buffer_bytes, shape, torch.device("cpu"), parse_codec(codec))


def test_adversarial_images_never_exceed_the_buffer_and_classes_keep_herding_prefixes():
    """The buffer is sized from smooth images; noise compresses badly: fewer exemplars are
    held, never more bytes, and each class keeps a prefix of its herding order."""
    g = torch.Generator().manual_seed(0)
    smooth = torch.full((8, 3, 32, 32), 128, dtype=torch.uint8)
    codec = parse_codec("jpeg:75")
    per = codec.expected_bytes(smooth)
    mem = _memory_of(24, int(24 * per), "jpeg:75")
    x = torch.randint(0, 256, (60, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.arange(60) % 3

    def feats(v):
        return v.flatten(1).float()
    mem.rebalance(x, y, 3, "herding", feats)
    assert 0 < len(mem) < 24 and mem.used_bytes <= mem.codes.numel()
    held = mem.labels[:len(mem)].long()
    for c in range(3):
        pos = (y == c).nonzero().flatten()
        f = feats(x[pos]); f = f / f.norm(dim=1, keepdim=True)
        order = pos[herding(f, 8)]
        k = int((held == c).sum())
        want = codec.encode(x[order[:k]])
        got = mem._codes((held == c).nonzero().flatten().tolist())
        assert k > 0 and all(np.array_equal(a, b) for a, b in zip(want, got))
    before = {c: mem._codes((held == c).nonzero().flatten().tolist()) for c in range(3)}
    mem.rebalance(x[:0], y[:0], 6, "herding", feats)     # more classes seen: old prefixes kept
    held2 = mem.labels[:len(mem)].long()
    for c in range(3):
        got = mem._codes((held2 == c).nonzero().flatten().tolist())
        assert got and all(np.array_equal(a, b) for a, b in zip(before[c], got))


def test_greedy_pack_stops_a_class_at_its_first_misfit():
    """Buffer 100 B: rank 0 takes a (40) and d (30); rank 1's b (70) and e (50) do not fit,
    so both classes stop there even though c (10) would fit: prefixes, never over."""
    mem = _memory_of(10, 100, "png")
    a, b, c, d, e = (np.full(k, i, dtype=np.uint8) for i, k in enumerate((40, 70, 10, 30, 50)))
    mem._pack([(0, [a, b, c], []), (1, [d, e], [])])
    assert len(mem) == 2 and mem.used_bytes == 70
    got = mem._codes(range(2))
    assert mem.labels[:2].tolist() == [0, 1]
    assert np.array_equal(got[0], a) and np.array_equal(got[1], d)


def test_down_upsamples_bilinearly():
    """A smooth ramp survives down:16 almost exactly with bilinear upsampling (nearest would
    give 2x2 blocks: about 36 dB)."""
    r = torch.arange(32).float() * 8
    x = (r[None, :] + r[:, None] * 0.5).clamp(0, 255).round().to(torch.uint8)
    x = x.expand(2, 3, 32, 32).contiguous()
    assert psnr(parse_codec("down:16").roundtrip(x), x) > 45.0


def test_decoded_exemplars_are_what_replay_trains_on():
    spec = tiny_spec("replay", budget=BUDGET, codec="down:8")
    stream, ctx, m = prepare(spec)
    tasks = to_device(stream, ctx.device)
    m.begin_task(tasks[0]); m.learn(tasks[0]); m.end_task(tasks[0])
    m.begin_task(tasks[1])
    x, y = m.training_data(tasks[1])
    mx, my = x[len(tasks[1].x):], y[len(tasks[1].y):]
    held = m.memory.labels[:len(m.memory)].long()
    assert torch.equal(my, held) and mx.shape[1:] == tasks[0].x.shape[1:]
    # each replayed image is the down:8 round trip of a task-0 image
    rt = parse_codec("down:8").roundtrip(tasks[0].x)
    match = (rt[None] == mx[:, None]).flatten(2).all(2)            # (held, task images)
    assert match.any(1).all()


def test_jpeg90_decodes_close_to_raw_on_real_cifar10():
    x = cifar_images()
    assert psnr(parse_codec("jpeg:90").roundtrip(x), x) > 35.0
    assert psnr(parse_codec("png").roundtrip(x), x) == float("inf")
    down = parse_codec("down:16").roundtrip(x)
    assert down.shape == x.shape and 18.0 < psnr(down, x) < 35.0


def test_resume_with_a_compressed_memory_equals_uninterrupted():
    report = check_method("icarl", tiny_spec("icarl", budget=BUDGET, codec="jpeg:50",
                                             store_dtype="fp16"))
    assert report["passed"], report["checks"]
    row = run_experiment(tiny_spec("replay", budget=BUDGET, codec="jpeg:50"))
    assert row["codec"] == "jpeg:50" and row["exemplars_held"] > 0
    assert row["codec_used_bytes"] <= row["codec_buffer_bytes"]


def test_default_choices_keep_run_keys_and_sweeps_expand_where_they_apply():
    spec = tiny_spec("icarl")
    d = spec.to_dict()
    assert d["codec"] == "raw" and spec.key != dataclasses.replace(spec, codec="down:8").key
    cells = [tiny_spec(m) for m in ("replay", "icarl", "lwf", "finetune")]
    out = expand_storage(cells, "raw,jpeg:75,down:8", "fp32,fp16")
    got = sorted((c.method, c.codec, c.store_dtype) for c in out)
    assert [g for g in got if g[0] == "finetune"] == [("finetune", "raw", "fp32")]
    assert [g for g in got if g[0] == "lwf"] == [("lwf", "raw", "fp16"), ("lwf", "raw", "fp32")]
    assert len([g for g in got if g[0] == "icarl"]) == 6
    assert len([g for g in got if g[0] == "replay"]) == 3


def test_budget_allocate_shows_what_each_codec_buys(capsys):
    code, out, _ = cli(capsys, "budget", "allocate", "--dataset", "cifar10", "--methods",
                       "icarl", "--init", "0", "--inc", "2", "--num-classes", "6", "--budget",
                       "2MB", "--backbone", "conv2", "--codec", "raw,down:16", "--store-dtype",
                       "fp32,fp16", "--json")
    import json
    allocs = json.loads(out)["allocations"]
    n = {(a.get("codec", "raw"), a.get("store_dtype", "fp32")): a["n_exemplars"] for a in allocs}
    assert code == 0 and len(n) == 4
    assert n[("raw", "fp32")] < n[("raw", "fp16")] < n[("down:16", "fp16")]
    assert n[("raw", "fp32")] < n[("down:16", "fp32")]
    code, _, err = cli(capsys, "budget", "allocate", "--dataset", "cifar10", "--methods",
                       "icarl", "--init", "0", "--inc", "2", "--budget", "2MB",
                       "--codec", "jpg:75")
    assert code == 2 and "nearest: jpeg" in err


def test_report_separates_codecs_and_shows_exemplar_counts(tmp_path):
    from clbudget.analysis.report import write_report
    from clbudget.analysis.summary import cell_summary
    rows = [run_experiment(tiny_spec("replay", budget="1xconv2+20ex", codec=c))
            for c in ("raw", "down:8")]
    labels = sorted(c["label"] for c in cell_summary(rows))
    assert labels == ["Replay down:8", "Replay raw"]          # two series, not one
    out = write_report(rows, tmp_path)
    md = (tmp_path / "codecs.md").read_text()
    held = {r["spec"]["codec"]: r["exemplars_held"] for r in rows}
    assert held["down:8"] > held["raw"]                       # 4x smaller: more exemplars held
    for codec, n in held.items():
        line = next(ln for ln in md.splitlines() if f"| replay | {codec} |" in ln)
        assert f"| {n} |" in line
    assert (tmp_path / "figures" / "codecs.png").stat().st_size > 0
    assert "Storage choices" in (tmp_path / "summary.md").read_text()
    assert "codecs_png" in out["files"]


def test_storage_choices_are_compared_with_raw_fp32_paired_by_seed():
    import copy
    from clbudget.analysis.codecs import codec_cells, render_codec_markdown
    base = run_experiment(tiny_spec("replay", budget="1xconv2+20ex"))
    rows = []
    # down:8 beats raw by exactly 2 pp on every seed while the seeds themselves vary by 10 pp:
    # paired, the CI is [2, 2]; unpaired (Welch), it would straddle 0
    for seed, acc in enumerate((0.30, 0.40, 0.35)):
        for codec, plus in (("raw", 0.0), ("down:8", 0.02)):
            r = copy.deepcopy(base)
            r["spec"] = {**r["spec"], "seed": seed, "codec": codec}
            r["accuracy"] = {**r["accuracy"], "last": acc + plus}
            rows.append(r)
    cells = {c["codec"]: c for c in codec_cells(rows)}
    d = cells["down:8"]["vs_raw_fp32"]
    assert d["test"] == "paired t-test" and d["significant"]
    assert d["diff"] == pytest.approx(2.0) and d["ci_low"] == pytest.approx(2.0)
    assert cells["raw"]["vs_raw_fp32"] is None
    line = next(ln for ln in render_codec_markdown(list(cells.values())).splitlines()
                if "| down:8 |" in ln)
    assert "+2.0 [2.0, 2.0] !" in line
