"""Sweeps and BMC experts on Ray: same results as in-process, one row per cell through worker
deaths and Ctrl-C, communication bytes = the bytes sent.  One local Ray instance (2 CPUs) for
the module; every test runs tiny glyph cells (seconds).

CPU float results depend on torch's thread count, and a Ray cell runs with `cpus_per_run`
(here 1) threads, so the in-process references run under torch.set_num_threads(1).
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from clbudget.budget.costs import StreamShape
from clbudget.cli import main
from clbudget.experiment import sweep
from clbudget.experiment.executors import (RayExecutor, RayUnavailable, make_executor,
                                           reachable, run_cell, with_bmc_executor)
from clbudget.experiment.run import run_experiment
from clbudget.experiment.store import ResultStore
from tests.helpers import tiny_spec

try:   # a failure, not a skip, where Ray is missing
    import ray
except ImportError as e:
    raise ImportError("Ray is the optional extra clbudget[ray], installed by the test extra: "
                      "./setup.sh (pip install -e '.[test]')") from e

SHAPE = StreamShape(3, (3, 16, 16), 6)
# what a run computes (not where or how fast): equal across executors for the same seed
RESULT_KEYS = ("status", "method", "spec", "budget_bytes", "allocation", "predicted_ledger",
               "ledger", "ledger_memo", "accuracy", "losses", "class_order", "increments")


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False,
             runtime_env={"env_vars": {"CLBUDGET_CACHE": os.environ["CLBUDGET_CACHE"]}})
    yield
    ray.shutdown()


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def cells(budgets=("5xconv2+300ex",), seeds=(0, 1)):
    return sweep.plan(["replay", "finetune"], list(seeds), tiny_spec("replay"), SHAPE,
                      budgets=list(budgets))


def result(row: dict) -> dict:
    if row["status"] == "failed":
        return {"status": "failed", "reason": row["reason"]}
    return {k: row[k] for k in RESULT_KEYS}


def test_ray_sweep_equals_local_sweep(tmp_path, ray_cluster, one_thread):
    specs = cells(budgets=("5xconv2+300ex", "1KiB"))          # 1 KiB: below every minimum
    assert len(specs) == 8
    local, remote = ResultStore(tmp_path / "local"), ResultStore(tmp_path / "ray")
    a = sweep.run_cells(specs, local)
    b = sweep.run_cells(specs, remote, executor=RayExecutor(ship_data=True))
    assert a["finished"] == b["finished"] == 4 and a["failed"] == b["failed"] == 4
    rows_a = {r["run_key"]: r for r in local.rows()}
    rows_b = {r["run_key"]: r for r in remote.rows()}
    assert len(remote.rows()) == len(rows_b) == len(specs)        # one row per cell
    assert {k: result(r) for k, r in rows_a.items()} == {k: result(r) for k, r in rows_b.items()}
    assert all(r["environment"]["executor"] == "ray" for r in rows_b.values()
               if r["status"] == "finished")
    again = sweep.run_cells(specs, remote, executor=RayExecutor())   # resumes: nothing to run
    assert again["skipped"] == len(specs) and len(remote.rows()) == len(specs)


def crash_worker(marker_dir: str, once: str, always: str):
    """A cell function whose worker process dies: on cell `once` the first time (a marker
    file remembers it), on cell `always` every time."""
    def cell(spec, stream=None):
        marker = Path(marker_dir) / spec.key
        if spec.key == always or (spec.key == once and not marker.exists()):
            marker.touch()
            os._exit(1)                                  # the worker dies mid-sweep
        return run_cell(spec, stream)
    return cell


def test_worker_deaths_are_retried_then_recorded(tmp_path, ray_cluster):
    specs = cells()
    once, always = specs[0].key, specs[1].key
    store = ResultStore(tmp_path / "store")
    executor = RayExecutor(max_retries=1, cell_fn=crash_worker(str(tmp_path), once, always))
    summary = sweep.run_cells(specs, store, executor=executor)
    rows = {r["run_key"]: r for r in store.rows()}
    assert len(store.rows()) == len(rows) == len(specs) == 4       # one row per cell
    assert (tmp_path / once).exists() and rows[once]["status"] == "finished"  # died, retried
    assert rows[always]["status"] == "failed"
    assert rows[always]["reason"].startswith("WorkerCrashedError")
    assert "after 1 retries" in rows[always]["reason"]
    assert summary["finished"] == 3 and summary["failed"] == 1
    # a rerun keeps the failed row; --retry-failed runs it again (healthy workers now)
    assert sweep.run_cells(specs, store, executor=RayExecutor())["skipped"] == 4
    retry = sweep.run_cells(specs, store, retry_failed=True, executor=RayExecutor())
    assert retry["finished"] == 1 and retry["skipped"] == 3
    assert len(store.rows()) == 4 and all(r["status"] == "finished" for r in store.rows())


def slow_cell(pid_dir: str, slow: str):
    """Cell `slow` records its worker's pid and then hangs; others run normally."""
    def cell(spec, stream=None):
        if spec.key == slow:
            (Path(pid_dir) / "slow.pid").write_text(str(os.getpid()))
            time.sleep(120)
        return run_cell(spec, stream)
    return cell


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_cancels_outstanding_cells_and_a_rerun_resumes(tmp_path, ray_cluster):
    specs = cells()
    slow = specs[-1].key
    pid_file = tmp_path / "slow.pid"

    def interrupt(row):           # Ctrl-C once a row is stored and the slow cell is running
        deadline = time.time() + 60
        while not pid_file.exists() and time.time() < deadline:
            time.sleep(0.1)
        raise KeyboardInterrupt

    store = ResultStore(tmp_path / "store")
    with pytest.raises(KeyboardInterrupt):
        sweep.run_cells(specs, store, on_row=interrupt,
                        executor=RayExecutor(cell_fn=slow_cell(str(tmp_path), slow)))
    assert 1 <= len(store.rows()) < len(specs)
    pid = int(pid_file.read_text())
    deadline = time.time() + 30
    while alive(pid) and time.time() < deadline:          # cancelled: its worker is gone
        time.sleep(0.2)
    assert not alive(pid), "the cancelled cell's worker is still running"
    before = len(store.rows())
    resumed = sweep.run_cells(specs, store, executor=RayExecutor())
    assert resumed["skipped"] == before and resumed["finished"] == len(specs) - before
    keys = [r["run_key"] for r in store.rows()]
    assert len(keys) == len(set(keys)) == len(specs)


def test_cli_sweep_on_ray_and_its_errors(tmp_path, ray_cluster, capsys):
    args = ["sweep", "--methods", "replay", "--budgets", "5xconv2+300ex", "--seeds", "0",
            "--dataset", "glyphs", "--glyphs", "num_classes=6", "--glyphs", "train_per_class=40",
            "--glyphs", "test_per_class=12", "--glyphs", "image_size=16", "--init", "0",
            "--inc", "2", "--epochs", "1", "--backbone", "conv2", "--batch-size", "32",
            "--device", "cpu", "--out", str(tmp_path / "cli")]
    assert main(args + ["--executor", "ray", "--cpus-per-run", "1", "--max-retries", "0",
                        "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["finished"] == summary["cells"] == 2                 # replay + reference
    rows = ResultStore(tmp_path / "cli").rows()
    assert [r["environment"]["executor"] for r in rows] == ["ray", "ray"]
    for i, (extra, message) in enumerate([
            (["--gpus-per-run", "0.25"], "--gpus-per-run apply to --executor ray"),
            (["--executor", "ray", "--gpus-per-run", "0.25"], "the Ray cluster has 0 GPUs"),
            (["--executor", "ray", "--gpus-per-run", "1.5"], "fraction in [0, 1]"),
            (["--bmc-executor", "ray"], "applies to bmc runs; this has none")]):
        assert main(args + extra + ["--out", str(tmp_path / f"bad{i}")]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("clbudget: error:") and message in err, (extra, err)
    with pytest.raises(ValueError, match="no Ray cluster answers there"):
        reachable("127.0.0.1:1")          # fails in a second, where ray.init waits minutes


def test_missing_ray_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)                      # `import ray` fails
    with pytest.raises(RayUnavailable, match=r'pip install "clbudget\[ray\]"'):
        make_executor("ray").run(cells(seeds=(0,))[:1], lambda row: None)
    with pytest.raises(ValueError, match="apply to --executor ray only"):
        make_executor("local", gpus_per_run=0.5)
    # the local path never imports ray: a fresh interpreter runs a local sweep without it
    code = ("import sys; sys.modules['ray'] = None\n"
            "from clbudget.cli import main\n"
            f"rc = main(['sweep', '--methods', 'finetune', '--budgets', '5xconv2', '--init', '0',"
            f" '--inc', '2', '--glyphs', 'num_classes=4', '--glyphs', 'image_size=16',"
            f" '--glyphs', 'train_per_class=10', '--glyphs', 'test_per_class=4',"
            f" '--backbone', 'conv2', '--epochs', '1', '--device', 'cpu',"
            f" '--out', {str(tmp_path / 'local')!r}, '--json'])\n"
            "sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__)
                                                                          .resolve().parents[1])})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["finished"] == 1


def test_bmc_ray_experts_match_local_and_bytes_are_measured(ray_cluster, one_thread):
    spec = tiny_spec("bmc")
    [on_ray] = with_bmc_executor([spec], "ray")
    assert dict(on_ray.method_options) == {"executor": "ray"}
    local, remote = run_experiment(spec), run_experiment(on_ray)
    assert remote["accuracy"] == local["accuracy"] and remote["losses"] == local["losses"]
    cl, cr = local["cost_figures"], remote["cost_figures"]
    assert "communication_bytes_transferred" not in cl
    assert cr["communication_bytes"] == cl["communication_bytes"] > 0      # ledger accounting
    # bytes transferred: the serialized buffers; framing at most 1% + 4 KiB per buffer
    sent, moved, n = cr["communication_bytes"], cr["communication_bytes_transferred"], \
        cr["buffers_sent"]
    assert sent < moved <= 1.01 * sent + 4096 * n, (sent, moved, n)


def test_ray_expert_returns_the_local_buffer_byte_for_byte(ray_cluster, one_thread):
    from clbudget.experiment.run import prepare, to_device
    from clbudget.methods.bmc_experts import pack_buffer, train_expert, train_experts
    stream, ctx, method = prepare(tiny_spec("bmc"))
    task = to_device(stream, ctx.device)[0]
    method.begin_task(task)
    job = (method.base.state_dict(), (task.x, task.y), method.config, 7,
           method.expert_spec(task))
    here = train_expert(*job)
    [there] = train_experts([job], executor="ray")
    for name in ("images", "labels", "features"):
        assert torch.equal(getattr(here, name), getattr(there, name)), name
    # exactly the message's length: the tensors' n_bytes plus torch.save's framing
    assert there.stats["transferred_bytes"] == len(pack_buffer(here)) > here.n_bytes
