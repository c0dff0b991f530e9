"""Whole-run wall time and relative time vs finetune (BMC's definition) on one stream.

    python -m bench.run_time --quick                          # CPU, minutes
    python -m bench.run_time --methods replay,icarl --epochs 5 --device cuda
"""
from __future__ import annotations

import argparse
import json

from clbudget.experiment.run import RunSpec, run_experiment


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default="replay,icarl")
    p.add_argument("--data-root", default="../shared/data/cifar10")
    p.add_argument("--budget", default="1xresnet32+2000ex")
    p.add_argument("--init", type=int, default=0)
    p.add_argument("--inc", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--per-class", type=int, default=None)
    p.add_argument("--test-per-class", type=int, default=None)
    p.add_argument("--backbone", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--quick", action="store_true", help="CPU-sized: 100/20 images per class")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.per_class, args.test_per_class = args.per_class or 100, args.test_per_class or 20
    base = RunSpec(method="finetune", dataset="imagefolder", data_root=args.data_root,
                   budget=args.budget, init=args.init, inc=args.inc, epochs=args.epochs,
                   device=args.device, max_per_class=args.per_class,
                   max_test_per_class=args.test_per_class, backbone=args.backbone)
    from clbudget.experiment.run import load
    stream = load(base)
    rows = {}
    for method in ["finetune"] + [m for m in args.methods.split(",") if m != "finetune"]:
        spec = RunSpec(**{**base.__dict__, "method": method})
        rows[method] = run_experiment(spec, stream=stream)
    ref = rows["finetune"]["wall_s"]
    out = [{"method": m, "wall_s": r["wall_s"], "relative_time": r["wall_s"] / ref,
            "last": r["accuracy"]["last"], "device": r["environment"]["device_name"]}
           for m, r in rows.items()]
    if args.json:
        print(json.dumps(out))
        return out
    print(f"B{args.init}Inc{args.inc} CIFAR-10, {args.epochs} epoch(s)/task, "
          f"{out[0]['device']}")
    for r in out:
        print(f"  {r['method']:<10} {r['wall_s']:8.1f} s   relative {r['relative_time']:5.2f}   "
              f"last {100 * r['last']:.1f}%")
    return out


if __name__ == "__main__":
    main()
