"""The torch thread count of a run (experiment/threads.py): the rule by hand, the command line
and the local executor applying it, and the OpenMP wait policy set before torch loads.

Why it matters is measured in BENCHMARKS.md "Runs on a busy machine" (`python -m bench.loaded`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clbudget.experiment import threads
from clbudget.experiment.executors import make_executor
from clbudget.experiment.store import ResultStore
from clbudget.experiment.threads import (choose_threads, cpu_quota, parse_threads,
                                         quiet_openmp_waits)
from tests.helpers import cli

ROOT = Path(__file__).resolve().parents[1]
TINY = ("--glyphs", "num_classes=4", "--glyphs", "train_per_class=10", "--glyphs",
        "test_per_class=4", "--glyphs", "image_size=16", "--init", "2", "--inc", "2",
        "--backbone", "conv2", "--epochs", "1", "--device", "cpu")


# ------------------------------------------------------------------ the rule, by hand

@pytest.mark.parametrize("cpus, load, expected", [
    (2, 0.0, 2),     # idle: one thread per CPU
    (2, 0.49, 2),    # 2 - 0.49 = 1.51 CPUs idle -> 2
    (2, 0.51, 1),    # 1.49 -> 1
    (2, 1.0, 1),
    (2, 4.0, 1),     # busier than the machine: never below 1
    (2, 9.7, 1),
    (16, 3.2, 13),   # 12.8 idle -> 13
    (16, 0.0, 16),
    (1, 0.0, 1),
    (4, -1.0, 4),    # no load figure below 0 counts as idle, never above the CPUs
])
def test_auto_takes_the_cpus_the_load_leaves_idle(cpus, load, expected):
    choice = choose_threads(None, cpus=cpus, load=load)
    assert choice.threads == expected
    assert choice.reason.startswith("auto")


def test_an_explicit_count_wins_over_variables_and_load():
    env = {"CLBUDGET_THREADS": "3", "OMP_NUM_THREADS": "1"}
    assert choose_threads(4, cpus=2, load=9.0, environ=env).threads == 4     # above the CPUs
    assert choose_threads("2", cpus=2, load=9.0, environ=env).threads == 2
    assert choose_threads(None, cpus=2, load=0.0, environ=env).threads == 3   # $CLBUDGET_THREADS
    assert choose_threads(None, cpus=2, load=0.0,
                          environ={"OMP_NUM_THREADS": "1"}).threads == 1
    # `--threads auto` is the rule itself, whatever the variables say
    assert choose_threads("auto", cpus=2, load=0.0, environ=env).threads == 2
    assert choose_threads(None, cpus=2, load=0.0, environ={"CLBUDGET_THREADS": "auto"}
                          ).threads == 2


@pytest.mark.parametrize("text, nearest", [("0", "1"), ("-3", "1"), ("2.6", "3"),
                                           ("1.2", "1"), ("many", "auto"), ("nan", "auto"),
                                           ("inf", "auto")])
def test_bad_counts_name_the_nearest_valid_value(text, nearest):
    with pytest.raises(ValueError, match=rf"got '{text}'; nearest valid value: {nearest}$"):
        parse_threads(text)


def test_a_bad_variable_is_named():
    with pytest.raises(ValueError, match=r"\$CLBUDGET_THREADS must be .* got '0'; nearest "
                                         r"valid value: 1"):
        choose_threads(None, cpus=2, load=0.0, environ={"CLBUDGET_THREADS": "0"})


def test_good_counts_parse():
    assert [parse_threads(t) for t in ("1", " 2 ", "16", "auto", "AUTO", "", None)] == \
        [1, 2, 16, None, None, None, None]


@pytest.mark.parametrize("text, cpus", [("max 100000", None), ("150000 100000", 1.5),
                                        ("200000 100000", 2.0), ("50000 100000", 0.5),
                                        ("", None), ("x y", None)])
def test_cgroup_quota_by_hand(text, cpus):
    assert cpu_quota(text) == cpus


def test_quota_caps_the_affinity(tmp_path, monkeypatch):
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")           # 1.5 CPUs: one whole thread
    monkeypatch.setattr(threads, "CGROUP_CPU_MAX", str(quota))
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert threads.available_cpus() == 1
    quota.write_text("max 100000\n")
    assert threads.available_cpus() == 4


def test_the_wait_policy_is_set_only_where_it_can_act():
    env = {}
    assert quiet_openmp_waits(env, torch_loaded=False) and env == {"OMP_WAIT_POLICY": "PASSIVE"}
    for given in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "300000"}):
        env = dict(given)
        assert not quiet_openmp_waits(env, torch_loaded=False) and env == given  # the user's
    env = {}
    assert not quiet_openmp_waits(env, torch_loaded=True) and env == {}  # libgomp read it


def test_the_command_line_sets_the_wait_policy_before_torch_loads():
    """quiet_openmp_waits refuses once torch is in sys.modules, so PASSIVE here proves the
    CLI set it before torch (and its libgomp) loaded."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["PYTHONPATH"] = str(ROOT)
    code = ("import os, sys; import clbudget.cli; "
            "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout.split()
    assert out == ["PASSIVE", "True"]


# ------------------------------------------------------------------ applied by run and sweep

def _row(capsys, *extra):
    code, out, err = cli(capsys, "run", "--method", "finetune", "--budget", "2xconv2", *TINY,
                         "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def test_run_uses_threads_and_records_them(capsys):
    assert torch.get_num_threads() == 1            # the session's (conftest)
    row = _row(capsys, "--threads", "2")
    assert row["environment"]["torch_threads"] == 2
    assert row["environment"]["device_name"].endswith(", 2 threads)")
    assert torch.get_num_threads() == 1            # restored for the caller


def test_run_applies_the_auto_rule(capsys, monkeypatch):
    monkeypatch.delenv("CLBUDGET_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    monkeypatch.setattr(threads, "machine_load", lambda: 0.0)
    assert _row(capsys)["environment"]["torch_threads"] == 2       # idle: both CPUs
    monkeypatch.setattr(threads, "machine_load", lambda: 5.0)
    torch.set_num_threads(2)                                        # as torch starts
    try:
        row = _row(capsys)
    finally:
        torch.set_num_threads(1)
    assert row["environment"]["torch_threads"] == 1                 # busy: one
    assert row["environment"]["device_name"].endswith(", 1 thread)")


def test_sweep_cells_use_threads(capsys, tmp_path):
    out = tmp_path / "sweep"
    code, _, err = cli(capsys, "sweep", "--methods", "finetune", "--budgets", "2xconv2", *TINY,
                       "--out", str(out), "--threads", "2")
    assert code == 0, err
    rows = ResultStore(out).rows()
    assert len(rows) == 1 and rows[0]["status"] == "finished", rows
    assert rows[0]["environment"]["torch_threads"] == 2
    assert torch.get_num_threads() == 1


def test_bad_threads_on_the_command_line(capsys):
    code, _, err = cli(capsys, "run", "--method", "finetune", "--budget", "2xconv2", *TINY,
                       "--threads", "0")
    assert code == 2 and "nearest valid value: 1" in err


def test_threads_on_ray_point_to_cpus_per_run():
    with pytest.raises(ValueError, match="--cpus-per-run 2"):
        make_executor("ray", threads=2)
    assert make_executor("local", threads=3).threads == 3


def test_the_bench_settings_are_what_they_say():
    """bench/loaded.py: "old" is torch's default count with libgomp's default spin, "new"
    the defaults now; the caller's thread variables never leak into either."""
    from bench.loaded import setting_env
    caller = {"CLBUDGET_THREADS": "1", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
              "GOMP_SPINCOUNT": "7", "HOME": "/h"}
    assert setting_env("old", 2, caller) == ({"HOME": "/h", "GOMP_SPINCOUNT": "300000"},
                                             ["--threads", "2"])
    assert setting_env("new", 2, caller) == ({"HOME": "/h"}, [])
    assert setting_env("passive", 4, caller) == ({"HOME": "/h"}, ["--threads", "4"])
    assert setting_env("one", 4, caller) == ({"HOME": "/h"}, ["--threads", "1"])
    with pytest.raises(ValueError, match="unknown setting 'olds'"):
        setting_env("olds", 2, caller)
