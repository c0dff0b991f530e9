"""Frozen networks stored at a lower dtype on the CPU: bytes, logit error, and compute overhead.

For each store dtype (nets/stored.py), on real CIFAR-10 images (`--n`, drawn evenly over the
classes, --data-root CIFAR10_DIR, an ImageFolder of JPEGs):
- teacher: a resnet32 Classifier (10 classes) trained `--train-epochs` epochs on the images
  (Adam 1e-3, batch 128), held at the dtype: its bytes, the max |logit - fp32 logit| relative to
  the max |fp32 logit|, top-1 agreement with fp32, and the time of one no-grad forward of a
  batch of 128 (what distillation adds per step), median of `--rounds` after a warm-up;
- DER step: an ExpandingNet of `--branches` resnet32 branches, all but the last frozen and
  held at the dtype, one training step (forward of every branch, CE on the head, backward
  through the live branch, SGD) on a batch of 128: the time, and its ratio to fp32.  The
  stored branches are read back to float32 at every forward (a transient): this is the
  price of the bytes saved.

    python -m bench.stored                       # about a minute on 2 CPU cores
    python -m bench.stored --json
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from bench.codecs import cifar, emit, timed
from clbudget.budget.accountant import module_bytes
from clbudget.methods.expanding import ExpandingNet
from clbudget.nets.backbones import create_backbone
from clbudget.nets.classifier import Classifier, frozen_copy
from clbudget.nets.stored import STORE_DTYPES, store_as


def teacher_row(net, x, name: str, rounds: int, ref) -> dict:
    held = store_as(frozen_copy(net), name)
    with torch.no_grad():
        out = held(x)
        held(x[:128])                         # warm-up
        forward = timed(lambda: held(x[:128]), rounds)
    return {"bytes": module_bytes(held).total_bytes,
            "max_rel_logit_err": round(float((out - ref).abs().max() / ref.abs().max()), 5),
            "top1_agreement": round(float((out.argmax(1) == ref.argmax(1)).float().mean()), 4),
            "teacher_forward_ms": round(1000 * forward, 2)}


def der_step_s(branches: int, name: str, x, y, rounds: int) -> float:
    torch.manual_seed(0)
    b = create_backbone("resnet32", (3, 32, 32))
    net = ExpandingNet(torch.nn.Identity(), b, b.out_dim, 10)
    for _ in range(branches - 1):
        net.grow(0, name)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.01)
    xb, yb = x[:128], y[:128]

    def step():
        loss = F.cross_entropy(net(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    step()                                    # warm-up
    return timed(step, rounds)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default="/work/shared/data/cifar10",
                   help="CIFAR10_DIR: CIFAR-10 as an ImageFolder of JPEGs "
                        "(train/<class>/*, test/<class>/*)")
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--branches", type=int, default=5, help="DER backbones (default 5: the "
                                                          "fifth task of B0Inc2 on CIFAR-10)")
    p.add_argument("--train-epochs", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    x8, y = cifar(args.data_root, args.n)
    x = x8.float().div_(255)
    torch.manual_seed(0)
    net = Classifier.create("resnet32", (3, 32, 32), 10)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for _ in range(args.train_epochs):
        for i in range(0, len(x), 128):
            loss = F.cross_entropy(net(x[i:i + 128]), y[i:i + 128])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        ref = net(x)
    rows = []
    for name in STORE_DTYPES:
        row = {"store_dtype": name, **teacher_row(net, x, name, args.rounds, ref),
               "der_step_ms": round(1000 * der_step_s(args.branches, name, x, y, args.rounds), 1)}
        rows.append(row)
    base = rows[0]
    for r in rows:
        r["bytes_vs_fp32"] = round(r["bytes"] / base["bytes"], 3)
        r["teacher_forward_vs_fp32"] = round(r["teacher_forward_ms"] / base["teacher_forward_ms"], 2)
        r["der_step_vs_fp32"] = round(r["der_step_ms"] / base["der_step_ms"], 2)
    out = {"images": len(x), "threads": 1, "batch": 128, "der_branches": args.branches,
           "rows": rows}
    return emit(out, rows, f"{len(x)} CIFAR-10 images, resnet32 trained {args.train_epochs} "
                f"epochs, batch 128, 1 thread; DER with {args.branches} branches "
                f"({args.branches - 1} frozen)", args.json)


if __name__ == "__main__":
    main()
