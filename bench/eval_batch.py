"""Evaluation speed of `Trainer.predict` against its batch size, and whether the batch size
changes the scores.

ResNet32 in eval mode (running BN statistics filled by a few training-mode forward passes),
real CIFAR-10 test images (JPEGs decoded once to uint8), scores of every image at each batch
size.  Rounds interleave the batch sizes (rotated each round) so that load from other
processes falls on all of them alike; the table gives the median and the best round in ms per
image.  Scores at each batch size are compared with those at `--reference` batch size:
bitwise equal, largest absolute difference, and the share of equal argmax predictions.
The chosen default is `Trainer.eval_batch_size` (train/loop.py).

    python -m bench.eval_batch                                   # CPU, about two minutes
    python -m bench.eval_batch --device cuda --sizes 128,256,512,1024,2048,4096
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from clbudget.experiment.env import environment
from clbudget.train.loop import Pipeline, Trainer
from clbudget.experiment.run import resolve_device
from clbudget.nets.classifier import Classifier


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_test_images(data_root: str, per_class: int):
    from clbudget.streams import load_stream
    stream = load_stream("imagefolder", data_root, 0, 10, max_per_class=20,
                         max_test_per_class=per_class)
    task = stream.tasks[0]
    return task.train.x, task.test.x


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="resnet32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-root", default="../shared/data/cifar10")
    p.add_argument("--per-class", type=int, default=200, help="test images per class")
    p.add_argument("--sizes", default="32,64,128,256,512,1024")
    p.add_argument("--reference", type=int, default=1024,
                   help="batch size the others' scores are compared with (the old default)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.reference not in sizes:
        sizes.append(args.reference)
    torch.manual_seed(0)
    train_x, test_x = load_test_images(args.data_root, args.per_class)
    pipeline = Pipeline.from_images(train_x)
    trainer = Trainer(device, pipeline, torch.Generator().manual_seed(0),
                      amp=device.type == "cuda")
    net = Classifier.create(args.backbone, train_x.shape[1:], 10).to(device)
    with torch.no_grad():  # running BN statistics of real images, as after training
        net.train()
        x = torch.from_numpy(train_x).to(device)
        for b in range(0, len(x), 50):
            net(trainer.inputs(x[b:b + 50]))
    net.eval()
    x = torch.from_numpy(test_x).to(device)
    n = len(x)

    scores, times = {}, {bs: [] for bs in sizes}
    for bs in sizes:  # warm-up and scores
        scores[bs] = trainer.predict(net, x, batch_size=bs).cpu()
    for r in range(args.rounds):
        for bs in sizes[r % len(sizes):] + sizes[:r % len(sizes)]:
            sync(device)
            t0 = time.perf_counter()
            trainer.predict(net, x, batch_size=bs)
            sync(device)
            times[bs].append((time.perf_counter() - t0) * 1000 / n)
    ref = scores[args.reference]
    rows = [{"batch_size": bs, "ms_per_image_median": statistics.median(times[bs]),
             "ms_per_image_best": min(times[bs]),
             "bitwise_equal": bool(torch.equal(scores[bs], ref)),
             "max_abs_diff": float((scores[bs] - ref).abs().max()),
             "argmax_equal": float((scores[bs].argmax(1) == ref.argmax(1)).float().mean())}
            for bs in sizes]
    result = {"backbone": args.backbone, "images": n, "rounds": args.rounds,
              "threads": torch.get_num_threads(), "reference_batch_size": args.reference,
              "default_eval_batch_size": trainer.eval_batch_size, "rows": rows,
              "environment": environment(device), "date": time.strftime("%Y-%m-%d")}
    if args.json:
        print(json.dumps(result))
        return result
    env = result["environment"]
    print(f"{args.backbone} eval, {n} CIFAR-10 test images, {env['device_name']}, "
          f"{result['threads']} threads, torch {env['torch']}, {args.rounds} rounds")
    print(f"  {'batch':>6} {'ms/img median':>14} {'best':>7}  vs batch {args.reference}: "
          f"{'bitwise':>7} {'max |diff|':>10} {'argmax':>7}")
    for r in rows:
        print(f"  {r['batch_size']:>6} {r['ms_per_image_median']:>14.3f} "
              f"{r['ms_per_image_best']:>7.3f}  {'':>{len(str(args.reference)) + 10}}"
              f"{str(r['bitwise_equal']):>7} {r['max_abs_diff']:>10.2e} "
              f"{100 * r['argmax_equal']:>6.2f}%")
    print(f"  Trainer.eval_batch_size on {device.type}: {trainer.eval_batch_size}")
    return result


if __name__ == "__main__":
    main()
