"""One prepared GPU run: does clbudget run on CUDA, and how fast, measured side by side.

Six sections, each in its own subprocess with its own time budget (a CUDA error that
poisons one process, or a hang, costs only that section), results written to JSON after
every step and rendered as Markdown:

  smoke       every registered method through a 3-task CIFAR-10 stream in fp32 and bf16,
              stopped after task 0 (checkpoint written) and resumed; one line per method.
  throughput  bench.throughput's three ways for resnet32 at batch 128 and 256: (a) ceiling,
              (b) clbudget's loop in bf16 and fp32, (c) a DataLoader loop with CPU
              augmentation (tensor ops, and (c') PyCIL's PIL transforms) and 8 workers,
              fp32; b/a, b/c, b/c'.
  real        iCaRL (resnet32) and replay (resnet18) on CIFAR-10 B2Inc2, all 50,000 images,
              run at two cut epoch counts: per task, time = overhead + epochs x epoch time,
              extrapolated to the method's reference recipe (read from its recipe) and to a
              10-task CIFAR-100-sized iCaRL run (5,000 images a task, 2,000 exemplars).
  packing     1, 2, 4, 8 concurrent training processes on the one GPU (bench.pack, as
              `--executor ray --gpus-per-run 0.25` places cells): aggregate images/s.
  profile     torch.profiler over (a) and (b): kernels, launches, syncs per step, GPU busy
              fraction -> launch-bound, sync-bound or GPU-bound (why a target is missed).
  compile     one fixed-shape training step (resnet32, bf16) eager vs cudnn.benchmark,
              channels_last, torch.compile and a captured CUDA graph; clbudget's loop eager
              vs with the network compiled.

    PYTHONPATH=. python -m bench.gpu_check --out $OUT/gpu            # H200: <= 8 minutes
    PYTHONPATH=. python -m bench.gpu_check --quick --out /tmp/gpu    # CPU, tiny, a minute

Data: --data-root (default .data/cifar10, ignored by git: copy ../shared/data/cifar10 there).
Imports only torch, numpy, PIL and clbudget's training code (no analysis, no tqdm, no Ray).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

SECTIONS = ("smoke", "throughput", "real", "packing", "profile", "compile")
BUDGET_S = {"smoke": 110, "throughput": 75, "real": 110, "packing": 85, "profile": 30,
            "compile": 70}
GRACE_S = 20.0        # a section is killed at its budget + this (--grace-s) ...
TOTAL_S = 480.0       # ... or when the whole check has run this long (--total-s)
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Sizes:
    """Everything that differs between the GPU run and `--quick` (CPU, tiny)."""
    smoke_backbone: str | None = None          # None: each method's allocation picks
    smoke_budget: str = "4xresnet32+300ex"
    smoke_per_class: int = 100
    smoke_test_per_class: int = 50
    smoke_batch: int = 64
    tp_backbone: str = "resnet32"
    tp_per_class: int = 5000                   # all 50,000 CIFAR-10 training images
    tp_conventional_per_class: int = 2000      # (c) is slow; its rate needs fewer images
    tp_batches: tuple[int, ...] = (128, 256)
    tp_steps: int = 50
    tp_workers: int = 8                        # PyCIL's num_workers
    real_per_class: int | None = None          # None: all
    real_test_per_class: int | None = None
    real_epochs: tuple[int, int] = (1, 2)
    real_runs: tuple[tuple[str, str, str], ...] = (
        ("icarl", "resnet32", "2xresnet32+2000ex"), ("replay", "resnet18", "1xresnet18+2000ex"))
    real_precisions: tuple[str, ...] = ("bf16", "fp32")   # icarl bf16, icarl fp32, replay ...
    pack_counts: tuple[int, ...] = (1, 2, 4, 8)
    pack_per_class: int = 1000
    pack_backbone: str = "resnet32"
    pack_duration_s: float = 8.0
    pack_chunk: int = 2048
    pack_batch: int = 128
    compile_backbone: str = "resnet32"
    compile_batch: int = 128
    compile_steps: int = 50
    compile_backend: str = "inductor"
    compile_loop_per_class: int = 1024        # 10,240 images = 80 batches: one shape to compile


QUICK = Sizes(smoke_backbone="conv2", smoke_budget="5xconv2+300ex", smoke_per_class=12,
              smoke_test_per_class=4, smoke_batch=16, tp_backbone="conv2", tp_per_class=8,
              tp_conventional_per_class=8, tp_batches=(16, 32), tp_steps=3, tp_workers=1,
              real_per_class=16, real_test_per_class=4, real_precisions=("fp32",),
              real_runs=(("icarl", "conv2", "2xconv2+40ex"), ("replay", "conv2", "1xconv2+40ex")),
              pack_counts=(1, 2), pack_per_class=8, pack_backbone="conv2", pack_duration_s=1.0,
              pack_chunk=32, pack_batch=16, compile_backbone="conv2", compile_batch=32,
              compile_steps=3,
              compile_backend="aot_eager", compile_loop_per_class=16)


# ------------------------------------------------------------------------------ recording

class Recorder:
    """One section's results, rewritten atomically after every step."""

    def __init__(self, path: Path, section: str, t0: float):
        self.path, self.t0 = path, t0
        self.data = {"section": section, "status": "running", "rows": []}
        if path.exists():   # a relaunched section keeps the rows of the run before it
            try:
                before = json.loads(path.read_text())
                self.data["rows"] = before.get("rows", [])
                self.data["died_in"] = before.get("running")
            except (OSError, ValueError):
                pass
        self.save()

    def log(self, message: str) -> None:
        print(f"[{time.time() - self.t0:7.1f}s] {self.data['section']}: {message}", flush=True)

    def add(self, row: dict) -> dict:
        self.data["rows"].append(row)
        self.save()
        return row

    def save(self) -> None:
        write_json(self.path, self.data)


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def error_fields(e: BaseException) -> dict:
    return {"status": "error", "error": f"{type(e).__name__}: {e}"[:600],
            "traceback": traceback.format_exc(limit=6)[-2500:]}


def poisons_cuda(e: BaseException) -> bool:
    """A CUDA error after which this process's context is unusable (illegal access, assert)."""
    text = str(e)
    return isinstance(e, RuntimeError) and ("CUDA error" in text or "cuDNN error" in text
                                            or "device-side assert" in text)


class OverBudget:
    def __init__(self, budget_s: float):
        self.start, self.budget_s = time.perf_counter(), budget_s

    def __call__(self) -> bool:
        return time.perf_counter() - self.start > self.budget_s


def sync(device) -> None:
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------ a. smoke

class Stop(Exception):
    """Raised after task 0's checkpoint: stands for a killed run."""


def section_smoke(args, sizes: Sizes, rec: Recorder) -> None:
    from clbudget.experiment.checkpoint import Checkpoints
    from clbudget.experiment.run import RunSpec, load, run_experiment
    from clbudget.methods.registry import load_all
    methods = args.methods.split(",") if args.methods else sorted(load_all())
    died_in = rec.data.pop("died_in", None)
    if died_in:   # the process before this one crashed inside this run: record it, go on
        rec.add({"method": died_in[0], "precision": died_in[1], "status": "error",
                 "error": "the process died while this run was in progress (a crash, not an "
                          "exception: see the log)", "wall_s": 0.0})
    done = {(r["method"], r["precision"]) for r in rec.data["rows"]}
    base = RunSpec(method="finetune", dataset="imagefolder", data_root=args.data_root,
                   budget=sizes.smoke_budget, init=0, inc=2, num_classes=6,
                   max_per_class=sizes.smoke_per_class,
                   max_test_per_class=sizes.smoke_test_per_class, epochs=1,
                   batch_size=sizes.smoke_batch, device=args.device,
                   backbone=sizes.smoke_backbone, cache_dir=args.cache_dir)
    stream = load(base)
    over = OverBudget(args.budget_s)
    ckpt_root = Path(tempfile.mkdtemp(prefix="smoke-", dir=args.work))

    def stop_after_first(index, _row):
        if index == 0:
            raise Stop

    for method in methods:
        for precision in ("fp32", "bf16"):
            if (method, precision) in done:
                continue
            row = {"method": method, "precision": precision}
            if over():
                rec.add({**row, "status": "skipped", "error": "section time budget spent"})
                continue
            t0 = time.perf_counter()
            rec.data["running"] = [method, precision]
            rec.save()
            try:
                spec = dataclasses.replace(base, method=method, precision=precision)
                checkpoints = Checkpoints(ckpt_root / f"{method}-{precision}")
                try:
                    run_experiment(spec, stream=stream, checkpoints=checkpoints,
                                   on_task=stop_after_first)
                    raise AssertionError("the run did not stop after task 0")
                except Stop:
                    pass
                result = run_experiment(spec, stream=stream, checkpoints=checkpoints)
                acc = result["accuracy"]
                last = acc["last"] if acc["last"] is not None else acc["task_aware"]["last"]
                if result["resumed_tasks"] != 1 or result["num_tasks"] != 3:
                    raise AssertionError(f"resumed {result['resumed_tasks']} of "
                                         f"{result['num_tasks']} tasks, expected 1 of 3")
                if not all(math.isfinite(v) for v in result["losses"][-1]) or \
                        not math.isfinite(last):
                    raise AssertionError(f"non-finite result: last {last}, "
                                         f"losses {result['losses'][-1]}")
                row.update(status="ok", last=last, task_agnostic=acc["last"] is not None,
                           backbone=result["allocation"].get("backbone"),
                           peak_memory_bytes=result["peak_memory_bytes"],
                           device_name=result["environment"]["device_name"])
            except Exception as e:  # noqa: BLE001 - one method's failure must not lose the rest
                row.update(error_fields(e))
                if poisons_cuda(e):
                    row["wall_s"] = time.perf_counter() - t0
                    rec.data["running"] = None
                    rec.add(row)
                    rec.log(f"{method} {precision} error (CUDA context lost; relaunching): "
                            f"{row['error']}")
                    raise SystemExit(3)
            row["wall_s"] = time.perf_counter() - t0
            rec.data["running"] = None
            rec.add(row)
            rec.log(f"{method} {precision} {row['status']} ({row['wall_s']:.1f} s)"
                    + (f": {row['error']}" if row["status"] == "error" else
                       f", last {100 * row['last']:.1f}%"))


# ------------------------------------------------------------------------------ b. throughput

def section_throughput(args, sizes: Sizes, rec: Recorder) -> None:
    import numpy as np
    import torch

    from bench.throughput import ceiling, clbudget_loop, conventional, fresh_net, load_images
    from clbudget.experiment.env import environment
    from clbudget.train.loop import Pipeline, Trainer
    from clbudget.experiment.run import resolve_device
    device = resolve_device(args.device)
    rec.data["environment"] = {**environment(device),   # what fp32 means on this device
                               "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                               "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                               "cudnn_benchmark": torch.backends.cudnn.benchmark}
    x_np, y_np = load_images(args.data_root, sizes.tp_per_class, args.cache_dir)
    rec.log(f"{len(x_np)} images loaded")
    pick = np.random.default_rng(0).permutation(len(x_np))[:10 * sizes.tp_conventional_per_class]
    xc, yc = x_np[np.sort(pick)], y_np[np.sort(pick)]
    pipeline = Pipeline.from_images(x_np)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    shape = x_np.shape[1:]
    over = OverBudget(args.budget_s)
    for batch_size in sizes.tp_batches:
        rows = []
        for precision in ("bf16", "fp32"):
            row = {"backbone": sizes.tp_backbone, "batch_size": batch_size,
                   "precision_ab": precision, "images_b": len(x_np)}
            if over():
                rows.append(rec.add({**row, "status": "skipped",
                                     "error": "section time budget spent"}))
                continue
            try:
                amp = precision == "bf16"
                torch.manual_seed(0)
                net = fresh_net(sizes.tp_backbone, shape, device)
                opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
                xb = pipeline(x[:batch_size].to(device))
                yb = y[:batch_size].to(device).long()
                a = ceiling(net, xb, yb, opt, device, amp, sizes.tp_steps, warmup=3)
                trainer = Trainer(device, pipeline, torch.Generator().manual_seed(0), amp=amp)
                b = clbudget_loop(fresh_net(sizes.tp_backbone, shape, device), x, y, trainer,
                                  batch_size)
                row.update(status="ok", ceiling_img_s=a, clbudget_img_s=b, b_over_a=b / a)
            except Exception as e:  # noqa: BLE001
                row.update(error_fields(e))
            rows.append(rec.add(row))
            rec.log(f"batch {batch_size} {precision}: " + (
                f"ceiling {row['ceiling_img_s']:.0f}, loop {row['clbudget_img_s']:.0f} img/s, "
                f"b/a {row['b_over_a']:.2f}" if row["status"] == "ok" else row["error"]))
        for transform, key, ratio in (("torch", "conventional", "b_over_c"),
                                      ("pil", "conventional_pil", "b_over_c_pil")):
            if over():
                continue
            try:
                c = conventional(fresh_net(sizes.tp_backbone, shape, device), xc, yc, pipeline,
                                 device, batch_size, sizes.tp_workers, transform=transform)
                for row in rows:
                    row.update({f"{key}_img_s": c, "images_c": len(xc),
                                "workers_c": sizes.tp_workers})
                    if row["status"] == "ok":
                        row[ratio] = row["clbudget_img_s"] / c
                rec.log(f"batch {batch_size} conventional ({transform} transforms) fp32, "
                        f"{sizes.tp_workers} workers: {c:.0f} img/s")
            except Exception as e:  # noqa: BLE001
                for row in rows:
                    row[f"{key}_error"] = error_fields(e)["error"]
                rec.log(f"batch {batch_size} conventional ({transform}): {type(e).__name__}: {e}")
        rec.save()


# ------------------------------------------------------------------------------ d. real runs

def reference_epochs(method: str) -> dict:
    """Epochs of the method's reference recipe (train/recipe_book.py): its first and
    later phases."""
    from clbudget.train.recipes import resolve
    from clbudget.methods.registry import method_class
    recipe = resolve(method_class(method))
    first, later = recipe.phase("first"), recipe.phase("later")
    return {"recipe": f"{recipe.name} ({recipe.source})", "first_epochs": first.epochs,
            "later_epochs": later.epochs, "batch_size": first.batch_size}


def extrapolate(short: dict, long: dict, epochs: tuple[int, int], ref: dict,
                task_images: list[int]) -> dict:
    """From two runs at epochs E1 < E2: per task, epoch_s = (w2 - w1) / (E2 - E1) and
    overhead_s = w1 - E1 * epoch_s; the reference recipe's time is the sum over tasks of
    overhead + its epochs x epoch_s, plus the short run's evaluation time."""
    e1, e2 = epochs
    w1, w2 = short["task_wall_s"], long["task_wall_s"]
    epoch_s = [max(0.0, (b - a) / (e2 - e1)) for a, b in zip(w1, w2)]
    overhead_s = [max(0.0, a - e1 * e) for a, e in zip(w1, epoch_s)]
    ref_epochs = [ref["first_epochs"]] + [ref["later_epochs"]] * (len(w1) - 1)
    eval_s = max(0.0, short["wall_s"] - sum(w1))
    train_s = [o + n * e for o, n, e in zip(overhead_s, ref_epochs, epoch_s)]
    per_image = [e / n for e, n in zip(epoch_s, task_images)]
    return {"epoch_s": epoch_s, "overhead_s": overhead_s, "eval_s": eval_s,
            "task_images": task_images, "s_per_image_epoch": per_image,
            "reference_epochs": ref_epochs, "extrapolated_s": sum(train_s) + eval_s}


def cifar100_icarl_s(fit: dict, ref: dict, evaluated_images: int, tasks: int = 10,
                     per_task: int = 5000, memory: int = 2000) -> float:
    """A CIFAR-100 B0Inc10 run of the reference recipe (PyCIL: 2,000 exemplars) at the
    measured cost per trained image (first task alone, later tasks with the teacher), the
    mean later-task overhead, and evaluation scaled by test images seen (55,000)."""
    first, later = fit["s_per_image_epoch"][0], fit["s_per_image_epoch"][1:]
    later_cost = sum(later) / len(later)
    train_s = (ref["first_epochs"] * per_task * first
               + (tasks - 1) * ref["later_epochs"] * (per_task + memory) * later_cost)
    overhead_s = fit["overhead_s"][0] + (tasks - 1) * sum(fit["overhead_s"][1:]) / len(later)
    test_images = sum(1000 * (t + 1) for t in range(tasks))
    return train_s + overhead_s + fit["eval_s"] * test_images / max(1, evaluated_images)


def section_real(args, sizes: Sizes, rec: Recorder) -> None:
    from clbudget.experiment.run import RunSpec, load, run_experiment
    over = OverBudget(args.budget_s)
    stream = None
    for method, backbone, budget in sizes.real_runs:
        for precision in sizes.real_precisions:
            row = {"method": method, "backbone": backbone, "precision": precision,
                   "budget": budget, "stream": "CIFAR-10 B2Inc2", "epochs_run": sizes.real_epochs}
            if over():
                rec.add({**row, "status": "skipped", "error": "section time budget spent"})
                continue
            try:
                ref = reference_epochs(method)
                base = RunSpec(method=method, dataset="imagefolder", data_root=args.data_root,
                               budget=budget, init=2, inc=2, device=args.device,
                               backbone=backbone, precision=precision,
                               max_per_class=sizes.real_per_class,
                               max_test_per_class=sizes.real_test_per_class,
                               cache_dir=args.cache_dir)
                stream = load(base) if stream is None else stream
                # untimed warm-up on a small stream: CUDA context, kernels and library
                # handles are loaded before the first measured task, not inside it
                warm = dataclasses.replace(base, epochs=1, max_per_class=50,
                                           max_test_per_class=10)
                run_experiment(warm, stream=load(warm))
                runs = []
                for epochs in sizes.real_epochs:
                    runs.append(run_experiment(dataclasses.replace(base, epochs=epochs),
                                               stream=stream))
                    rec.log(f"{method} {backbone} {precision} {epochs} epoch(s)/task: "
                            f"tasks {', '.join(f'{s:.1f}' for s in runs[-1]['task_wall_s'])} s")
                memory = runs[0]["allocation"]["n_exemplars"]
                train = [len(t.train.y) for t in stream.tasks]
                seen_images = [train[0]] + [n + min(memory, sum(train[:i]))
                                            for i, n in enumerate(train) if i]
                tests = [len(t.test.y) for t in stream.tasks]
                fit = extrapolate(runs[0], runs[1], sizes.real_epochs, ref, seen_images)
                row.update(status="ok", recipe=ref, n_exemplars=memory,
                           train_images=sum(train), wall_s=[r["wall_s"] for r in runs],
                           task_wall_s=[r["task_wall_s"] for r in runs],
                           last=[r["accuracy"]["last"] for r in runs], **fit)
                if method == "icarl":
                    row["cifar100_b0inc10_s"] = cifar100_icarl_s(
                        fit, ref, sum(sum(tests[:t + 1]) for t in range(len(tests))))
            except Exception as e:  # noqa: BLE001
                row.update(error_fields(e))
            rec.add(row)
            rec.log(f"{method} {precision}: " + (
                f"reference recipe extrapolated to {row['extrapolated_s'] / 60:.1f} min"
                + (f"; CIFAR-100 B0Inc10 {row['cifar100_b0inc10_s'] / 60:.1f} min"
                   if "cifar100_b0inc10_s" in row else "")
                if row["status"] == "ok" else row["error"]))


# ------------------------------------------------------------------------------ c. packing

def section_packing(args, sizes: Sizes, rec: Recorder) -> None:
    from bench.pack import packing
    from bench.throughput import load_images
    x, y = load_images(args.data_root, sizes.pack_per_class, args.cache_dir)
    work = Path(tempfile.mkdtemp(prefix="pack-", dir=args.work))
    threads = args.threads if args.device == "cpu" else 0
    per_count = 30 + 2 * sizes.pack_duration_s      # start-up, warm-up, training, exit
    for row in packing(x, y, sizes.pack_counts, work, log=rec.log,
                       budget_s=args.budget_s - sizes.pack_duration_s - 10, device=args.device,
                       backbone=sizes.pack_backbone, batch_size=sizes.pack_batch,
                       precision="bf16" if args.device.startswith("cuda") else "fp32",
                       duration_s=sizes.pack_duration_s, chunk=sizes.pack_chunk,
                       timeout_s=per_count, threads=threads):
        rec.add({**row, "backbone": sizes.pack_backbone, "images": len(x)})


# ------------------------------------------------------------------------------ e. compile

def graphed_ceiling(net, x, y, opt, device, amp, steps, warmup=3) -> float:
    """(a) with the whole step (forward, backward, SGD) captured once as a CUDA graph and
    replayed: no kernel launch overhead from Python (PyTorch's whole-network capture)."""
    import torch
    import torch.nn.functional as F

    def step():   # autocast's weight cache must be off inside a captured graph
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp, cache_enabled=False):
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):            # warm-up: momentum buffers and grads exist
        for _ in range(warmup):
            opt.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        step()
    graph.replay()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        graph.replay()
    sync(device)
    return steps * len(x) / (time.perf_counter() - t0)


def section_compile(args, sizes: Sizes, rec: Recorder) -> None:
    import torch

    from bench.throughput import ceiling, clbudget_loop, fresh_net, load_images
    from clbudget.train.loop import Pipeline, Trainer
    from clbudget.experiment.run import resolve_device
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    amp = cuda           # the fixed-shape bf16 step of the targets; fp32 on CPU
    x_np, y_np = load_images(args.data_root, sizes.compile_loop_per_class, args.cache_dir)
    pipeline = Pipeline.from_images(x_np)
    shape, bs = x_np.shape[1:], sizes.compile_batch
    over = OverBudget(args.budget_s)
    base = {}

    def batch(fmt=torch.contiguous_format):
        xb = pipeline(torch.from_numpy(x_np[:bs]).to(device)).contiguous(memory_format=fmt)
        return xb, torch.from_numpy(y_np[:bs]).to(device).long()

    def resident(fmt=torch.contiguous_format, wrap=None, graphed=False):
        torch.manual_seed(0)
        net = fresh_net(sizes.compile_backbone, shape, device, fmt)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        model = wrap(net) if wrap else net
        xb, yb = batch(fmt)
        t0 = time.perf_counter()
        if graphed:
            return graphed_ceiling(model, xb, yb, opt, device, amp, sizes.compile_steps), None
        ceiling(model, xb, yb, opt, device, amp, steps=1, warmup=0)     # compiles, if it does
        first_s = time.perf_counter() - t0
        return ceiling(model, xb, yb, opt, device, amp, sizes.compile_steps, warmup=2), first_s

    def loop(wrap=None):
        torch.manual_seed(0)
        net = fresh_net(sizes.compile_backbone, shape, device)
        model = wrap(net) if wrap else net
        trainer = Trainer(device, pipeline, torch.Generator().manual_seed(0), amp=amp)
        return clbudget_loop(model, torch.from_numpy(x_np), torch.from_numpy(y_np), trainer,
                             bs), None

    def compiled(net):
        return torch.compile(net, backend=sizes.compile_backend)

    def benchmark_on():
        torch.backends.cudnn.benchmark = True

    variants = [   # the slow compiles last: a section killed at its limit keeps the rest
        ("step", "eager", lambda: resident(), True),
        ("step", "eager + cudnn.benchmark", lambda: (benchmark_on(), resident())[1], cuda),
        ("step", "channels_last", lambda: resident(torch.channels_last), True),
        ("step", "CUDA graph of the whole step", lambda: resident(graphed=True), cuda),
        ("loop", "eager", lambda: loop(), True),
        ("step", f"torch.compile ({sizes.compile_backend})", lambda: resident(wrap=compiled), True),
        ("loop", f"torch.compile ({sizes.compile_backend})", lambda: loop(compiled), True),
    ]
    for kind, name, measure, applies in variants:
        row = {"kind": kind, "variant": name, "backbone": sizes.compile_backbone,
               "batch_size": bs, "precision": "bf16" if amp else "fp32"}
        if not applies:
            rec.add({**row, "status": "n/a", "error": f"needs CUDA (device {device.type})"})
            continue
        if over():
            rec.add({**row, "status": "skipped", "error": "section time budget spent"})
            continue
        try:
            img_s, first_s = measure()
            row.update(status="ok", img_s=img_s, first_step_s=first_s)
            if name == "eager":
                base[kind] = img_s
            if kind in base:
                row["vs_eager"] = img_s / base[kind]
        except Exception as e:  # noqa: BLE001 - e.g. no C compiler for inductor
            row.update(error_fields(e))
        finally:
            if cuda:
                torch.backends.cudnn.benchmark = False
        rec.add(row)
        rec.log(f"{kind} {name}: " + (f"{row['img_s']:.0f} img/s"
                                      + (f", x{row['vs_eager']:.2f} of eager"
                                         if "vs_eager" in row else "")
                                      if row["status"] == "ok" else row["error"]))


# ------------------------------------------------------------------------------ profile

SYNC_CALLS = ("cudaDeviceSynchronize", "cudaStreamSynchronize", "cudaEventSynchronize",
              "cudaMemcpy", "cudaStreamWaitEvent")
LAUNCH_CALLS = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx")


def profile_counts(prof, steps: int, wall_s: float) -> dict:
    """Per training step: kernels run, launch calls, host-device syncs, and the fraction of
    the wall time the GPU was busy (None on CPU).  GPU busy well under 1 with no syncs is
    launch-bound (Python and the dispatcher cannot feed the GPU); syncs >= 1 a step is
    sync-bound; busy near 1 is GPU-bound."""
    from torch.autograd import DeviceType
    events = prof.key_averages()

    def device_us(e):
        return getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)

    kernels = [e for e in events if e.device_type == DeviceType.CUDA]
    busy_s = sum(device_us(e) for e in kernels) / 1e6
    calls = {e.key: e.count for e in events}
    out = {"steps": steps, "wall_s": wall_s, "ms_per_step": 1000 * wall_s / steps,
           "kernels_per_step": sum(e.count for e in kernels) / steps,
           "launches_per_step": sum(calls.get(k, 0) for k in LAUNCH_CALLS) / steps,
           "syncs_per_step": sum(calls.get(k, 0) for k in SYNC_CALLS) / steps,
           "copies_per_step": calls.get("cudaMemcpyAsync", 0) / steps,
           "cpu_ops_per_step": sum(e.count for e in events
                                   if e.device_type == DeviceType.CPU) / steps,
           "gpu_busy": busy_s / wall_s if kernels else None}
    busy = out["gpu_busy"]
    out["verdict"] = ("n/a (no GPU)" if busy is None
                      else "sync-bound" if out["syncs_per_step"] >= 1
                      else "GPU-bound" if busy >= 0.85 else "launch-bound")
    return out


def section_profile(args, sizes: Sizes, rec: Recorder) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    import torch.nn.functional as F

    from bench.throughput import ceiling, fresh_net, load_images
    from clbudget.train.loop import LoopConfig, Pipeline, Trainer
    from clbudget.experiment.run import resolve_device
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    amp = cuda
    steps, bs = max(3, sizes.compile_steps // 2), sizes.compile_batch
    x_np, y_np = load_images(args.data_root, sizes.compile_loop_per_class, args.cache_dir)
    x_np, y_np = x_np[:steps * bs], y_np[:steps * bs]
    pipeline = Pipeline.from_images(x_np)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    x, y = torch.from_numpy(x_np).to(device), torch.from_numpy(y_np).to(device).long()

    def ceiling_steps():
        net = fresh_net(sizes.compile_backbone, x_np.shape[1:], device)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        xb, yb = pipeline(x[:bs]), y[:bs]
        return lambda: ceiling(net, xb, yb, opt, device, amp, steps, warmup=0)

    def loop_steps():
        net = fresh_net(sizes.compile_backbone, x_np.shape[1:], device)
        trainer = Trainer(device, pipeline, torch.Generator().manual_seed(0), amp=amp)
        cfg = LoopConfig(epochs=1, batch_size=bs, lr=0.01, schedule="constant")
        step = lambda xb, yb, idx: F.cross_entropy(net(xb), yb)   # noqa: E731
        return lambda: trainer.fit(net.parameters(), x, y, step, cfg, modules=[net])

    for name, make in (("(a) ceiling step", ceiling_steps), ("(b) clbudget loop", loop_steps)):
        row = {"what": name, "backbone": sizes.compile_backbone, "batch_size": bs,
               "precision": "bf16" if amp else "fp32"}
        try:
            run = make()
            run()                                # warm-up: kernels, handles, allocator
            sync(device)
            with profile(activities=activities) as prof:
                t0 = time.perf_counter()
                run()
                sync(device)
                wall_s = time.perf_counter() - t0
            row.update(status="ok", **profile_counts(prof, steps, wall_s))
        except Exception as e:  # noqa: BLE001 - e.g. CUPTI unavailable
            row.update(error_fields(e))
        rec.add(row)
        rec.log(f"{name}: " + (f"{row['ms_per_step']:.2f} ms/step, {row['kernels_per_step']:.0f} "
                               f"kernels, {row['syncs_per_step']:.2f} syncs a step, GPU busy "
                               f"{_num(row['gpu_busy'], '{:.0%}')}: {row['verdict']}"
                               if row["status"] == "ok" else row["error"]))


SECTION_FUNCS = {"smoke": section_smoke, "throughput": section_throughput,
                 "real": section_real, "packing": section_packing, "profile": section_profile,
                 "compile": section_compile}


# ------------------------------------------------------------------------------ Markdown

def _pct(v):
    return "" if v is None else f"{100 * v:.1f}%"


def _num(v, fmt="{:,.0f}"):
    return "" if v is None else fmt.format(v)


def targets(results: dict) -> list[dict]:
    """Issue 16's targets, each met or missed by how much, from the sections' rows."""
    sec = {k: v.get("rows", []) for k, v in results["sections"].items()}
    out = []

    def add(name, value, goal, higher=True, fmt="{:.2f}"):
        if value is None:
            out.append({"target": name, "value": None, "goal": goal, "status": "not measured"})
            return
        met = value >= goal if higher else value < goal
        out.append({"target": name, "value": value, "goal": goal,
                    "status": "met" if met else f"missed by {fmt.format(abs(goal - value))}"})

    if "smoke" in sec:
        rows = sec["smoke"]
        bad = sorted({f"{r['method']} {r['precision']}" for r in rows if r["status"] != "ok"})
        out.append({"target": "every method passes the smoke in fp32 and bf16",
                    "value": f"{len(rows) - len(bad)}/{len(rows)} ok", "goal": "all",
                    "status": "met" if rows and not bad else "missed: " + ", ".join(bad)[:300]})
    tp = [r for r in sec.get("throughput", []) if r.get("precision_ab") == "bf16"]
    row = next((r for r in tp if r["batch_size"] == 128), tp[0] if tp else {})
    bs = row.get("batch_size", 128)
    add(f"(b)/(a), {row.get('backbone', 'resnet32')} batch {bs} bf16", row.get("b_over_a"), 0.8)
    add(f"(b)/(c), batch {bs}", row.get("b_over_c"), 10.0)
    add(f"(b)/(c') PyCIL transforms, batch {bs}", row.get("b_over_c_pil"), 10.0)
    pack = {r["runs"]: r for r in sec.get("packing", []) if r.get("status") == "ok"}
    most = 4 if 4 in pack else max(pack, default=None)
    if most is not None and most > 1:
        add(f"{most} packed runs / one run, aggregate images/s", pack[most]["ratio_to_one"],
            3.0 * most / 4)
    for r in sec.get("real", []):
        if r["method"] == "icarl":
            value = r.get("cifar100_b0inc10_s")
            add(f"iCaRL CIFAR-100 B0Inc10, reference recipe, {r['precision']}, extrapolated s",
                value, 300.0, higher=False, fmt="{:.0f} s")
    return out


def _note(r):
    return "" if r["status"] == "ok" else f"{r['status']}: {r.get('error', '')[:100]}"


def markdown(results: dict) -> str:
    meta = results["meta"]
    env = next((s.get("environment") for s in results["sections"].values()
                if s.get("environment")), {}) or {}
    out = [f"# clbudget GPU check, {meta['date']}", "",
           f"Device: {env.get('device_name', meta['device'])}; "
           f"torch {env.get('torch', meta['torch'])}; "
           f"git {env.get('git_revision', '?')}; {meta['cpus']} CPU cores; "
           f"{'quick (CPU-sized)' if meta['quick'] else 'full'} sizes.", "",
           f"Command: `{meta['command']}`", ""]
    sections = results["sections"]
    out += ["## targets (issue 16)", "", "| target | measured | goal | |", "|---|---|---|---|"]
    for t in targets(results):
        value = t["value"] if isinstance(t["value"], str) or t["value"] is None \
            else f"{t['value']:.2f}"
        out.append(f"| {t['target']} | {value if value is not None else ''} | {t['goal']} | "
                   f"{t['status']} |")
    out.append("")
    for name in SECTIONS:
        if name not in sections:
            continue
        sec = sections[name]
        rows = sec.get("rows", [])
        out += [f"## {name}", "", f"status: {sec.get('status')}, {sec.get('wall_s', 0):.0f} s"
                + (f"; {sec['error']}" if sec.get("error") else ""), ""]
        if name == "smoke":
            out += ["| method | fp32 | bf16 | last (fp32) | backbone |", "|---|---|---|---|---|"]
            by = {}
            for r in rows:
                by.setdefault(r["method"], {})[r["precision"]] = r

            def cell(r):
                if r is None:
                    return ""
                return f"error: {r['error'][:120]}" if r["status"] == "error" else r["status"]

            for m, per in by.items():
                f32 = per.get("fp32") or {}
                out.append(f"| {m} | {cell(per.get('fp32'))} | {cell(per.get('bf16'))} | "
                           f"{_pct(f32.get('last'))} | {f32.get('backbone') or ''} |")
        elif name == "throughput":
            out += ["| batch | precision (a, b) | (a) ceiling img/s | (b) clbudget img/s | "
                    "(c) conventional fp32, tensor crop/flip, img/s | b/a | b/c | "
                    "(c') PyCIL PIL transforms fp32 img/s | b/c' |",
                    "|---|---|---|---|---|---|---|---|---|"]
            for r in rows:
                out.append(f"| {r['batch_size']} | {r['precision_ab']} | "
                           f"{_num(r.get('ceiling_img_s'))} | {_num(r.get('clbudget_img_s'))} | "
                           f"{_num(r.get('conventional_img_s'))} | "
                           f"{_num(r.get('b_over_a'), '{:.2f}')} | "
                           f"{_num(r.get('b_over_c'), '{:.2f}')} | "
                           f"{_num(r.get('conventional_pil_img_s'))} | "
                           f"{_num(r.get('b_over_c_pil'), '{:.2f}')} |"
                           + (f" {r['error'][:100]}" if r.get("error") else ""))
        elif name == "real":
            out += ["| method | backbone | precision | exemplars | epoch s per task (measured) | "
                    "overhead s per task | reference recipe | extrapolated | "
                    "CIFAR-100 B0Inc10 extrapolated |", "|---|---|---|---|---|---|---|---|---|"]
            for r in rows:
                if r["status"] != "ok":
                    out.append(f"| {r['method']} | {r['backbone']} | {r['precision']} | "
                               f"{r['status']}: {r.get('error', '')[:120]} | | | | | |")
                    continue
                ref = r["recipe"]
                c100 = r.get("cifar100_b0inc10_s")
                out.append(
                    f"| {r['method']} | {r['backbone']} | {r['precision']} | {r['n_exemplars']} | "
                    f"{', '.join(f'{e:.2f}' for e in r['epoch_s'])} | "
                    f"{', '.join(f'{o:.1f}' for o in r['overhead_s'])} | "
                    f"{ref['recipe']}: {ref['first_epochs']}/{ref['later_epochs']} epochs | "
                    f"{r['extrapolated_s'] / 60:.1f} min | "
                    f"{'' if c100 is None else f'{c100 / 60:.1f} min'} |")
        elif name == "packing":
            out += ["| runs | aggregate img/s | per run img/s | x one run | span aggregate img/s |",
                    "|---|---|---|---|---|"]
            for r in rows:
                if r["status"] != "ok":
                    out.append(f"| {r['runs']} | {r['status']}: {r.get('error', '')[:150]} | | | |")
                    continue
                out.append(f"| {r['runs']} | {_num(r['aggregate_img_s'])} | "
                           f"{', '.join(f'{v:,.0f}' for v in r['per_run_img_s'])} | "
                           f"{r['ratio_to_one']:.2f} | {_num(r['span_aggregate_img_s'])} |")
        elif name == "profile":
            out += ["| what | ms/step | kernels/step | launches/step | syncs/step | "
                    "H2D/D2H async copies/step | CPU ops/step | GPU busy | verdict |",
                    "|---|---|---|---|---|---|---|---|---|"]
            for r in rows:
                if r["status"] != "ok":
                    out.append(f"| {r['what']} | {_note(r)} | | | | | | | |")
                    continue
                out.append(f"| {r['what']} | {r['ms_per_step']:.2f} | "
                           f"{r['kernels_per_step']:.0f} | {r['launches_per_step']:.0f} | "
                           f"{r['syncs_per_step']:.2f} | {r['copies_per_step']:.1f} | "
                           f"{r['cpu_ops_per_step']:.0f} | {_num(r['gpu_busy'], '{:.0%}')} | "
                           f"{r['verdict']} |")
        elif name == "compile":
            out += ["| what | variant | img/s | x eager | first step s | note |",
                    "|---|---|---|---|---|---|"]
            for r in rows:
                out.append(f"| {r['kind']} | {r['variant']} | {_num(r.get('img_s'))} | "
                           f"{_num(r.get('vs_eager'), '{:.2f}')} | "
                           f"{_num(r.get('first_step_s'), '{:.1f}')} | "
                           f"{_note(r)} |")
        out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------------------ driver

def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true",
                   help="CPU-sized everything (tiny data, conv2, 1-2 packed runs); --device cpu")
    p.add_argument("--data-root", default=".data/cifar10")
    p.add_argument("--out", default=".data/gpu_check", help="folder for gpu_check.json/.md")
    p.add_argument("--cache-dir", default=None,
                   help="decoded-image cache (default: $CLBUDGET_CACHE, else .data/cache in "
                        "the repository: never under --out, whose files travel back)")
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--budget", default="",
                   help="seconds per section, e.g. smoke=90,compile=45 (defaults: "
                        + ",".join(f"{k}={v}" for k, v in BUDGET_S.items()) + ")")
    p.add_argument("--methods", default="", help="smoke: these methods (default: every one)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per process (default: torch's; --quick: 1, as "
                        "tiny work on a shared CPU runs fastest on one)")
    p.add_argument("--grace-s", type=float, default=GRACE_S,
                   help="a section still running this long after its budget is killed")
    p.add_argument("--total-s", type=float, default=TOTAL_S,
                   help="no section runs past this many seconds from the start")
    p.add_argument("--section-worker", default="", help=argparse.SUPPRESS)
    p.add_argument("--budget-s", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--t0", type=float, default=0.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick and args.device == "cuda":
        args.device = "cpu"
    unknown = [s for s in args.sections.split(",") if s not in SECTIONS]
    if unknown:
        p.error(f"--sections: unknown {unknown}; choose from {','.join(SECTIONS)}")
    if args.threads is None:
        args.threads = 1 if args.quick else 0
    args.cache_dir = args.cache_dir or os.environ.get("CLBUDGET_CACHE") or str(
        REPO / ".data" / "cache")
    return args


def budgets(spec: str) -> dict:
    out = dict(BUDGET_S)
    for item in filter(None, spec.split(",")):
        name, _, value = item.partition("=")
        if name not in BUDGET_S:
            raise SystemExit(f"--budget: unknown section {name!r}; sections: {', '.join(SECTIONS)}")
        out[name] = float(value)
    return out


def section_main(args) -> int:
    out = Path(args.out)
    # checkpoints and packed runs' data: a temporary folder, never under --out
    args.work = tempfile.mkdtemp(prefix="gpu_check-")
    name = args.section_worker
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    rec = Recorder(out / "sections" / f"{name}.json", name, args.t0 or time.time())
    t0 = time.perf_counter()
    try:
        SECTION_FUNCS[name](args, QUICK if args.quick else Sizes(), rec)
        bad = [r for r in rec.data["rows"] if r.get("status") == "error"]
        rec.data["status"] = "partial" if bad else "ok"
        code = 0
    except SystemExit as e:
        rec.data.update(status="error", error="CUDA context lost; relaunch for the rest")
        code = int(e.code or 3)
    except Exception as e:  # noqa: BLE001 - the section's own failure, recorded
        rec.data.update(error_fields(e))
        rec.log(f"failed: {rec.data['error']}")
        code = 1
    rec.data["wall_s"] = time.perf_counter() - t0
    rec.save()
    shutil.rmtree(args.work, ignore_errors=True)
    return code


def run_section(name: str, args, budget_s: float, t0: float, extra=(),
                kill_s: float | None = None) -> tuple[int, bool]:
    """The section in its own process; killed after kill_s (default budget + grace)."""
    cmd = [sys.executable, "-m", "bench.gpu_check", "--section-worker", name,
           "--device", args.device, "--data-root", args.data_root, "--out", args.out,
           "--cache-dir", args.cache_dir, "--budget-s", str(budget_s), "--t0", str(t0),
           "--threads", str(args.threads),
           *(["--quick"] if args.quick else []), *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, env=env)
    try:
        return proc.wait(timeout=budget_s + args.grace_s if kill_s is None else kill_s), False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -9, True


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    if args.section_worker:
        raise SystemExit(section_main(args))
    import torch
    t0 = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    limits = budgets(args.budget)
    results = {"meta": {"command": "PYTHONPATH=. python -m bench.gpu_check " + " ".join(argv),
                        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                        "device": args.device, "torch": torch.__version__,
                        "cpus": os.cpu_count(), "quick": args.quick, "budgets_s": limits},
               "sections": {}}

    def save():
        write_json(out / "gpu_check.json", results)
        (out / "gpu_check.md").write_text(markdown(results))

    save()
    for name in args.sections.split(","):
        path = out / "sections" / f"{name}.json"
        path.unlink(missing_ok=True)
        started = time.time()
        extra = ["--methods", args.methods] if args.methods and name == "smoke" else []
        left_s = args.total_s - (started - t0)
        if left_s < 5:
            results["sections"][name] = {"section": name, "rows": [], "status": "skipped",
                                         "error": f"--total-s {args.total_s:g} spent"}
            save()
            continue
        budget_s = max(1.0, min(limits[name], left_s - args.grace_s))
        kill_s = min(left_s, budget_s + args.grace_s)
        code, killed = run_section(name, args, budget_s, t0, extra, kill_s)
        # smoke: a lost CUDA context (exit 3) or a crash (a signal) ends its process; go on
        # with the methods not yet run
        while name == "smoke" and (code == 3 or (code < 0 and not killed)) and \
                time.time() - started < budget_s:
            spent = time.time() - started
            code, killed = run_section(name, args, budget_s - spent, t0, extra, kill_s - spent)
        try:
            sec = json.loads(path.read_text())
        except (OSError, ValueError):
            sec = {"section": name, "rows": [], "status": "error",
                   "error": "the section wrote no results"}
        if killed:
            sec.update(status="error", error=f"killed at its time limit ({budget_s:.0f} s "
                                             f"budget + {args.grace_s:g} s)")
        elif code and sec.get("status") in ("running", "ok"):
            sec.update(status="error", error=f"the section process exited with status {code}")
        sec["wall_s"] = time.time() - started
        sec["exit_code"] = code
        results["sections"][name] = sec
        results["targets"] = targets(results)
        save()
        print(f"[{time.time() - t0:7.1f}s] {name}: {sec['status']}", flush=True)
    summary(results)
    print(f"[{time.time() - t0:7.1f}s] wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")
    return results


def summary(results: dict) -> None:
    smoke = results["sections"].get("smoke")
    if smoke:
        by = {}
        for r in smoke["rows"]:
            by.setdefault(r["method"], []).append(r)
        for method, rows in by.items():
            bad = [f"{r['precision']}: {r.get('error', r['status'])}" for r in rows
                   if r["status"] != "ok"]
            print(f"  {method:<10} " + ("ok (fp32, bf16)" if not bad and len(rows) == 2
                                        else "error  " + "; ".join(bad)[:300]))


if __name__ == "__main__":
    main()
