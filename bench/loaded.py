"""A short real-CIFAR-10 run alone and beside K busy processes, before and after the thread fix.

Each timing is one `clbudget run ... --device cpu --json` in a fresh process (torch's OpenMP
reads its environment when it loads), on JPEGs decoded once beforehand into the cache.  The
settings:

- old: the behaviour before experiment/threads.py: torch's default thread count (one per
  core) and libgomp's default wait (GOMP_SPINCOUNT=300000, what libgomp uses when
  OMP_WAIT_POLICY is unset);
- new: the defaults now: `--threads` left to auto and OMP_WAIT_POLICY=PASSIVE set by the CLI;
- passive: torch's default thread count, with the new wait policy (the policy alone);
- one: `--threads 1`, with the new wait policy.

The bench runs every setting alone, then starts K processes that spin (`while True: pass`,
each in a session of its own, as other jobs are), waits `--settle-s` so the load average sees
them (a run meets a machine that was already busy), runs every setting again, and stops them.
It prints each run's training+evaluation wall time (the row's `wall_s`), the threads it used,
the 1-minute load when it started, and loaded/alone per setting.  A run that passes
`--timeout-s` is stopped and shown as a lower bound.  "Alone" means without the K processes:
whatever else the machine runs stays, so read the load column.

    python -m bench.loaded                      # icarl B2Inc2, 50/20 images a class, K=4
    python -m bench.loaded --data-root CIFAR10_DIR --settings old,new,passive,one --busy 4
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

SETTINGS = ("old", "new", "passive", "one")
THREAD_VARIABLES = ("CLBUDGET_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                    "MKL_NUM_THREADS")


def setting_env(setting: str, default_threads: int, environ=None) -> tuple[dict, list[str]]:
    """(environment, extra `clbudget run` flags) of a setting; the caller's thread variables
    are removed, so each setting is what it says."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items()
           if k not in THREAD_VARIABLES}
    if setting == "old":   # GOMP_SPINCOUNT set: the CLI leaves the wait policy alone
        env["GOMP_SPINCOUNT"] = "300000"   # libgomp's default when OMP_WAIT_POLICY is unset
        return env, ["--threads", str(default_threads)]
    if setting == "new":
        return env, []
    if setting == "passive":
        return env, ["--threads", str(default_threads)]
    if setting == "one":
        return env, ["--threads", "1"]
    raise ValueError(f"unknown setting {setting!r}; use {', '.join(SETTINGS)}")


def run_command(args, setting: str) -> tuple[list[str], dict]:
    env, extra = setting_env(setting, args.default_threads)
    cmd = [sys.executable, "-m", "clbudget", "run", "--method", args.method,
           "--dataset", "imagefolder", "--data-root", args.data_root,
           "--normalization", "pycil:cifar10", "--init", str(args.init), "--inc", str(args.inc),
           "--budget", args.budget, "--epochs", str(args.epochs),
           "--max-per-class", str(args.per_class), "--max-test-per-class",
           str(args.test_per_class), "--device", "cpu", "--json", *extra]
    if args.cache_dir:
        cmd += ["--cache-dir", args.cache_dir]
    return cmd, env


def timed_run(args, setting: str) -> dict:
    cmd, env = run_command(args, setting)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    # a checkpoint folder of its own: a run never resumes another's (a stopped run leaves
    # one, and the thread count is not part of the run's key)
    with tempfile.TemporaryDirectory(prefix="bench-loaded-") as checkpoints:
        try:
            done = subprocess.run(cmd + ["--checkpoint-dir", checkpoints], env=env,
                                  capture_output=True, text=True, timeout=args.timeout_s)
        except subprocess.TimeoutExpired:   # subprocess.run killed it
            return {"setting": setting, "load": load, "wall_s": None, "threads": None,
                    "process_s": time.perf_counter() - t0, "timed_out": True}
    process_s = time.perf_counter() - t0
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): "
                           f"{done.stderr.strip()[-2000:]}")
    row = json.loads(done.stdout)
    return {"setting": setting, "load": load, "wall_s": row["wall_s"],
            "threads": row["environment"]["torch_threads"], "process_s": process_s,
            "timed_out": False, "last": row["accuracy"]["last"]}


def torch_default_threads() -> int:
    """torch's own thread count in a fresh process without thread variables (this process's
    may come from the caller's OMP_NUM_THREADS)."""
    env, _ = setting_env("new", 1)
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                         env=env, capture_output=True, text=True, check=True, timeout=600)
    return int(out.stdout)


def warm_cache(args) -> None:
    """Decode the JPEGs once (cached), so no timed run decodes."""
    from clbudget.experiment.run import RunSpec, load
    load(RunSpec(method=args.method, dataset="imagefolder", data_root=args.data_root,
                 init=args.init, inc=args.inc, max_per_class=args.per_class,
                 max_test_per_class=args.test_per_class, cache_dir=args.cache_dir))


def start_busy(k: int) -> list[subprocess.Popen]:
    """K spinning processes, each in its own session: with Linux's autogroup scheduling
    (kernel.sched_autogroup_enabled) a session shares the CPUs as one group, so busy
    processes in the bench's session would take only the bench's own share; separate
    sessions compete as other users' jobs do."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
            for _ in range(k)]


def stop_busy(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def fmt_s(r: dict, timeout_s: float) -> str:
    return f"> {timeout_s:.0f}" if r["timed_out"] else f"{r['wall_s']:.1f}"


def ratio(alone: dict, loaded: dict, timeout_s: float) -> str:
    if alone["timed_out"]:
        return "n/a"
    if loaded["timed_out"]:
        return f"> {timeout_s / alone['wall_s']:.1f}"
    return f"{loaded['wall_s'] / alone['wall_s']:.2f}"


def table(results: list[dict], timeout_s: float) -> str:
    lines = ["| setting | threads alone | alone s (load) | threads loaded | loaded s (load) "
             "| loaded/alone |", "|---|---|---|---|---|---|"]
    for setting in dict.fromkeys(r["setting"] for r in results):
        alone = [r for r in results if r["setting"] == setting and not r["busy"]]
        loaded = [r for r in results if r["setting"] == setting and r["busy"]]
        for a, b in zip(alone, loaded):
            lines.append(f"| {setting} | {a['threads'] or '?'} | {fmt_s(a, timeout_s)} "
                         f"({a['load']:.1f}) | {b['threads'] or '?'} | {fmt_s(b, timeout_s)} "
                         f"({b['load']:.1f}) | {ratio(a, b, timeout_s)} |")
    return "\n".join(lines)


def versus(results: list[dict], timeout_s: float) -> str:
    """The first setting's loaded run against the second's (old / new by default)."""
    loaded = {r["setting"]: r for r in results if r["busy"]}
    names = [s for s in dict.fromkeys(r["setting"] for r in results) if s in loaded]
    if len(names) < 2 or loaded[names[1]]["timed_out"]:
        return ""
    a, b = loaded[names[0]], loaded[names[1]]
    value = (f"> {timeout_s / b['wall_s']:.1f}" if a["timed_out"]
             else f"{a['wall_s'] / b['wall_s']:.2f}")
    return f"loaded {names[0]} / loaded {names[1]}: {value}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default="../shared/data/cifar10")
    p.add_argument("--method", default="icarl")
    p.add_argument("--budget", default="6MiB")
    p.add_argument("--init", type=int, default=2)
    p.add_argument("--inc", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--per-class", type=int, default=50, help="training images per class")
    p.add_argument("--test-per-class", type=int, default=20, help="test images per class")
    p.add_argument("--busy", type=int, default=4, help="busy processes beside the run (K)")
    p.add_argument("--settings", default="old,new",
                   help=f"comma-separated, of {', '.join(SETTINGS)} (default old,new)")
    p.add_argument("--rounds", type=int, default=1, help="times each setting runs per phase")
    p.add_argument("--settle-s", type=float, default=20.0,
                   help="seconds between starting the busy processes and the first loaded run")
    p.add_argument("--timeout-s", type=float, default=300.0, help="stop a run after this long")
    p.add_argument("--cache-dir", help="decoded-data cache (default: clbudget's)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    import torch
    args.default_threads = torch_default_threads()   # what every run used before the fix
    for s in settings:
        setting_env(s, args.default_threads)   # unknown names fail before anything runs
    warm_cache(args)
    results = []
    for busy in (False, True):
        procs = start_busy(args.busy) if busy else []
        try:
            if busy:
                time.sleep(args.settle_s)
            for _ in range(args.rounds):
                for s in (settings if not busy else settings[::-1]):
                    r = timed_run(args, s)
                    r["busy"] = busy
                    results.append(r)
                    print(json.dumps(r), file=sys.stderr, flush=True)
        finally:
            stop_busy(procs)
    header = (f"{args.method} B{args.init}Inc{args.inc}, {args.epochs} epoch(s) a task, "
              f"{args.per_class}/{args.test_per_class} images a class, real CIFAR-10; "
              f"{args.busy} busy processes; {len(os.sched_getaffinity(0))} CPUs; "
              f"torch {torch.__version__}, default threads {args.default_threads}")
    if args.json:
        print(json.dumps({"header": header, "results": results}))
    else:
        print(header)
        print(table(results, args.timeout_s))
        print(versus(results, args.timeout_s))
    return results


if __name__ == "__main__":
    main()
