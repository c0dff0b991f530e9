"""How many torch threads a CPU run uses, chosen once where a run or sweep starts.

Why it matters.  torch splits each CPU op over its intra-op threads (OpenMP, libgomp), and
every op ends at a barrier where the threads wait for each other.  libgomp's default wait
spins for about 300,000 iterations (a few ms) before sleeping.  On a machine whose cores
other processes also want, a thread that finished its share spins at the barrier while the
sibling it waits for is descheduled, and the spinning takes the CPU that sibling needs: every
op pays the scheduler's time slice, and a run slows down far more than its share of the
cores.  BENCHMARKS.md "Runs on a busy machine" measures it (`python -m bench.loaded`, and
`perf`: 79% of a 2-thread run's CPU time in libgomp at a load average of 5.5 on 2 cores).

The fix, two parts:
- `choose_threads`: the thread count.  An explicit count wins (`--threads N`, then
  $CLBUDGET_THREADS, then $OMP_NUM_THREADS); otherwise ("auto") the CPUs this process may
  use (`os.sched_getaffinity`, capped by a cgroup CPU quota) less the machine's 1-minute load
  average, rounded, at least 1.  One thread runs every op inline: no barrier, nothing to spin.
- `quiet_openmp_waits`: OMP_WAIT_POLICY=PASSIVE unless the user set OMP_WAIT_POLICY or
  GOMP_SPINCOUNT, so threads that wait sleep instead of spinning.  It covers load that
  arrives after the count was chosen (the load average lags by about a minute).  libgomp
  reads these variables once, when torch loads it, so this must run before `import torch`:
  the command line calls it first thing (clbudget/cli/__init__.py); a library user sets the
  variable in the shell.

Rows record the count a run used (`environment()["torch_threads"]` and the device name).
Float reductions on the CPU depend on the thread count, so two rows are comparable
bit-for-bit only at the same count; `--threads N` reproduces a row measured at N threads,
even beyond this machine's CPUs.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
from dataclasses import dataclass

THREADS_ENV = "CLBUDGET_THREADS"
CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str      # e.g. "auto: 2 CPUs, load 3.41 -> 1"


def parse_threads(value, source: str = "--threads") -> int | None:
    """A thread count from a flag or variable: a positive whole number, or None for "auto"
    (also None itself and the empty string).  Anything else is a ValueError naming the
    nearest valid value."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("", "auto"):
        return None
    if text.isdigit() and int(text) >= 1:
        return int(text)
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    nearest = max(1, math.floor(number + 0.5)) if math.isfinite(number) else "auto"
    where = f"{source} " if source else ""
    raise ValueError(f"{where}must be a whole number of threads (at least 1) or auto, got "
                     f"{value!r}; nearest valid value: {nearest}")


def cpu_quota(text: str) -> float | None:
    """CPUs allowed by a cgroup v2 `cpu.max` line ("QUOTA PERIOD" or "max PERIOD")."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def available_cpus() -> int:
    """The CPUs this process may run on (affinity), capped by a cgroup CPU quota; >= 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):   # not Linux
        cpus = os.cpu_count() or 1
    try:
        with open(CGROUP_CPU_MAX) as f:
            quota = cpu_quota(f.read())
    except OSError:
        quota = None
    if quota is not None:
        cpus = min(cpus, math.floor(quota))
    return max(1, cpus)


def machine_load() -> float:
    """The 1-minute load average (runnable processes), 0.0 where there is none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def choose_threads(requested=None, *, cpus: int, load: float,
                   environ=None) -> ThreadChoice:
    """The torch thread count of a run; pure (the caller measures `cpus` and `load`).

    requested: `--threads` (a count, "auto" or None).  None: $CLBUDGET_THREADS, then
    $OMP_NUM_THREADS from `environ` (default: none), then auto; "auto" skips them.
    Auto: round(cpus - load), clamped to [1, cpus]: a thread for every CPU the rest of the
    machine leaves idle.
    """
    environ = {} if environ is None else environ
    explicit = parse_threads(requested)
    if explicit is not None:
        return ThreadChoice(explicit, f"--threads {explicit}")
    if requested is None or str(requested).strip() == "":   # `--threads auto` skips these
        for name in (THREADS_ENV, "OMP_NUM_THREADS"):
            given = parse_threads(environ.get(name), f"${name}")
            if given is not None:
                return ThreadChoice(given, f"${name}={given}")
    if cpus < 1:
        raise ValueError(f"cpus must be at least 1, got {cpus}")
    free = math.floor(cpus - max(0.0, load) + 0.5)
    threads = min(cpus, max(1, free))
    return ThreadChoice(threads, f"auto: {cpus} CPUs, load {load:.2f} -> {threads}")


def current_choice(requested=None) -> ThreadChoice:
    """`choose_threads` with this process's CPUs, the machine's load and os.environ."""
    return choose_threads(requested, cpus=available_cpus(), load=machine_load(),
                          environ=os.environ)


@contextlib.contextmanager
def torch_threads(requested=None):
    """Run the body at the chosen thread count (yields the ThreadChoice); the process's
    previous count is restored afterwards, so in-process callers (tests) keep theirs."""
    import torch
    choice = current_choice(requested)
    before = torch.get_num_threads()
    torch.set_num_threads(choice.threads)
    try:
        yield choice
    finally:
        torch.set_num_threads(before)


def quiet_openmp_waits(environ=None, torch_loaded: bool | None = None) -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set, or torch
    (hence libgomp, which reads them once) is already loaded.  True if it set it."""
    environ = os.environ if environ is None else environ
    torch_loaded = "torch" in sys.modules if torch_loaded is None else torch_loaded
    if torch_loaded or "OMP_WAIT_POLICY" in environ or "GOMP_SPINCOUNT" in environ:
        return False
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
