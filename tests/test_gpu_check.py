"""bench.gpu_check, the prepared GPU session, run `--quick` on the CPU: every section produces
numbers in the JSON and the Markdown, one method's failure and one section's death leave the
rest, the extrapolation is the arithmetic its docstring says, and what it imports exists on a
bare PyTorch image."""
import json
import os
from pathlib import Path

import pytest

from bench import gpu_check
from bench.gpu_check import cifar100_icarl_s, extrapolate, markdown, poisons_cuda
from tests.helpers import REAL_CIFAR10, tiny_spec

ROOT = Path(__file__).resolve().parents[1]
# the real CIFAR-10 JPEGs (tests/helpers.py: $CLBUDGET_CIFAR10, the repo's ignored .data/, or
# shared/data/cifar10 beside the repository); a test that needs them fails where they are absent
DATA = REAL_CIFAR10
needs_data = pytest.mark.usefixtures("cifar10_tree")


ABSENT = ("pandas", "scipy", "matplotlib", "tqdm", "ray")
BLOCKER = f"""
import os, sys
from importlib.machinery import PathFinder

class Absent(PathFinder):
    # the GPU image has torch, numpy, PIL, torchvision: these are not installed there
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in {ABSENT!r}:
            with open(os.environ["GPU_CHECK_BLOCKED"], "a") as f:
                f.write(name + "\\n")
            return None
        return super().find_spec(name, path, target)

sys.meta_path[:] = [Absent if f is PathFinder else f for f in sys.meta_path]
"""


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One `--quick` run of every section; smoke on finetune, icarl and a name no method has.
    Its section processes run with pandas, scipy, matplotlib, tqdm and Ray made absent (a
    sitecustomize on PYTHONPATH), as on the bare PyTorch image of the GPU machine."""
    tmp = tmp_path_factory.mktemp("gpu")
    (tmp / "site").mkdir()
    (tmp / "site" / "sitecustomize.py").write_text(BLOCKER)
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "GPU_CHECK_BLOCKED")}
    os.environ["PYTHONPATH"] = os.pathsep.join([str(tmp / "site"), str(ROOT)])
    os.environ["GPU_CHECK_BLOCKED"] = str(tmp / "blocked.txt")
    try:
        results = gpu_check.main(["--quick", "--data-root", str(DATA), "--out", str(tmp / "out"),
                                  "--methods", "finetune,icarl,nosuchmethod"])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return tmp / "out", results, tmp / "blocked.txt"


@needs_data
def test_quick_run_writes_every_section_with_numbers(quick):
    out, results, blocked = quick
    assert "tqdm" in blocked.read_text().split()    # torch.hub tried it: the blocker was on
    saved = json.loads((out / "gpu_check.json").read_text())
    assert saved["sections"].keys() == set(gpu_check.SECTIONS) and saved == json.loads(
        json.dumps(results, default=str))
    sec = saved["sections"]
    assert saved["meta"]["quick"] and saved["meta"]["command"].startswith(
        "PYTHONPATH=. python -m bench.gpu_check --quick")

    smoke = {(r["method"], r["precision"]): r for r in sec["smoke"]["rows"]}
    for method in ("finetune", "icarl"):
        for precision in ("fp32", "bf16"):
            row = smoke[method, precision]
            assert row["status"] == "ok", row
            assert 0 <= row["last"] <= 1 and row["wall_s"] > 0
    assert smoke["nosuchmethod", "fp32"]["status"] == "error"          # recorded, not fatal
    assert "unknown method 'nosuchmethod'" in smoke["nosuchmethod", "fp32"]["error"]
    assert sec["smoke"]["status"] == "partial"

    tp = sec["throughput"]["rows"]
    assert {(r["batch_size"], r["precision_ab"]) for r in tp} == {
        (b, p) for b in gpu_check.QUICK.tp_batches for p in ("bf16", "fp32")}
    for r in tp:
        assert r["status"] == "ok", r
        assert r["ceiling_img_s"] > 0 and r["clbudget_img_s"] > 0 and r["conventional_img_s"] > 0
        assert r["b_over_a"] == pytest.approx(r["clbudget_img_s"] / r["ceiling_img_s"])
        assert r["b_over_c"] == pytest.approx(r["clbudget_img_s"] / r["conventional_img_s"])
        assert r["b_over_c_pil"] == pytest.approx(
            r["clbudget_img_s"] / r["conventional_pil_img_s"])

    real = sec["real"]["rows"]
    assert [r["method"] for r in real] == ["icarl", "replay"]
    for r in real:
        assert r["status"] == "ok", r
        assert len(r["task_wall_s"]) == 2 and all(len(w) == 5 for w in r["task_wall_s"])
        later = {"icarl": 170, "replay": 70}[r["method"]]     # pycil-icarl, pycil-replay
        assert r["recipe"]["first_epochs"] == 200 and r["recipe"]["later_epochs"] == later
        assert r["extrapolated_s"] > 0 and r["train_images"] == 10 * gpu_check.QUICK.real_per_class
    assert real[0]["cifar100_b0inc10_s"] > 0

    pack = sec["packing"]["rows"]
    assert [r["runs"] for r in pack] == [1, 2]
    for r in pack:
        assert r["status"] == "ok", r
        assert len(r["per_run_img_s"]) == r["runs"] and r["aggregate_img_s"] > 0
    assert pack[0]["ratio_to_one"] == 1.0
    assert pack[1]["ratio_to_one"] == pytest.approx(
        pack[1]["aggregate_img_s"] / pack[0]["aggregate_img_s"])

    prof = sec["profile"]["rows"]
    assert [r["what"] for r in prof] == ["(a) ceiling step", "(b) clbudget loop"]
    for r in prof:
        assert r["status"] == "ok", r
        assert r["ms_per_step"] > 0 and r["cpu_ops_per_step"] > 0
        assert r["gpu_busy"] is None and r["verdict"] == "n/a (no GPU)"

    comp = {(r["kind"], r["variant"]): r for r in sec["compile"]["rows"]}
    for key in [("step", "eager"), ("step", "channels_last"), ("loop", "eager"),
                ("step", "torch.compile (aot_eager)"), ("loop", "torch.compile (aot_eager)")]:
        assert comp[key]["status"] == "ok" and comp[key]["img_s"] > 0, comp[key]
    assert comp["step", "CUDA graph of the whole step"]["status"] == "n/a"   # CPU

    goals = {t["target"].split(",")[0]: t for t in saved["targets"]}
    assert goals["every method passes the smoke in fp32 and bf16"]["status"].startswith(
        "missed: nosuchmethod bf16, nosuchmethod fp32")
    for name in ["(b)/(a)", "(b)/(c)", "(b)/(c') PyCIL transforms", "2 packed runs / one run",
                 "iCaRL CIFAR-100 B0Inc10"]:
        assert goals[name]["value"] is not None
        assert goals[name]["status"] == "met" or goals[name]["status"].startswith("missed by")
    assert (goals["(b)/(a)"]["status"] == "met") == (tp[0]["b_over_a"] >= 0.8)

    # only results come back from the GPU machine: no checkpoints, caches or packed data
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.md",
                                                     "sections"]
    assert sorted(p.name for p in (out / "sections").iterdir()) == sorted(
        f"{name}.json" for name in gpu_check.SECTIONS)

    md = (out / "gpu_check.md").read_text()
    assert md == markdown(saved)
    for heading in gpu_check.SECTIONS:
        assert f"## {heading}" in md
    assert "| icarl | ok | ok |" in md and "| nosuchmethod | error: " in md
    assert "| 2 | " in md and "CIFAR-100 B0Inc10" in md and "## targets (issue 16)" in md


@needs_data
def test_a_section_killed_at_its_limit_leaves_the_others(tmp_path):
    out = tmp_path / "out"
    results = gpu_check.main(["--quick", "--data-root", str(DATA), "--out", str(out),
                              "--sections", "real,smoke", "--methods", "finetune",
                              "--budget", "real=0.5", "--grace-s", "0"])
    real, smoke = results["sections"]["real"], results["sections"]["smoke"]
    assert real["status"] == "error" and "killed at its time limit" in real["error"]
    assert [r["status"] for r in smoke["rows"]] == ["ok", "ok"]
    saved = json.loads((out / "gpu_check.json").read_text())
    assert saved["sections"]["smoke"]["rows"] == smoke["rows"]


@needs_data
def test_a_crashed_smoke_is_relaunched_for_the_runs_left(tmp_path, monkeypatch):
    """A smoke process that dies inside a run (a segfault: no exception, no row) is started
    again: the run it died in is recorded as an error, the others still run."""
    real, calls = gpu_check.run_section, []

    def first_one_crashes(name, args, *rest):
        calls.append(name)
        if len(calls) == 1:      # as the process leaves its file when killed in finetune fp32
            gpu_check.write_json(Path(args.out) / "sections" / "smoke.json",
                                 {"section": "smoke", "status": "running", "rows": [],
                                  "running": ["finetune", "fp32"]})
            return -11, False
        return real(name, args, *rest)

    monkeypatch.setattr(gpu_check, "run_section", first_one_crashes)
    results = gpu_check.main(["--quick", "--data-root", str(DATA), "--out", str(tmp_path),
                              "--sections", "smoke", "--methods", "finetune,icarl"])
    rows = {(r["method"], r["precision"]): r for r in results["sections"]["smoke"]["rows"]}
    assert calls == ["smoke", "smoke"] and len(rows) == 4
    assert rows["finetune", "fp32"]["status"] == "error"
    assert "died while this run was in progress" in rows["finetune", "fp32"]["error"]
    assert all(rows[k]["status"] == "ok" for k in rows if k != ("finetune", "fp32"))


def test_extrapolation_is_overhead_plus_reference_epochs_times_epoch_time():
    short = {"task_wall_s": [3.0, 5.0], "wall_s": 10.0}     # 1 epoch a task; 2 s evaluating
    long = {"task_wall_s": [5.0, 9.0], "wall_s": 16.0}      # 2 epochs a task
    ref = {"first_epochs": 10, "later_epochs": 20}
    fit = extrapolate(short, long, (1, 2), ref, task_images=[100, 200])
    assert fit["epoch_s"] == [2.0, 4.0] and fit["overhead_s"] == [1.0, 1.0]
    assert fit["eval_s"] == 2.0 and fit["s_per_image_epoch"] == [0.02, 0.02]
    assert fit["extrapolated_s"] == (1 + 10 * 2) + (1 + 20 * 4) + 2
    # CIFAR-100 B0Inc10: 10 x 5000 images, 2000 exemplars; test images 1000 * (1 + ... + 10)
    c100 = cifar100_icarl_s(fit, ref, evaluated_images=550)
    train = 10 * 5000 * 0.02 + 9 * 20 * 7000 * 0.02
    assert c100 == pytest.approx(train + 1 + 9 * 1 + 2 * 55000 / 550)


def test_pil_transform_equals_tensor_crop_flip_and_jitters_brightness():
    """(c') does PyCIL's per-sample PIL work; with the brightness jitter off it gives exactly
    (c)'s crop + flip + normalize for the same random draws."""
    import numpy as np
    import torch

    from bench.throughput import CpuAugmented, PilAugmented
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 3, 32, 32), dtype=np.uint8)
    y = np.arange(6)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    tensor_way, pil_way = CpuAugmented(x, y, mean, std), PilAugmented(x, y, mean, std, 0.0)
    flips = set()
    for i in range(6):
        np.random.seed(i)
        a, ya = tensor_way[i]
        np.random.seed(i)
        b, yb = pil_way[i]
        assert ya == yb == i and a.shape == b.shape == (3, 32, 32)
        assert torch.allclose(a, b, atol=1e-6)
        np.random.seed(i)
        np.random.randint(0, 9, 2)
        flips.add(bool(np.random.rand() < 0.5))
    assert flips == {True, False}                    # both branches were compared
    np.random.seed(0)
    plain, _ = tensor_way[0]
    np.random.seed(0)
    jittered, _ = PilAugmented(x, y, mean, std)[0]             # PyCIL's brightness 63/255
    assert not torch.allclose(jittered, plain)


def test_profile_verdict_tells_launch_sync_and_gpu_bound_apart():
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    from bench.gpu_check import profile_counts

    def prof(kernel_us, syncs=0, kernels=100):
        events = [SimpleNamespace(key="void conv_kernel", count=kernels,
                                  device_type=DeviceType.CUDA,
                                  self_device_time_total=kernel_us),
                  SimpleNamespace(key="cudaLaunchKernel", count=kernels,
                                  device_type=DeviceType.CPU, self_device_time_total=0),
                  SimpleNamespace(key="cudaStreamSynchronize", count=syncs,
                                  device_type=DeviceType.CPU, self_device_time_total=0)]
        return SimpleNamespace(key_averages=lambda: events)

    # 2 steps in 10 ms: the GPU busy 2 ms of them, no waits: Python cannot feed it
    launch = profile_counts(prof(2000), steps=2, wall_s=0.010)
    assert launch["gpu_busy"] == pytest.approx(0.2) and launch["verdict"] == "launch-bound"
    assert launch["kernels_per_step"] == 50 and launch["launches_per_step"] == 50
    assert launch["ms_per_step"] == pytest.approx(5.0)
    assert profile_counts(prof(2000, syncs=4), 2, 0.010)["verdict"] == "sync-bound"
    assert profile_counts(prof(9500), 2, 0.010)["verdict"] == "GPU-bound"


def test_a_lost_cuda_context_is_told_apart_from_an_ordinary_error():
    assert poisons_cuda(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert poisons_cuda(RuntimeError("... device-side assert triggered"))
    assert not poisons_cuda(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not poisons_cuda(ValueError("CUDA error"))


def test_precision_sets_the_loops_autocast():
    from clbudget.experiment.run import prepare
    assert prepare(tiny_spec("finetune", precision="bf16"))[1].trainer.amp
    assert not prepare(tiny_spec("finetune"))[1].trainer.amp            # the recipe's: fp32
    assert tiny_spec("finetune", precision="bf16").key != tiny_spec("finetune").key
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'fp16'"):
        prepare(tiny_spec("finetune", precision="fp16"))
