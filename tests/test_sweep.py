"""Sweeps: planning, resuming, failures recorded, and surviving SIGKILL."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clbudget.budget.costs import StreamShape
from clbudget.experiment import sweep
from clbudget.experiment.store import ResultStore
from tests.helpers import tiny_spec

SHAPE = StreamShape(3, (3, 16, 16), 6)


def test_parse_budget_lists_and_seeds():
    assert sweep.parse_budget_list("1MiB:3MiB:3") == [str(2**20), str(2 * 2**20), str(3 * 2**20)]
    assert sweep.parse_budget_list("2000ex, 5000ex", image_shape=(3, 32, 32)) == ["2000ex", "5000ex"]
    assert sweep.parse_seeds("0-2") == [0, 1, 2] and sweep.parse_seeds("3,1") == [1, 3]
    for bad, msg in [("3MiB:1MiB:3", "LOW < HIGH"), ("1MiB:2MiB", "LOW:HIGH:COUNT"),
                     ("2 gallons", "cannot parse")]:
        with pytest.raises(ValueError, match=msg):
            sweep.parse_budget_list(bad)
    with pytest.raises(ValueError, match="integers"):
        sweep.parse_seeds("x")


def test_plan_adds_one_finetune_reference_per_seed():
    cells = sweep.plan(["replay", "finetune"], [0, 1], tiny_spec("replay"), SHAPE,
                       budgets=["5xconv2", "8xconv2"])
    refs = [c for c in cells if c.method == "finetune"]
    assert len(cells) == 2 * 2 * 2 and len(refs) == 4           # user finetune cells dedupe refs
    assert {c.key for c in cells} == {c.key for c in set(cells)}
    memo = sweep.plan(["der", "replay"], [0], tiny_spec("der"), StreamShape(10, (3, 32, 32), 100),
                      protocol="memo-auc")
    assert [c.backbone for c in memo if c.method == "der"] == \
        ["conv2", "resnet14", "resnet20", "resnet26", "resnet32"]


def test_sweep_resumes_and_records_failures(tmp_path):
    base = tiny_spec("replay")
    cells = sweep.plan(["replay", "finetune"], [0], base, SHAPE,
                       budgets=["5xconv2+300ex", "1KiB"])
    assert len(cells) == 4                                       # reference = finetune at 5xconv2
    store = ResultStore(tmp_path)
    first = sweep.run_cells(cells, store)
    assert first["failed"] == 2 and first["finished"] == 2     # 1 KiB is below every minimum
    reasons = [r["reason"] for r in store.rows("failed")]
    assert all("BudgetError" in r and "minimum" in r for r in reasons)
    again = sweep.run_cells(cells, store)
    assert again["skipped"] == len(cells) and again["finished"] == again["failed"] == 0
    assert len(store.rows()) == len(cells)


def test_sigkill_midway_then_rerun_gives_one_row_per_cell(tmp_path):
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "clbudget", "sweep", "--methods", "replay,finetune",
           "--budgets", "5xconv2+100ex,5xconv2+300ex", "--seeds", "0,1", "--dataset", "glyphs",
           "--num-classes", "4", "--init", "0", "--inc", "2", "--max-per-class", "20",
           "--max-test-per-class", "8", "--epochs", "1", "--backbone", "conv2",
           "--batch-size", "32", "--device", "cpu", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = out / "results.sqlite"
    deadline = time.time() + 240
    rows = 0
    while time.time() < deadline and proc.poll() is None:   # kill once a row has landed
        if db.exists():
            try:
                rows = sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            except sqlite3.Error:
                rows = 0
            if rows >= 1:
                break
        time.sleep(0.2)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed, f"the sweep ended before it could be killed: {proc.stderr.read()!r}"
    done = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    store = ResultStore(out)
    keys = [r["run_key"] for r in store.rows()]
    assert len(keys) == len(set(keys)) == 2 * 2 * 2 + 0      # replay+finetune x 2 budgets x 2 seeds
    assert all(r["status"] == "finished" for r in store.rows())
    print(f"faults injected: {int(killed)}, rows before kill: {rows}, rows lost: 0, duplicates: 0")
