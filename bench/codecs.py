"""Exemplar codecs on the CPU: bytes per image, encode and decode throughput, and the
replay overhead of decoding against raw.

Real CIFAR-10 training images (--data-root CIFAR10_DIR, an ImageFolder of JPEGs,
decoded once to uint8; `--n` images drawn evenly over the classes).  For each codec:
- bytes per image (mean encoded size) and PSNR of the decoded images against the raw ones;
- encode and decode throughput (images/s, median of `--rounds` rounds, one thread each as
  the run does: Pillow per image, `down:S` one batched interpolate);
- replay overhead: a class-balanced memory decodes its exemplars once per task
  (`CodecMemory.data()`), raw reads its tensor; the overhead is that decode time over one
  replay epoch of the same exemplars (conv2, batch 128, SGD, the training step of replay)
  and per replay step (decode time / steps of one epoch).  Later epochs of a task reuse the
  decoded tensor, so the per-task overhead divides by the task's epochs;
- DER++'s replay (the encoded reservoir, `CodecMemory.images_at`): each step decodes two
  sampled batches of 32 entries (`memory.sample` then `images_at`), raw indexes its tensor;
  reported per step (median over `--steps` steps) and against one DER++ step of conv2 (the
  new batch and two replay batches of 32: three forwards, one backward, SGD).

    python -m bench.codecs                       # about a minute on 2 CPU cores
    python -m bench.codecs --json
"""
from __future__ import annotations

import argparse
import glob
import json
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from clbudget.methods.codecs import CodecMemory, parse_codec
from clbudget.nets.classifier import Classifier

CODECS = ("raw", "png", "jpeg:90", "jpeg:75", "jpeg:50", "jpeg:25", "down:24", "down:16",
          "down:8")


def cifar(root: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image
    classes = sorted(glob.glob(f"{root}/train/*"))
    per = max(1, n // len(classes))
    xs, ys = [], []
    for k, folder in enumerate(classes):
        for f in sorted(glob.glob(f"{folder}/*"))[:per]:
            xs.append(np.asarray(Image.open(f).convert("RGB")))
            ys.append(k)
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(ys)


def timed(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def psnr(a, b) -> float:
    mse = ((a.float() - b.float()) ** 2).mean().item()
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def epoch_s(x, y, batch: int = 128) -> tuple[float, int]:
    """One replay epoch over (x, y): normalise, forward, CE, backward, SGD step."""
    torch.manual_seed(0)
    net = Classifier.create("conv2", (3, 32, 32), 10)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    steps = 0
    t0 = time.perf_counter()
    for i in range(0, len(x), batch):
        xb = x[i:i + batch].float().div_(255)
        loss = F.cross_entropy(net(xb), y[i:i + batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    return time.perf_counter() - t0, steps


def derpp_step_s(x, y, steps: int, batch: int = 32) -> float:
    """Median wall time of a DER++-shaped step: three batches of 32 (new + two replay) through
    conv2, CE on each, one backward, SGD."""
    torch.manual_seed(0)
    net = Classifier.create("conv2", (3, 32, 32), 10)
    opt = torch.optim.SGD(net.parameters(), lr=0.03)
    times = []
    for k in range(steps):
        i = (torch.arange(3 * batch) + k * batch) % len(x)
        t0 = time.perf_counter()
        loss = sum(F.cross_entropy(net(x[j].float().div_(255)), y[j])
                   for j in i.view(3, batch))
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def replay_decode_s(read, n: int, steps: int, batch: int = 32) -> float:
    """Median wall time per step of `read(i)` on two sampled batches of `batch` of n entries."""
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        for _ in range(2):
            read(torch.randperm(n, generator=g)[:batch])
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default="/work/shared/data/cifar10",
                   help="CIFAR10_DIR: CIFAR-10 as an ImageFolder of JPEGs "
                        "(train/<class>/*, test/<class>/*)")
    p.add_argument("--n", type=int, default=2000, help="images (default 2000, CIFAR's 20/class "
                                                        "x 100 memory size)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--codecs", default=",".join(CODECS))
    p.add_argument("--steps", type=int, default=50, help="DER++ replay steps timed (default 50)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    x, y = cifar(args.data_root, args.n)
    n = len(x)
    train_s, steps = epoch_s(x, y)
    derpp_s = derpp_step_s(x, y, args.steps)
    rows = []
    for spec in args.codecs.split(","):
        codec = parse_codec(spec)
        codes = codec.encode(x)
        enc = timed(lambda: codec.encode(x), args.rounds)
        dec = timed(lambda: codec.decode(codes, (3, 32, 32), torch.device("cpu")), args.rounds)
        per = float(np.mean([len(c) for c in codes]))
        if codec.spec == "raw":
            read = timed(lambda: x[:n].clone(), args.rounds)   # raw memory: a tensor copy
            sampled = replay_decode_s(lambda i: x[i], n, args.steps)   # raw: indexing
        else:
            mem = CodecMemory(n, int(sum(len(c) for c in codes)), (3, 32, 32),
                              torch.device("cpu"), codec)
            mem._pack([(0, codes, [])])
            read = timed(lambda: mem.data(), args.rounds)
            sampled = replay_decode_s(mem.images_at, n, args.steps)
        rows.append({"codec": codec.spec, "bytes_per_image": round(per, 1),
                     "vs_raw": round(per / (3 * 32 * 32), 3),
                     "psnr_db": round(psnr(codec.roundtrip(x), x), 2),
                     "encode_img_s": round(n / enc), "decode_img_s": round(n / dec),
                     "memory_read_s": round(read, 4),
                     "overhead_vs_epoch_pct": round(100 * read / train_s, 2),
                     "overhead_per_step_ms": round(1000 * read / steps, 2),
                     "derpp_decode_ms_per_step": round(1000 * sampled, 3),
                     "derpp_overhead_vs_step_pct": round(100 * sampled / derpp_s, 1)})
    raw_read = next((r["memory_read_s"] for r in rows if r["codec"] == "raw"), 0.0)
    for r in rows:
        r["overhead_vs_raw_epoch_pct"] = round(100 * (r["memory_read_s"] - raw_read) / train_s, 2)
    out = {"images": n, "epoch_s": round(train_s, 3), "steps_per_epoch": steps,
           "derpp_step_ms": round(1000 * derpp_s, 2), "threads": 1, "codecs": rows}
    return emit(out, rows, f"{n} CIFAR-10 images; one replay epoch (conv2, batch 128, 1 thread) "
                f"{train_s:.2f} s, {steps} steps; one DER++ step (3 x 32) {1000 * derpp_s:.1f} ms",
                args.json)


def emit(out: dict, rows: list[dict], header: str, as_json: bool) -> dict:
    """Print a bench's result: JSON, or the header line and a `|`-separated table of rows."""
    if as_json:
        print(json.dumps(out, indent=1))
    else:
        print(header)
        keys = list(rows[0])
        print(" | ".join(keys))
        for r in rows:
            print(" | ".join(str(r[k]) for k in keys))
    return out


if __name__ == "__main__":
    main()
