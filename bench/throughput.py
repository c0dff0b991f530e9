"""Training throughput, three ways in one process: ceiling, clbudget's loop, a conventional loop.

(a) ceiling: forward + backward + optimizer step on one fixed batch already on the device,
    same model, precision and optimizer: what the hardware gives with no data pipeline.
(b) clbudget: `Trainer.fit` on a real stream (CIFAR-10 JPEGs decoded once to uint8, kept on
    the device, augmented there), one full epoch per measurement.
(c) conventional (PyCIL / Mammoth style): a torch DataLoader over the decoded uint8 images,
    per-sample CPU augmentation (random crop with 4-pixel padding, flip, to-float, normalize),
    worker processes, fp32.
Prints images/s for each and the ratios b/a and b/c.  Times exclude warm-up; on CUDA the
clock is read after a device synchronize.

    python -m bench.throughput --quick                       # CPU, small, a minute
    python -m bench.throughput --device cuda --batch-size 256 --precision bf16
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from clbudget.experiment.env import environment
from clbudget.train.loop import LoopConfig, Pipeline, Trainer
from clbudget.experiment.run import resolve_device
from clbudget.nets.classifier import Classifier


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ceiling(net, x, y, opt, device, amp, steps, warmup):
    """(a): the same step on one resident, pre-normalized batch."""
    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for _ in range(warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * len(x) / (time.perf_counter() - t0)


class CpuAugmented(torch.utils.data.Dataset):
    """Per-sample CPU augmentation as torchvision's RandomCrop(32, 4) + RandomHorizontalFlip +
    ToTensor + Normalize would do it, without torchvision."""

    def __init__(self, x, y, mean, std):
        self.x, self.y = x, y
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        img = torch.from_numpy(self.x[i])                        # (C, H, W) uint8
        c, h, w = img.shape
        padded = F.pad(img, (4, 4, 4, 4))
        top, left = np.random.randint(0, 9, 2)
        img = padded[:, top:top + h, left:left + w]
        if np.random.rand() < 0.5:
            img = img.flip(2)
        return (img.float() / 255 - self.mean) / self.std, int(self.y[i])


class PilAugmented(torch.utils.data.Dataset):
    """PyCIL's CIFAR training transform, per sample on a PIL image (PyCIL utils/data.py
    iCIFAR10: RandomCrop(32, padding=4), RandomHorizontalFlip(0.5), ColorJitter(brightness=
    63/255), ToTensor, Normalize; utils/data_manager.py: `Image.fromarray` per item), done with
    PIL as torchvision does it for PIL images, without torchvision."""

    def __init__(self, x, y, mean, std, brightness=63 / 255):
        self.x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))    # (N, H, W, C), as PyCIL holds it
        self.y, self.brightness = y, brightness
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        from PIL import Image, ImageEnhance, ImageOps
        a = self.x[i]
        img = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
        w, h = img.size
        img = ImageOps.expand(img, border=4, fill=0)
        top, left = np.random.randint(0, 9, 2)
        img = img.crop((left, top, left + w, top + h))
        if np.random.rand() < 0.5:
            img = img.transpose(getattr(Image, "Transpose", Image).FLIP_LEFT_RIGHT)  # Pillow < 9.1
        b = self.brightness
        img = ImageEnhance.Brightness(img).enhance(np.random.uniform(max(0.0, 1 - b), 1 + b))
        t = torch.from_numpy(np.array(img, dtype=np.uint8)).float().div_(255)
        t = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)      # ToTensor: (C, H, W)
        return (t - self.mean) / self.std, int(self.y[i])


AUGMENTED = {"torch": CpuAugmented, "pil": PilAugmented}


def conventional(net, x, y, pipeline, device, batch_size, workers, epochs=1, transform="torch"):
    """(c): DataLoader + CPU augmentation + fp32, as most CL toolkits train.  transform:
    "torch" (crop/flip as tensor ops) or "pil" (PyCIL's PIL pipeline, with brightness jitter)."""
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loader = torch.utils.data.DataLoader(
        AUGMENTED[transform](x, y, pipeline.mean, pipeline.std), batch_size=batch_size,
        shuffle=True,
        num_workers=workers, pin_memory=device.type == "cuda", drop_last=False,
        persistent_workers=workers > 0)
    rates = []
    for epoch in range(epochs + 1):   # the first epoch warms up workers and kernels
        sync(device)
        t0 = time.perf_counter()
        n = 0
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = F.cross_entropy(net(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(xb)
        sync(device)
        if epoch:
            rates.append(n / (time.perf_counter() - t0))
    return float(np.mean(rates))


def clbudget_loop(net, x, y, trainer, batch_size, epochs=1):
    """(b): the project's loop, one epoch per measurement after a warm-up epoch."""
    cfg = LoopConfig(epochs=1, batch_size=batch_size, lr=0.01, schedule="constant")
    step = lambda xb, yb, idx: F.cross_entropy(net(xb), yb)
    x, y = x.to(trainer.device), y.to(trainer.device)   # resident, as a run holds its stream
    rates = []
    for epoch in range(epochs + 1):
        sync(trainer.device)
        t0 = time.perf_counter()
        trainer.fit(net.parameters(), x, y, step, cfg, modules=[net])
        sync(trainer.device)
        if epoch:
            rates.append(len(x) / (time.perf_counter() - t0))
    return float(np.mean(rates))


def fresh_net(backbone, image_shape, device, memory_format=torch.contiguous_format,
              num_classes=10):
    """A new classifier in train mode on `device`."""
    net = Classifier.create(backbone, image_shape, num_classes)
    return net.to(device, memory_format=memory_format).train()


def load_images(data_root, per_class, cache_dir=None):
    """(N, C, H, W) uint8 and (N,) labels: `per_class` training images of each class."""
    from clbudget.streams import load_stream
    stream = load_stream("imagefolder", data_root, 0, 10, max_per_class=per_class,
                         max_test_per_class=1, cache_dir=cache_dir)
    task = stream.tasks[0]
    return task.train.x, task.train.y


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="resnet32")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=["bf16", "fp32"], default=None,
                   help="default: bf16 on CUDA, fp32 on CPU")
    p.add_argument("--data-root", default="../shared/data/cifar10")
    p.add_argument("--per-class", type=int, default=5000, help="training images per class")
    p.add_argument("--steps", type=int, default=50, help="ceiling steps timed")
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers for (c)")
    p.add_argument("--epochs", type=int, default=1, help="timed epochs for (b) and (c)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--quick", action="store_true", help="CPU-sized: 100 img/class, 5 steps")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.per_class, args.steps, args.workers = min(args.per_class, 100), 5, 2
    device = resolve_device(args.device)
    amp = (args.precision or ("bf16" if device.type == "cuda" else "fp32")) == "bf16"
    torch.manual_seed(0)
    x_np, y_np = load_images(args.data_root, args.per_class)
    pipeline = Pipeline.from_images(x_np)
    if args.channels_last:
        pipeline = Pipeline(pipeline.mean, pipeline.std, channels_last=True)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format

    def fresh():
        return fresh_net(args.backbone, x_np.shape[1:], device, fmt)

    net = fresh()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    xb = pipeline(torch.from_numpy(x_np[:args.batch_size]).to(device))
    yb = torch.from_numpy(y_np[:args.batch_size]).to(device)
    a = ceiling(net, xb, yb, opt, device, amp, args.steps, warmup=3)
    trainer = Trainer(device, pipeline, torch.Generator().manual_seed(0), amp=amp)
    b = clbudget_loop(fresh(), torch.from_numpy(x_np), torch.from_numpy(y_np), trainer,
                      args.batch_size, args.epochs)
    c = conventional(fresh(), x_np, y_np, pipeline, device, args.batch_size, args.workers,
                     args.epochs)
    result = {"backbone": args.backbone, "batch_size": args.batch_size, "images": len(x_np),
              "precision_ab": "bf16" if amp else "fp32", "precision_c": "fp32",
              "ceiling_img_s": a, "clbudget_img_s": b, "conventional_img_s": c,
              "b_over_a": b / a, "b_over_c": b / c, "workers_c": args.workers,
              "environment": environment(device),
              "date": time.strftime("%Y-%m-%d")}
    if args.json:
        print(json.dumps(result))
        return result
    env = result["environment"]
    print(f"{args.backbone}, batch {args.batch_size}, {len(x_np)} CIFAR-10 images, "
          f"{env['device_name']}, torch {env['torch']}")
    print(f"  (a) ceiling (resident batch, {result['precision_ab']})   {a:10.1f} img/s")
    print(f"  (b) clbudget loop ({result['precision_ab']})             {b:10.1f} img/s")
    print(f"  (c) conventional DataLoader, {args.workers} workers, fp32 {c:10.1f} img/s")
    print(f"  b/a = {b / a:.2f}   b/c = {b / c:.2f}")
    return result


if __name__ == "__main__":
    main()
