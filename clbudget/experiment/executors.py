"""Executors: where the cells of a sweep run.  The driver alone writes the results store.

`run_cells` (sweep.py) decides which cells are still to run and hands them to an executor
with a `record(row)` callback that writes one row to the store.  An executor runs every cell
it is given and calls `record` exactly once per cell, in the driver process, as each cell
ends: one writer, one row per cell, whatever happens to the workers.

- `LocalExecutor` (default): the cells one after another in this process, each stream
  loaded once for the cells that share it.  Needs nothing beyond the project.
- `RayExecutor`: every cell is a Ray task (`num_cpus`, fractional `num_gpus`, `max_retries`)
  calling `run_cell(spec)` in a worker and returning the row through the object store; the
  driver collects rows as they finish (`ray.wait`).  Ray is an optional extra
  (`pip install "clbudget[ray]"`), imported only when this executor runs.

Failures.  A cell whose error is deterministic (bad input: ValueError, such as an infeasible
budget or a data folder a worker cannot see; BudgetExceeded; NonFiniteLoss) comes back at
once as a failed row.  Any other exception, and the death of the worker process or its node,
is retried by Ray up to `max_retries` times; after that the driver records the cell as
failed with Ray's reason (e.g. "WorkerCrashedError: The worker died unexpectedly ...").
Ctrl-C cancels every outstanding task and re-raises; the store holds the cells that had
finished, so rerunning the sweep runs only the missing ones.

Determinism.  A cell's result depends on its spec and seed only, with one caveat: on CPU,
float reductions depend on torch's intra-op thread count.  A Ray task runs with
`int(cpus_per_run)` threads, so its rows equal a local run's under
`torch.set_num_threads(int(cpus_per_run))` (tests/test_ray.py compares them).
"""
from __future__ import annotations

import copy
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Callable

from clbudget.train.loop import NonFiniteLoss
from clbudget.experiment.run import (BudgetExceeded, RunSpec, failed_row, load, run_experiment,
                                     stream_key)
from clbudget.optional import RAY_PIN, RayUnavailable, import_ray  # noqa: F401 (re-export)
from clbudget.progress import progress_bar
from clbudget.experiment.threads import torch_threads

EXECUTORS = ("local", "ray")
# errors that a rerun of the same spec reproduces: recorded at once, never retried
DETERMINISTIC = (ValueError, KeyError, BudgetExceeded, NonFiniteLoss)


def reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """Fail fast on a HOST:PORT nobody listens at (ray.init would wait for minutes)."""
    m = re.fullmatch(r"([^:/]+):(\d+)", address or "")
    if not m:
        return
    try:
        socket.create_connection((m[1], int(m[2])), timeout=timeout_s).close()
    except OSError as e:
        raise ValueError(f"--address {address}: no Ray cluster answers there ({e}); start one "
                         f"with `ray start --head` and give the address it prints, or use "
                         f"--address auto (a cluster started on this machine)") from None


def run_cell(spec: RunSpec, stream=None) -> dict:
    """One cell: its result row, or a failed row for a deterministic error (others raise)."""
    try:
        return run_experiment(spec, stream=stream)
    except DETERMINISTIC as e:
        return failed_row(spec, e)


class LocalExecutor:
    """The cells one after another in this process (cells sharing a stream back to back).

    cell_fn(spec, stream) -> row, or None for a cell it skipped (default: run_experiment);
    sweep.run_cells passes its CellGuard's (claims, checkpoints, out-of-memory retry)."""
    name = "local"

    def __init__(self, cell_fn: Callable | None = None, threads=None):
        self.cell_fn = cell_fn or (lambda spec, stream: run_experiment(spec, stream=stream))
        self.threads = threads   # torch threads: a count, "auto" or None (threads.py)

    def run(self, specs: list[RunSpec], record: Callable[[dict], None], *,
            progress: bool = False) -> None:
        with torch_threads(self.threads):   # chosen once, for every cell of the sweep
            self._run(specs, record, progress)

    def _run(self, specs, record, progress) -> None:
        streams: dict = {}
        bar = progress_bar(specs, desc="sweep", enabled=progress, unit="run")
        for spec in bar:
            bar.set_postfix(cell=f"{spec.method} {spec.budget} s{spec.seed}")
            try:
                key = stream_key(spec)
                if key not in streams:
                    streams.clear()  # keep one stream in memory
                    streams[key] = load(spec)
                row = self.cell_fn(spec, streams[key])
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001 - a failed cell is data, the sweep goes on
                row = failed_row(spec, e)
            if row is not None:
                record(row)


def _ray_cell(cell_fn, spec: RunSpec, stream, threads: int) -> dict:
    """The body of a Ray task (runs in the worker)."""
    import torch
    torch.set_num_threads(threads)   # Ray's OMP_NUM_THREADS is read once per worker process
    if stream is not None:
        # arrays that come out of the object store are read-only views of shared memory;
        # torch tensors over them would be too, so the worker takes its own copy
        stream = copy.deepcopy(stream)
    row = cell_fn(spec, stream)
    if isinstance(row.get("environment"), dict):
        row["environment"].update(executor="ray", node=socket.gethostname())
    return row


@dataclass
class RayExecutor:
    """Each cell a Ray task; the driver writes every row.

    address: None = `ray.init()`'s own choice (RAY_ADDRESS, else a cluster started with
      `ray start` on this machine, else a new local instance); "auto" = an existing cluster;
      "local" = a new local instance; "HOST:PORT" or "ray://HOST:10001".  Ignored if Ray is
      already initialised in this process (the executor then leaves it running).
    gpus_per_run: GPUs per cell (0.25: four cells share a GPU).  None: 1 if any cell may use
      a GPU (device auto/cuda) and the cluster has GPUs, else 0.
    cpus_per_run: CPUs per cell; also the torch thread count of the cell.
    max_retries: Ray retries of a cell after a worker death or a non-deterministic error.
    ship_data: load each distinct stream once in the driver and `ray.put` it, so workers need
      not see the data folder (they read it from the object store); otherwise each worker
      loads its stream from `data_root`, which must exist on every node.
    env_vars: environment of the workers (default: CLBUDGET_CACHE when set here).
    cell_fn: the function a worker calls, `cell_fn(spec, stream) -> row` (top level, so it is
      importable on the workers).
    """
    address: str | None = None
    gpus_per_run: float | None = None
    cpus_per_run: float = 1.0
    max_retries: int = 2
    ship_data: bool = False
    env_vars: dict | None = None
    cell_fn: Callable = run_cell
    poll_s: float = 0.5
    name: str = field(default="ray", init=False)

    def __post_init__(self):
        if not self.cpus_per_run > 0:
            raise ValueError(f"--cpus-per-run must be > 0, got {self.cpus_per_run}; e.g. 1")
        g = self.gpus_per_run
        if g is not None and (g < 0 or (g > 1 and g != int(g))):
            raise ValueError(f"--gpus-per-run must be a fraction in [0, 1] or a whole number "
                             f"(Ray's rule), got {g}; e.g. 0.25 or 1")
        if self.max_retries < 0:
            raise ValueError(f"--max-retries must be >= 0, got {self.max_retries}")
        if self.env_vars is None:
            cache = os.environ.get("CLBUDGET_CACHE")
            self.env_vars = {"CLBUDGET_CACHE": cache} if cache else {}

    # ------------------------------------------------------------------ resources
    def _gpus(self, ray, specs) -> float:
        for s in specs:
            if re.fullmatch(r"cuda:[1-9]\d*", s.device):
                raise ValueError(f"--device {s.device}: on Ray every run sees the GPU it was "
                                 f"given as cuda:0; use --device cuda (or auto)")
        total_gpus = ray.cluster_resources().get("GPU", 0)
        wants_gpu = any(s.device != "cpu" for s in specs)
        gpus = self.gpus_per_run
        if gpus is None:
            gpus = 1.0 if wants_gpu and total_gpus else 0.0
        if gpus > total_gpus:
            raise ValueError(f"--gpus-per-run {gpus:g}: the Ray cluster has {total_gpus:g} GPUs, "
                             f"so no cell could ever be scheduled; use --gpus-per-run 0 with "
                             f"--device cpu, or add GPU workers (`ray start --address ...`)")
        if gpus == 0 and any(s.device.startswith("cuda") for s in specs):
            raise ValueError("--device cuda with --gpus-per-run 0: Ray hides the GPUs from a "
                             "task that asks for none; give --gpus-per-run (e.g. 0.25) or "
                             "--device cpu")
        cpus = ray.cluster_resources().get("CPU", 0)
        if self.cpus_per_run > cpus:
            raise ValueError(f"--cpus-per-run {self.cpus_per_run:g}: the Ray cluster has "
                             f"{cpus:g} CPUs; use at most {cpus:g}")
        return gpus

    # ------------------------------------------------------------------ the driver loop
    def run(self, specs: list[RunSpec], record: Callable[[dict], None], *,
            progress: bool = False) -> None:
        ray = import_ray()
        if not specs:
            return
        started = not ray.is_initialized()
        if started:
            reachable(self.address)
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": self.env_vars} if self.env_vars else None)
            except (ConnectionError, RuntimeError) as e:
                raise ValueError(
                    f"cannot start or reach Ray at --address {self.address or '(default)'}: "
                    f"{str(e).strip().splitlines()[0]}; give the address `ray start --head` "
                    f"printed (HEAD_IP:6379), auto for a cluster started on this machine, or "
                    f"local for a new instance here") from None
        pending: dict = {}
        bar = progress_bar(None, desc="sweep (ray)", enabled=progress, unit="run",
                           total=len(specs))
        try:
            options = dict(num_cpus=self.cpus_per_run, num_gpus=self._gpus(ray, specs),
                           max_retries=self.max_retries, retry_exceptions=True)
            if self.env_vars:
                options["runtime_env"] = {"env_vars": self.env_vars}
            task = ray.remote(_ray_cell).options(**options)
            threads = max(1, int(self.cpus_per_run))
            for spec, stream in self._inputs(ray, specs, record, bar):
                pending[task.remote(self.cell_fn, spec, stream, threads)] = spec
            counts = {"finished": 0, "failed": 0}
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=len(pending),
                                    timeout=self.poll_s, fetch_local=False)
                for ref in ready:
                    spec = pending.pop(ref)
                    try:
                        row = ray.get(ref)
                    except ray.exceptions.RayError as e:
                        row = self._failed(spec, e)
                    record(row)
                    counts[row["status"]] = counts.get(row["status"], 0) + 1
                    bar.update(1)
                    bar.set_postfix(last=f"{spec.method} {spec.budget} s{spec.seed}", **counts)
        except BaseException:   # Ctrl-C (KeyboardInterrupt) or a failing store: stop the rest
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            bar.close()
            if started:
                ray.shutdown()

    def _inputs(self, ray, specs, record, bar):
        """(spec, stream or None) per cell; with ship_data each stream is put once."""
        shipped: dict = {}
        for spec in specs:
            if not self.ship_data:
                yield spec, None
                continue
            key = stream_key(spec)
            if key not in shipped:
                try:
                    shipped[key] = ray.put(load(spec))
                except Exception as e:  # noqa: BLE001 - the cells of this stream fail, others go on
                    shipped[key] = e
            if isinstance(shipped[key], Exception):
                try:
                    raise shipped[key]
                except Exception as e:  # noqa: BLE001 - for failed_row's traceback
                    record(failed_row(spec, e))
                bar.update(1)
                continue
            yield spec, shipped[key]

    def _failed(self, spec, error) -> dict:
        """The failed row of a cell Ray gave up on (after its retries)."""
        cause = getattr(error, "cause", None) or error
        first = (str(cause).strip().splitlines() or [""])[0]
        row = failed_row(spec, error)
        row["reason"] = (f"{type(cause).__name__}: {first} (on Ray, after "
                         f"{self.max_retries} retries)")
        row["traceback"] = str(error)[-4000:]
        return row


def make_executor(name: str = "local", threads=None, **options):
    """"local" (threads: its torch thread count, threads.py) or "ray" (options: RayExecutor's
    fields; a cell's threads are its cpus_per_run); unknown names refused."""
    if name == "local":
        if options:
            raise ValueError(f"{', '.join(sorted(options))} apply to --executor ray only")
        return LocalExecutor(threads=threads)
    if name == "ray":
        if threads not in (None, "auto"):
            raise ValueError(f"--threads {threads} applies to --executor local; on Ray a "
                             f"cell's torch threads are its --cpus-per-run (e.g. "
                             f"--cpus-per-run {threads})")
        return RayExecutor(**options)
    raise ValueError(f"unknown executor {name!r}; use one of {', '.join(EXECUTORS)}")


def with_bmc_executor(specs: list[RunSpec], executor: str) -> list[RunSpec]:
    """Set the `executor` option of every bmc cell (experts as Ray tasks with "ray")."""
    import dataclasses
    if executor == "local":
        return list(specs)
    if executor not in EXECUTORS:
        raise ValueError(f"--bmc-executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    if not any(s.method == "bmc" for s in specs):
        raise ValueError(f"--bmc-executor {executor} applies to bmc runs; this has none "
                         f"(methods: {', '.join(sorted({s.method for s in specs}))})")
    out = []
    for s in specs:
        if s.method == "bmc":
            options = tuple((k, v) for k, v in s.method_options if k != "executor")
            s = dataclasses.replace(s, method_options=options + (("executor", executor),))
        out.append(s)
    return out
