"""BMC's experts under its three variants (methods/bmc.py `VARIANTS`), on a small real stream.

For each variant and seed one `clbudget run --method bmc --option variant=V` on CIFAR-10 JPEGs
(an ImageFolder tree: CIFAR10_DIR/{train,test}/<class>/*.jpg), resnet32, with every expert
probed as it finishes (`bmc_experts.train_expert(..., on_trained=)`, which draws no random
number: the run is the one it would be unprobed):
- expert-base distance: the expert's `stability_distance`, L_bd (the paper's per-layer L2
  norms summed over the stages and the pooled features, both networks on the batch's
  statistics) between the trained expert and the base it started from, mean over its buffer;
- expert accuracy: the trained expert (eval mode) on its own task's test images, argmax over
  its task's classes (what its CE trains);
both averaged over the experts of tasks 1.. (task 0's expert starts from an untrained base and
has no stability term in any variant); then the run's final accuracy, task-agnostic and
task-aware.  Each cell is the mean +- the 95% Student-t half-width over the seeds
(analysis/stats.py `seed_stats`).  All variants train the same shortened schedule
(`--epochs` for the experts, `--consolidation-epochs`, batch 32): the variants differ in the
losses' weights and the experts' optimiser, lr and schedule, which is what is compared.

    python -m bench.bmc_experts --data-root CIFAR10_DIR            # the BENCHMARKS.md table
    python -m bench.bmc_experts --data-root CIFAR10_DIR --seeds 0 --variants reference

Runs on the CPU at one torch thread, one run at a time.  Prints a markdown table (and with
--json, writes every run's probes and accuracies).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from clbudget.analysis.stats import seed_stats


def probe_run(spec, stream) -> dict:
    """One run of `spec` on `stream` with every expert probed; its figures."""
    from clbudget.experiment.run import run_experiment
    import clbudget.methods.bmc_experts as experts
    x_test = torch.cat([torch.as_tensor(t.test.x) for t in stream.tasks])
    y_test = torch.cat([torch.as_tensor(t.test.y) for t in stream.tasks]).long()
    probes = []
    real = experts.train_expert

    def probed(base_state, task_arrays, config, seed, spec_):
        record = {"lo": spec_.lo, "hi": spec_.hi, "first": spec_.first}

        def on_trained(expert, trainer):
            mine = (y_test >= spec_.lo) & (y_test < spec_.hi)
            scores = trainer.predict(expert, x_test[mine])[:, spec_.lo:spec_.hi]
            hits = (scores.argmax(1).cpu() + spec_.lo) == y_test[mine]
            record["accuracy"] = float(hits.float().mean())
        result = real(base_state, task_arrays, config, seed, spec_, on_trained=on_trained)
        record["distance"] = float(result.stats["stability_distance"])
        record["stability_weight"] = float(result.stats["stability_weight"])
        probes.append(record)
        return result

    experts.train_expert = probed
    try:
        t0 = time.perf_counter()
        row = run_experiment(spec, stream=stream)
        wall = time.perf_counter() - t0
    finally:
        experts.train_expert = real
    if row.get("status") != "finished":
        raise RuntimeError(f"{spec.method_options}: run {row.get('status')}: "
                           f"{row.get('reason', '')}")
    later = [p for p in probes if not p["first"]]
    mean = (lambda key: sum(p[key] for p in later) / len(later)) if later else (lambda key: None)
    options = dict(spec.method_options)
    name = options["variant"] + (f":{options['stability']:g}" if "stability" in options else "")
    return {"seed": spec.seed, "variant": name,
            "probes": probes, "distance": mean("distance"), "expert_accuracy": mean("accuracy"),
            "last_tag": row["accuracy"]["last"],
            "last_taw": row["accuracy"]["task_aware"]["last"],
            "expert_phase": row["recipe"]["phases"]["later"], "recipe": row["recipe"]["name"],
            "cost_figures": {k: row["cost_figures"][k] for k in
                             ("variant", "stability_weight", "distill_weight")},
            "wall_s": wall}


def cell(values, scale: float = 1.0, digits: int = 1) -> str:
    s = seed_stats([scale * v for v in values if v is not None])
    if s.n == 0:
        return "n/a"
    mean = f"{s.mean:.{digits}f}"
    return mean if s.n < 2 else f"{mean} +- {s.half_width:.{digits}f}"


def table(runs: list[dict]) -> str:
    lines = ["| variant | lambda, beta | experts | expert-base distance | expert accuracy, "
             "own task (%) | final TAG (%) | final TAW (%) | seeds | wall per run (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    variants = list(dict.fromkeys(r["variant"] for r in runs))
    for v in variants:
        got = sorted((r for r in runs if r["variant"] == v), key=lambda r: r["seed"])
        c, ph = got[0]["cost_figures"], got[0]["expert_phase"]
        experts = f"{ph['optimizer']} lr {ph['lr']:g}" + (
            f" m {ph['momentum']:g}" if ph["optimizer"] == "sgd" else "") + f", {ph['schedule']}"
        lines.append(
            f"| {v} | {c['stability_weight']:g}, {c['distill_weight']:g} | {experts} | "
            f"{cell([r['distance'] for r in got])} | "
            f"{cell([r['expert_accuracy'] for r in got], 100)} | "
            f"{cell([r['last_tag'] for r in got], 100)} | "
            f"{cell([r['last_taw'] for r in got], 100)} | "
            f"{','.join(str(r['seed']) for r in got)} | "
            f"{sum(r['wall_s'] for r in got) / len(got):.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", required=True, help="CIFAR-10 ImageFolder tree (CIFAR10_DIR)")
    p.add_argument("--variants", default="reference,paper,paper-sgd",
                   help="comma-separated VARIANT or VARIANT:LAMBDA (its stability weight)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--classes", type=int, default=6, help="first N classes, 2 a task")
    p.add_argument("--max-per-class", type=int, default=60)
    p.add_argument("--max-test-per-class", type=int, default=40)
    p.add_argument("--epochs", type=int, default=6, help="every expert's epochs")
    p.add_argument("--consolidation-epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--budget", default="2.5MiB")
    p.add_argument("--json", default=None, help="write every run's figures here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from clbudget.experiment.run import RunSpec, load
    from clbudget.methods.bmc import VARIANTS
    from clbudget.streams.catalog import check_choice
    variants = []
    for item in (v.strip() for v in args.variants.split(",") if v.strip()):
        name, _, weight = item.partition(":")
        try:
            check_choice("--variants", name, VARIANTS)
        except ValueError as e:
            p.error(str(e))
        try:
            weight = float(weight) if weight else None
        except ValueError:
            p.error(f"--variants {item}: LAMBDA must be a number (e.g. {name}:0.01)")
        variants.append((item, (("variant", name),)
                         + ((("stability", weight),) if weight is not None else ())))
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        stream = None
        for v, options in variants:
            spec = RunSpec(method="bmc", dataset="cifar10", data_root=args.data_root, init=2,
                           inc=2, num_classes=args.classes, max_per_class=args.max_per_class,
                           max_test_per_class=args.max_test_per_class, budget=args.budget,
                           backbone="resnet32", epochs=args.epochs, batch_size=args.batch_size,
                           seed=seed, device="cpu",
                           method_options=options + (("workers", 1),),
                           recipe_options=(("consolidation",
                                            {"epochs": args.consolidation_epochs}),))
            stream = stream if stream is not None else load(spec)
            runs.append(probe_run(spec, stream))
            r = runs[-1]
            print(f"seed {seed} {v}: distance {r['distance']:.2f}, expert accuracy "
                  f"{100 * r['expert_accuracy']:.1f}%, final TAG {100 * r['last_tag']:.1f}%, "
                  f"{r['wall_s']:.0f} s", file=sys.stderr, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "runs": runs}, f, indent=1, default=str)
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
