"""Packing: N clbudget training runs at once on one device, as separate processes.

`--executor ray --gpus-per-run 0.25` puts four cells on one GPU as four worker processes
that share it by time-slicing (no MPS).  This does the same without Ray: N subprocesses
(`python -m bench.pack --worker ...`), each a resident-data `Trainer.fit` loop on the same
images.  Every worker warms up, reports ready, waits for one common start time, trains for
`duration_s`, and writes its own images/s.  Reported: per-run images/s, the aggregate (sum
over runs, and total images over the span from the first start to the last end) and its
ratio to one run.

    python -m bench.pack --device cuda --runs 1,2,4,8          # data: .data/cifar10
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

READY, GO, RESULT = "ready-{}.json", "go.json", "result-{}.json"


def worker(argv=None) -> dict:
    """One packed run: train until the common deadline, write result-<index>.json."""
    p = argparse.ArgumentParser()
    p.add_argument("--worker", action="store_true")
    p.add_argument("--data", required=True, help="folder holding x.npy (uint8) and y.npy")
    p.add_argument("--dir", required=True)
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--backbone", default="resnet32")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--chunk", type=int, default=2048, help="images per fit call")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    p.add_argument("--wait-s", type=float, default=300.0)
    args = p.parse_args(argv)
    import torch
    import torch.nn.functional as F

    from clbudget.train.loop import LoopConfig, Pipeline, Trainer
    from clbudget.experiment.run import resolve_device
    from clbudget.nets.classifier import Classifier
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.dir)
    device = resolve_device(args.device)
    x_np = np.load(Path(args.data) / "x.npy")
    y_np = np.load(Path(args.data) / "y.npy")
    torch.manual_seed(args.index)
    x = torch.from_numpy(x_np).to(device)
    y = torch.from_numpy(y_np).to(device).long()
    classes = int(y_np.max()) + 1
    net = Classifier.create(args.backbone, x_np.shape[1:], classes).to(device)
    trainer = Trainer(device, Pipeline.from_images(x_np), torch.Generator().manual_seed(args.index),
                      amp=args.precision == "bf16")
    cfg = LoopConfig(epochs=1, batch_size=args.batch_size, lr=0.01, schedule="constant")
    step = lambda xb, yb, idx: F.cross_entropy(net(xb), yb)   # noqa: E731
    chunk = min(args.chunk, len(x))
    order = torch.Generator().manual_seed(1000 + args.index)

    def one_fit():
        pick = torch.randint(0, len(x) - chunk + 1, (1,), generator=order).item()
        trainer.fit(net.parameters(), x[pick:pick + chunk], y[pick:pick + chunk], step, cfg,
                    modules=[net])
        return chunk

    one_fit()                                   # warm-up: kernels, allocator, autotuning
    sync(device)
    (out / READY.format(args.index)).write_text("{}")
    deadline = time.time() + args.wait_s
    while not (out / GO).exists():
        if time.time() > deadline:
            raise SystemExit(f"worker {args.index}: no start signal in {args.wait_s:.0f} s")
        time.sleep(0.02)
    go = json.loads((out / GO).read_text())
    while time.time() < go["start"]:
        time.sleep(0.002)
    start_wall, t0, images = time.time(), time.perf_counter(), 0
    while time.time() < go["start"] + go["duration_s"]:
        images += one_fit()
    sync(device)
    elapsed_s = time.perf_counter() - t0
    result = {"index": args.index, "images": images, "elapsed_s": elapsed_s,
              "img_s": images / elapsed_s, "start": start_wall, "end": start_wall + elapsed_s}
    (out / RESULT.format(args.index)).write_text(json.dumps(result))
    return result


def sync(device) -> None:
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_packed(n: int, data_dir: Path, work: Path, *, device: str, backbone: str,
               batch_size: int, precision: str, duration_s: float, chunk: int,
               timeout_s: float, threads: int = 0) -> dict:
    """Start n workers, release them together, collect their rates.  Raises RuntimeError
    (with the failing worker's last stderr lines) if a worker fails or runs out of time."""
    work.mkdir(parents=True, exist_ok=True)
    for f in work.iterdir():
        f.unlink()
    cmd = [sys.executable, "-m", "bench.pack", "--worker", "--data", str(data_dir),
           "--dir", str(work), "--device", device, "--backbone", backbone,
           "--batch-size", str(batch_size), "--precision", precision, "--chunk", str(chunk),
           "--threads", str(threads), "--wait-s", str(timeout_s)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")])}
    procs, logs = [], []
    end_by = time.time() + timeout_s
    try:
        for i in range(n):
            log = open(work / f"stderr-{i}.txt", "w")
            logs.append(log)
            procs.append(subprocess.Popen(cmd + ["--index", str(i)], stdout=log,
                                          stderr=subprocess.STDOUT, env=env))
        while sum((work / READY.format(i)).exists() for i in range(n)) < n:
            _check_alive(procs, work, end_by, "warming up")
            time.sleep(0.05)
        (work / GO).write_text(json.dumps({"start": time.time() + 0.2,
                                           "duration_s": duration_s}))
        while any(p.poll() is None for p in procs):
            _check_alive(procs, work, end_by, "training")
            time.sleep(0.05)
        _check_alive(procs, work, end_by, "training")
    finally:
        for p in procs:                          # only the workers this call started
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
    runs = [json.loads((work / RESULT.format(i)).read_text()) for i in range(n)]
    span_s = max(r["end"] for r in runs) - min(r["start"] for r in runs)
    return {"runs": n, "per_run_img_s": [r["img_s"] for r in runs],
            "aggregate_img_s": sum(r["img_s"] for r in runs),
            "span_aggregate_img_s": sum(r["images"] for r in runs) / span_s,
            "duration_s": duration_s}


def _check_alive(procs, work: Path, end_by: float, phase: str) -> None:
    for i, p in enumerate(procs):
        if p.poll() not in (None, 0):
            raise RuntimeError(f"packed worker {i} failed while {phase} (exit {p.returncode}): "
                               f"{_tail(work / f'stderr-{i}.txt')}")
    if time.time() > end_by:
        raise RuntimeError(f"packed workers still {phase} at the time limit")


def _tail(path: Path, lines: int = 6) -> str:
    try:
        return " | ".join(path.read_text().strip().splitlines()[-lines:])
    except OSError:
        return "(no output)"


def packing(x_np, y_np, counts, work: Path, *, log=print, budget_s: float = 1e9,
            **kw) -> list[dict]:
    """run_packed for each n in counts (data written once); ratio to the first count's
    aggregate.  A failed count is recorded with its error; later counts still run while
    the budget lasts."""
    data_dir = work / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    np.save(data_dir / "x.npy", np.ascontiguousarray(x_np))
    np.save(data_dir / "y.npy", np.ascontiguousarray(y_np))
    t0, rows, base = time.perf_counter(), [], None
    for n in counts:
        if time.perf_counter() - t0 > budget_s:
            rows.append({"runs": n, "status": "skipped", "error": "section time budget spent"})
            continue
        try:
            row = run_packed(n, data_dir, work / f"n{n}", **kw)
            base = base or row["aggregate_img_s"]
            row.update(status="ok", ratio_to_one=row["aggregate_img_s"] / base,
                       span_ratio_to_one=row["span_aggregate_img_s"] / base)
        except Exception as e:  # noqa: BLE001 - one count's failure must not lose the rest
            row = {"runs": n, "status": "error", "error": f"{type(e).__name__}: {e}"}
        rows.append(row)
        log(f"{n} run(s): " + (f"aggregate {row['aggregate_img_s']:.0f} img/s, "
                                        f"x{row['ratio_to_one']:.2f} of one"
                                        if row["status"] == "ok" else row["error"]))
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if "--worker" in argv:
        return worker(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default="1,2,4,8")
    p.add_argument("--device", default="cuda")
    p.add_argument("--data-root", default=".data/cifar10")
    p.add_argument("--per-class", type=int, default=1000)
    p.add_argument("--backbone", default="resnet32")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--duration-s", type=float, default=10.0)
    p.add_argument("--work", default=".data/pack")
    args = p.parse_args(argv)
    from bench.throughput import load_images
    x, y = load_images(args.data_root, args.per_class)
    rows = packing(x, y, [int(n) for n in args.runs.split(",")], Path(args.work),
                   device=args.device, backbone=args.backbone, batch_size=args.batch_size,
                   precision=args.precision, duration_s=args.duration_s, chunk=2048,
                   timeout_s=120 + 2 * args.duration_s)
    print(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
