"""Fault injection through real processes: SIGKILL at random points, NaN losses, CUDA out of
memory, a full disk, two sweeps writing one store at once.  Afterwards no finished row is
lost or changed, no run has two rows, and killed runs resumed from their checkpoints.

Bounded: a seeded RNG picks the kill times, at most MAX_KILLS kills, every process has a
timeout.  The module prints one line of counts when it ends:
"faults injected: N, runs resumed: R, rows lost: 0, duplicates: 0".
"""
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from clbudget.experiment.run import run_experiment
from clbudget.experiment.store import ResultStore
from tests.helpers import tiny_spec, tiny_stream

ROOT = Path(__file__).resolve().parents[1]
MAX_KILLS = 3
TIMEOUT_S = 120
GLYPHS = ["--glyphs", "num_classes=6", "--glyphs", "train_per_class=40", "--glyphs",
          "test_per_class=12", "--glyphs", "image_size=16", "--glyphs", "seed=0"]
TINY = ["--dataset", "glyphs", "--init", "0", "--inc", "2", "--num-classes", "6", *GLYPHS,
        "--backbone", "conv2", "--batch-size", "32", "--device", "cpu"]
SWEEP = ["sweep", "--methods", "finetune,replay,lwf", "--budgets",
         "5xconv2+100ex,5xconv2+300ex", "--seeds", "0", *TINY, "--epochs", "2", "--json"]

# a process that injects one fault into the real command line, then runs it
DRIVER = '''
import sqlite3, sys
import torch
from clbudget.train.loop import Trainer
from clbudget.experiment.store import ResultStore
fault, argv = sys.argv[1], sys.argv[2:]
if fault == "oom":            # every training batch larger than 16 runs out of CUDA memory
    real_fit = Trainer.fit
    def fit(self, params, x, y, step, cfg, *a, **k):
        def step_or_oom(xb, yb, idx):
            if len(xb) > 16:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
            return step(xb, yb, idx)
        return real_fit(self, params, x, y, step_or_oom, cfg, *a, **k)
    Trainer.fit = fit
elif fault == "disk-full":    # the disk fills up in the middle of writing a row
    class FullDisk:
        def __init__(self, db):
            self.db = db
        def execute(self, sql, *args):
            cur = self.db.execute(sql, *args)
            if sql.startswith("INSERT INTO runs"):
                raise sqlite3.OperationalError("database or disk is full")
            return cur
        def __getattr__(self, name):
            return getattr(self.db, name)
    real_init = ResultStore.__init__
    def init(self, path):
        real_init(self, path)
        self.db = FullDisk(self.db)
    ResultStore.__init__ = init
from clbudget.cli import main
sys.exit(main(argv))
'''


@pytest.fixture(scope="module")
def tally(request):
    counts = {"faults": 0, "resumed": 0, "lost": 0, "duplicates": 0}
    yield counts
    line = (f"faults injected: {counts['faults']}, runs resumed: {counts['resumed']}, "
            f"rows lost: {counts['lost']}, duplicates: {counts['duplicates']}")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\n" + line)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread here and in every child (OMP_NUM_THREADS=1): fast on a busy CPU, and
    the in-process reference computes at the children's thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def clbudget(*argv, fault=None, driver=None):
    """The command line, or the fault-injecting driver, as a child process (not waited for)."""
    cmd = ([sys.executable, "-m", "clbudget", *argv] if fault is None
           else [sys.executable, str(driver), fault, *argv])
    return subprocess.Popen(cmd, env=env(), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc, timeout=TIMEOUT_S):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"process ran past {timeout} s: {err[-2000:]}")
    return proc.returncode, out, err


def kill(proc) -> bool:
    """SIGKILL if still running; True if it was."""
    alive = proc.poll() is None
    if alive:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    return alive


def stored(path) -> dict[str, tuple[str, str]]:
    """run_key -> (status, row text), read straight from SQLite; checks its integrity and
    that no key has two rows."""
    if not Path(path).exists():
        return {}
    db = sqlite3.connect(path, timeout=60)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        dups = db.execute("SELECT COUNT(*) FROM (SELECT run_key FROM runs GROUP BY run_key "
                          "HAVING COUNT(*) > 1)").fetchone()[0]
        assert dups == 0
        return {k: (s, r) for k, s, r in db.execute("SELECT run_key, status, row FROM runs")}
    except sqlite3.OperationalError:   # killed before the schema was created
        return {}
    finally:
        db.close()


def lost_since(before: dict, now: dict) -> int:
    """Finished rows of `before` missing or changed in `now`."""
    return sum(1 for k, (s, r) in before.items() if s == "finished" and now.get(k) != (s, r))


def one_line_error(code, err, expected):
    assert code == expected, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def progress(out: Path) -> tuple:
    """What a sweep has done so far: rows stored, newest checkpoint written."""
    saved = [p.stat().st_mtime_ns for p in out.glob("checkpoints/*/checkpoint.pt")]
    return len(stored(out / "results.sqlite")), max(saved, default=0)


def test_sweep_killed_at_random_points_loses_nothing(tmp_path, tally):
    """Each round starts the sweep, waits for its next row or checkpoint, lets it run a random
    0-0.6 s more (seeded) and SIGKILLs it; then the rows are compared with the last round's."""
    out = tmp_path / "sweep"
    db = out / "results.sqlite"
    rng = random.Random(1993)
    seen: dict = {}
    kills = 0
    for _ in range(MAX_KILLS):
        start = progress(out)
        proc = clbudget(*SWEEP, "--out", str(out))
        deadline = time.time() + 30
        while proc.poll() is None and progress(out) == start and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.6))
        killed = kill(proc)
        kills += killed
        now = stored(db)
        assert lost_since(seen, now) == 0
        seen = now
        if not killed:
            break
    code, text, err = finish(clbudget(*SWEEP, "--out", str(out)))
    assert code == 0, err
    final = stored(db)
    lost = lost_since(seen, final)
    rows = [json.loads(r) for _, r in final.values()]
    assert json.loads(text)["cells"] == len(final) == 6
    assert all(r["status"] == "finished" for r in rows) and lost == 0
    assert not list((out / "checkpoints").glob("*/checkpoint.pt"))   # cleaned once stored
    tally["faults"] += kills
    tally["resumed"] += sum(r["resumed_tasks"] > 0 for r in rows)
    tally["lost"] += lost
    assert kills >= 1


def test_killed_run_resumes_from_its_checkpoint_with_the_same_result(tmp_path, tally):
    out = tmp_path / "store"
    argv = ["run", "--method", "replay", "--budget", "5xconv2+300ex", *TINY, "--epochs", "3",
            "--out", str(out), "--json"]
    proc = clbudget(*argv)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:   # kill once task 0 is saved
        if list(out.glob("checkpoints/*/checkpoint.pt")):
            break
        time.sleep(0.02)
    assert kill(proc), "the run ended before it could be killed"
    assert stored(out / "results.sqlite") == {}
    code, text, err = finish(clbudget(*argv))
    assert code == 0, err
    row = json.loads(text)
    assert row["resumed_tasks"] >= 1
    reference = run_experiment(tiny_spec("replay", epochs=3), stream=tiny_stream())
    assert row["run_key"] == reference["run_key"]
    assert row["accuracy"] == reference["accuracy"] and row["losses"] == reference["losses"]
    assert list(stored(out / "results.sqlite")) == [row["run_key"]]
    tally["faults"] += 1
    tally["resumed"] += 1


def test_two_sweeps_into_one_store_train_each_cell_once(tmp_path, tally):
    out = tmp_path / "sweep"
    procs = [clbudget(*SWEEP, "--epochs", "1", "--out", str(out)) for _ in range(2)]
    results = [finish(p) for p in procs]
    for code, _, err in results:
        assert code == 0, err
    summaries = [json.loads(text) for _, text, _ in results]
    final = stored(out / "results.sqlite")
    assert len(final) == 6 and all(s == "finished" for s, _ in final.values())
    trained = sum(s["finished"] for s in summaries)
    assert trained == 6, summaries                 # no cell trained by both sweeps
    tally["duplicates"] += trained - 6


def test_nan_loss_stops_the_run_with_a_recorded_reason(tmp_path, tally):
    out = tmp_path / "store"
    code, _, err = finish(clbudget("run", "--method", "finetune", "--budget", "5xconv2",
                                   *TINY, "--epochs", "1", "--lr", "1e30", "--out", str(out)))
    assert "NonFiniteLoss" in one_line_error(code, err, 1)
    [(status, text)] = stored(out / "results.sqlite").values()
    assert status == "failed" and "loss became nan" in json.loads(text)["reason"]
    tally["faults"] += 1


def test_out_of_memory_recorded_then_retried_at_half_the_batch(tmp_path, tally):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    out = tmp_path / "store"
    argv = ["run", "--method", "replay", "--budget", "5xconv2+300ex", *TINY, "--epochs", "1",
            "--out", str(out), "--json"]
    code, _, err = finish(clbudget(*argv, fault="oom", driver=driver))
    assert "CUDA out of memory at batch size 32" in one_line_error(code, err, 1)
    [(status, text)] = stored(out / "results.sqlite").values()
    assert status == "failed" and "batch size 32" in json.loads(text)["reason"]
    code, text, err = finish(clbudget(*argv, "--retry-smaller-batch", fault="oom",
                                      driver=driver))
    assert code == 0, err
    row = json.loads(text)
    assert row["retry"]["batch_size"] == 16 and row["spec"]["batch_size"] == 16
    assert [s for s, _ in stored(out / "results.sqlite").values()] == ["finished"]
    tally["faults"] += 2


def test_full_disk_keeps_the_store_consistent_and_the_rerun_completes(tmp_path, tally):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    out = tmp_path / "sweep"
    earlier = {"run_key": "0123456789abcdef", "status": "finished", "method": "finetune",
               "accuracy": {"last": 0.5}}
    ResultStore(out).add(earlier)                  # a row from an earlier sweep
    before = stored(out / "results.sqlite")
    two = ["sweep", "--methods", "finetune", "--budgets", "5xconv2+300ex", *TINY,
           "--epochs", "1", "--out", str(out), "--json"]
    code, _, err = finish(clbudget(*two, fault="disk-full", driver=driver))
    assert "database or disk is full" in one_line_error(code, err, 1)
    after = stored(out / "results.sqlite")
    assert after == before                          # no partial row, earlier rows intact
    code, text, err = finish(clbudget(*two))
    assert code == 0 and json.loads(text)["finished"] == 1, err
    final = stored(out / "results.sqlite")
    [new] = [json.loads(r) for k, (_, r) in final.items() if k not in before]
    assert new["resumed_tasks"] == 3               # its checkpoint outlived the failed write
    lost = lost_since(before, final)
    assert lost == 0
    tally["faults"] += 1
    tally["resumed"] += 1
    tally["lost"] += lost
