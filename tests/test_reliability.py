"""Reliability: checkpoints resume exactly, bad input is refused in one line, faults are
recorded and leave the store consistent.  In-process and fast; tests/test_faults.py does the
same through subprocesses and SIGKILL."""
import json
import sqlite3
from collections import OrderedDict

import pytest
import torch
from PIL import Image
from torch import nn

from clbudget.experiment import checkpoint as ckpt
from clbudget.experiment import sweep
from clbudget.experiment.checkpoint import CheckpointError, CheckpointMismatch, Checkpoints
from clbudget.train.loop import Trainer
from clbudget.experiment.run import run_experiment, run_guarded
from clbudget.experiment.store import ResultStore, StoreWriteError
from clbudget.methods.registry import load_all
from tests.helpers import cli, tiny_spec, tiny_stream

METHODS = sorted(load_all())
TINY = ["--dataset", "glyphs", "--init", "0", "--inc", "2", "--num-classes", "6",
        "--glyphs", "num_classes=6", "--glyphs", "train_per_class=40", "--glyphs",
        "test_per_class=12", "--glyphs", "image_size=16", "--glyphs", "seed=0",
        "--backbone", "conv2", "--epochs", "1", "--batch-size", "32", "--device", "cpu"]
BUDGET = ["--budget", "5xconv2+300ex"]   # = tiny_spec's: the CLI's run key is tiny_spec's


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a small shared CPU, torch's thread pool mostly waits (a tiny
    run took 10x longer with 2 threads on 2 busy cores).  Results compared within a test are
    computed at the same thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Stop(Exception):
    """Stands for a kill right after a task's checkpoint was written."""


def one_line_error(code, err, expected_code=2):
    assert code == expected_code, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def comparable(row):
    """What must not change when a run is resumed (wall times may)."""
    figures = {k: v for k, v in row["cost_figures"].items() if not k.endswith("_s")}
    return {"accuracy": row["accuracy"], "losses": row["losses"], "ledger": row["ledger"],
            "ledger_memo": row["ledger_memo"], "cost_figures": figures,
            "class_order": row["class_order"]}


def interrupted(spec, checkpoints, after_task):
    def on_task(index, _row):
        if index == after_task:
            raise Stop
    with pytest.raises(Stop):
        run_experiment(spec, stream=tiny_stream(), checkpoints=checkpoints, on_task=on_task)


# ------------------------------------------------------------------------------ resume

@pytest.mark.parametrize("name", METHODS)
def test_resume_equals_uninterrupted_for_every_method(name, tmp_path):
    """Killed after task 0, resumed, killed after task 1 (a grown / per-task structure),
    resumed again: accuracy matrices, per-epoch losses, ledgers and cost figures equal an
    uninterrupted run's exactly (same seed)."""
    spec = tiny_spec(name)
    reference = run_experiment(spec, stream=tiny_stream())
    checkpoints = Checkpoints(tmp_path)
    interrupted(spec, checkpoints, after_task=0)
    interrupted(spec, checkpoints, after_task=1)
    row = run_experiment(spec, stream=tiny_stream(), checkpoints=checkpoints)
    assert row["resumed_tasks"] == 2 and reference["resumed_tasks"] == 0
    assert comparable(row) == comparable(reference)


def test_checkpoint_loads_weights_only_and_holds_rng_and_results(tmp_path, monkeypatch):
    spec = tiny_spec("der")
    checkpoints = Checkpoints(tmp_path)
    interrupted(spec, checkpoints, after_task=1)
    path = tmp_path / spec.key / "checkpoint.pt"
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]   # no temporary left
    data = torch.load(path, weights_only=True)                             # plain data only
    assert data["tasks_done"] == 2 and data["run_key"] == spec.key
    assert set(data["rng"]) == {"generator", "torch", "cuda"}
    progress = json.loads(data["progress"])
    assert progress["taw"][1][:2] != [None, None] and len(progress["losses"]) == 2
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    assert checkpoints.load(spec)["tasks_done"] == 2
    assert calls and all(k.get("weights_only") is True for k in calls)


def test_codec_keeps_sharing_flags_and_refuses_what_it_cannot_restore():
    conv = nn.Conv2d(1, 2, 3)
    frozen = nn.Linear(2, 2).requires_grad_(False).eval()
    state = {"a": conv, "b": nn.Sequential(conv), "frozen": frozen, "t": (1, 2.5, "x"),
             "s": {3, 4}, "o": OrderedDict(k=torch.ones(2)), "dtype": torch.uint8,
             "counts": [1, 2], "size": torch.Size([2, 3])}
    out = ckpt.decode(ckpt.encode(state))
    assert out["b"][0] is out["a"]                                  # shared module stays shared
    assert not out["frozen"].weight.requires_grad and not out["frozen"].training
    assert out["a"].weight.requires_grad and isinstance(out["a"].weight, nn.Parameter)
    assert out["t"] == (1, 2.5, "x") and out["s"] == {3, 4} and out["dtype"] is torch.uint8
    assert isinstance(out["o"], OrderedDict) and out["size"] == torch.Size([2, 3])
    assert torch.equal(out["a"].weight, conv.weight)
    with pytest.raises(TypeError, match=r"cannot checkpoint state\['hook'\]: a builtins.function"):
        ckpt.encode({"hook": lambda: 0})
    with pytest.raises(CheckpointError, match="outside torch and clbudget"):
        ckpt.decode({ckpt.TAG: "object", "id": 0, "class": "os:system", "state": {}})


def test_spec_mismatch_is_refused_naming_the_fields(tmp_path, capsys):
    spec = tiny_spec("finetune")
    checkpoints = Checkpoints(tmp_path)
    interrupted(spec, checkpoints, after_task=0)
    other = tiny_spec("finetune", seed=1, epochs=2)
    foreign = Checkpoints(tmp_path / spec.key)          # pointed at the first run's folder
    with pytest.raises(CheckpointMismatch, match=r"2 fields differ: epochs: checkpoint 1, "
                                                 r"command 2; seed: checkpoint 0, command 1"):
        run_experiment(other, stream=tiny_stream(), checkpoints=foreign)
    code, _, err = cli(capsys, "run", "--method", "finetune", *BUDGET, *TINY, "--seed", "1",
                       "--checkpoint-dir", str(tmp_path / spec.key))
    assert "seed: checkpoint 0, command 1" in one_line_error(code, err)


def test_unreadable_checkpoint_is_refused_with_advice(tmp_path):
    spec = tiny_spec("finetune")
    (tmp_path / spec.key).mkdir()
    (tmp_path / spec.key / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read .*delete it"):
        Checkpoints(tmp_path).load(spec)


def test_checkpoint_write_failure_warns_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    def full(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", full)
    row = run_experiment(tiny_spec("finetune"), stream=tiny_stream(),
                         checkpoints=Checkpoints(tmp_path))
    assert row["status"] == "finished"
    err = capsys.readouterr().err
    assert err.count("cannot write checkpoint") == 1 and "No space left" in err
    assert not list(tmp_path.rglob("checkpoint.pt*"))


def test_cli_run_resumes_and_cleans_up_unless_kept(tmp_path, capsys, monkeypatch):
    """A `run --out` interrupted after task 0 resumes on rerun; its checkpoint (beside the
    store) is deleted once the row is stored, kept with --keep-checkpoints."""
    from clbudget.experiment import run as run_module
    real_save = run_module._save

    def save_then_interrupt(*a, **k):   # Ctrl-C right after task 0's checkpoint
        real_save(*a, **k)
        raise KeyboardInterrupt
    monkeypatch.setattr(run_module, "_save", save_then_interrupt)
    out = tmp_path / "store"
    args = ["run", "--method", "replay", *BUDGET, *TINY, "--out", str(out), "--json"]
    code, _, err = cli(capsys, *args)
    assert code == 130 and "interrupted" in err
    assert (out / "checkpoints" / tiny_spec("replay").key / "checkpoint.pt").is_file()
    monkeypatch.setattr(run_module, "_save", real_save)
    code, text, err = cli(capsys, *args)
    assert code == 0, err
    row = json.loads(text)
    assert row["resumed_tasks"] == 1
    assert comparable(row) == comparable(run_experiment(tiny_spec("replay"),
                                                        stream=tiny_stream()))
    assert not list((out / "checkpoints").iterdir())                  # cleaned once stored
    assert ResultStore(out).status(row["run_key"]) == "finished"
    code, text, err = cli(capsys, "run", "--method", "finetune", *BUDGET, *TINY, "--out",
                          str(out), "--keep-checkpoints", "--json")
    assert code == 0 and (out / "checkpoints" / json.loads(text)["run_key"]).is_dir()


# ------------------------------------------------------------------------------ bad input

def write_images(root, layout, size=(8, 8)):
    """root/<split>/<class>/<i>.png, flat colours."""
    for split, classes in layout.items():
        for c, (name, count) in enumerate(classes.items()):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", size, (40 * c, 9 * i, 99)).save(folder / f"{i:04d}.png")


def bad_data_root(tmp_path, kind, n_classes):
    """A data folder broken in one way, and what the error must say."""
    root = tmp_path / "data"
    if kind == "missing":
        return root, str(root)
    root.mkdir()
    if kind == "empty":
        return root, f"under {root}"
    classes = {f"c{i}": 2 for i in range(n_classes)}
    if kind == "unequal":
        write_images(root, {"train": {**classes, "b": 1}, "test": {**classes, "c": 1}})
        return root, "only in train: ['b']; only in test: ['c']"
    write_images(root, {"train": classes, "test": classes})
    bad = root / "train" / "c0" / ("0000.png" if kind == "unreadable" else "0001.png")
    bad.write_bytes(b"\x00garbage" if kind == "unreadable" else bad.read_bytes()[:45])
    return root, f"image {bad}"


@pytest.fixture
def no_training(monkeypatch):
    """Bad input must be refused before any training step."""
    def fit(*a, **k):
        raise AssertionError("trained before refusing bad input")
    monkeypatch.setattr(Trainer, "fit", fit)


@pytest.mark.parametrize("kind", ["missing", "empty", "unequal", "unreadable", "truncated"])
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_bad_data_root_is_refused_in_one_line(tmp_path, capsys, no_training, kind, command):
    """run: a generic ImageFolder tree (its first image sets the shape); sweep: CIFAR-10's
    layout, planned from metadata, so the data is first read when the first cell runs."""
    if command == "run":
        root, message = bad_data_root(tmp_path, kind, 2)
        argv = ["run", "--method", "finetune", "--budget", "2xconv2", "--dataset",
                "imagefolder", "--data-root", str(root), "--inc", "1"]
    else:
        root, message = bad_data_root(tmp_path, kind, 10)
        argv = ["sweep", "--methods", "finetune", "--budgets", "2xconv2", "--dataset",
                "cifar10", "--data-root", str(root), "--inc", "5", "--out", str(tmp_path / "s")]
    code, _, err = cli(capsys, *argv, "--init", "0", "--epochs", "1", "--device", "cpu",
                       "--backbone", "conv2")
    assert message in one_line_error(code, err)
    if command == "sweep":
        assert ResultStore(tmp_path / "s").rows() == []    # bad data is not a result


@pytest.mark.parametrize("argv,message", [
    (["--dataset", "cifar1000"], "unknown dataset 'cifar1000'; known: "),
    (["--backbone", "resnet99"], "unknown backbone 'resnet99'"),
    (["--budget=-5MiB"], "cannot parse budget '-5MiB'"),
    (["--budget", "0"], "budget must be positive, got '0'"),
    (["--budget", "0ex"], "budget must be positive, got '0ex'"),
    (["--budget", "lots"], "cannot parse budget 'lots'"),
    (["--budget", "1KiB"], "below finetune's minimum"),
    (["--seed", "abc"], "argument --seed: invalid int value: 'abc'"),
    (["--seed", "1.5"], "argument --seed: invalid int value: '1.5'"),
    (["--init", "4", "--inc", "4"], "does not divide 6 classes"),
])
def test_cli_run_bad_input_is_one_line_exit_2(capsys, no_training, argv, message):
    base = ["run", "--method", "finetune", *BUDGET, *TINY]
    code, _, err = cli(capsys, *base, *argv)
    assert message in one_line_error(code, err)


@pytest.mark.parametrize("argv,message", [
    (["--seeds", "0,x"], "seeds are integers"),
    (["--methods", "replay,icrl"], "unknown method 'icrl'"),
    (["--budgets", "5xconv2,-"], "cannot parse budget"),
])
def test_cli_sweep_bad_input_is_one_line_exit_2(tmp_path, capsys, no_training, argv, message):
    base = ["sweep", "--methods", "replay", "--budgets", "5xconv2", *TINY,
            "--out", str(tmp_path / "s")]
    code, _, err = cli(capsys, *base, *argv)
    assert message in one_line_error(code, err)


def test_store_not_clbudget_or_newer_schema_is_refused(tmp_path, capsys, no_training):
    foreign = tmp_path / "foreign.sqlite"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)")
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database at all, just text " * 100)
    newer = ResultStore(tmp_path / "newer.sqlite")
    newer.db.execute("UPDATE meta SET value='99' WHERE key='schema'")
    for path, message in [(foreign, "not a clbudget results store"),
                          (text, "not a clbudget results store"),
                          (newer.path, "has schema 99, newer than this clbudget's 1")]:
        for argv in (["run", "--method", "finetune", *BUDGET, *TINY],
                     ["sweep", "--methods", "finetune", "--budgets", "5xconv2", *TINY]):
            code, _, err = cli(capsys, *argv, "--out", str(path))
            assert message in one_line_error(code, err) and str(path) in err


# ------------------------------------------------------------------------------ config files

def test_config_file_gives_defaults_and_flags_override(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("method: finetune\nbudget: 5xconv2+300ex\ninit: 0\ninc: 2\n"
                      "num_classes: 6\nbackbone: conv2\nepochs: 3\nbatch_size: 32\ndevice: cpu\n"
                      "glyphs: {num_classes: 6, train_per_class: 40, test_per_class: 12, "
                      "image_size: 16, seed: 0}\n"
                      "recipe_option: {first: {epochs: 1}}\n")
    code, out, err = cli(capsys, "run", "--config", str(config), "--epochs", "1", "--json")
    assert code == 0, err
    row = json.loads(out)
    assert row["spec"]["epochs"] == 1 and row["spec"]["recipe_options"] == {"first": {"epochs": 1}}
    as_json = tmp_path / "run.json"
    as_json.write_text(json.dumps({"method": "finetune", "budget": "5xconv2+300ex", "init": 0,
                                   "inc": 2, "seeds": [0, 1]}))
    code, _, err = cli(capsys, "run", "--config", str(as_json))
    assert "unknown key 'seeds' (nearest: seed)" in one_line_error(code, err)


def test_sweep_config_file_lists_and_flags(tmp_path, capsys):
    config = tmp_path / "sweep.json"
    config.write_text(json.dumps({"methods": ["replay", "finetune"], "budgets": ["5xconv2"],
                                  "seeds": [0, 1], "init": 0, "inc": 2, "num_classes": 6,
                                  "dry_run": True, "recipe_option": {"first": {"epochs": 1}}}))
    code, out, err = cli(capsys, "sweep", "--config", str(config), "--out",
                         str(tmp_path / "s"), "--json")
    assert code == 0, err
    cells = json.loads(out)["cells"]
    assert {(c["method"], c["seed"]) for c in cells} == {
        (m, s) for m in ("replay", "finetune") for s in (0, 1)}


@pytest.mark.parametrize("text,message", [
    ("method: finetune\nepoch: 3\n", "unknown key 'epoch' (nearest: epochs)"),
    ("method: finetune\nbatch-size: 3\n", "unknown key 'batch-size' (nearest: batch_size)"),
    ("seed: abc\n", "seed: invalid int value: 'abc'"),
    ("epochs: 1.5\n", "epochs: expected an integer, got '1.5'"),
    ("convention: loose\n", "'loose' is not one of strict, memo"),
    ("- a\n- b\n", "expected a mapping"),
    ("method: !!python/object/apply:os.system ['echo hacked']\n", "is not valid YAML"),
])
def test_bad_config_file_is_one_line_exit_2(tmp_path, capsys, text, message):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    code, out, err = cli(capsys, "run", "--config", str(config), "--budget", "1MiB",
                         "--init", "0", "--inc", "2")
    assert message in one_line_error(code, err) and "hacked" not in out


# ------------------------------------------------------------------------------ faults

def test_nan_loss_is_recorded_with_its_reason(tmp_path, capsys):
    out = tmp_path / "store"
    code, _, err = cli(capsys, "run", "--method", "finetune", *BUDGET, *TINY, "--lr", "1e30",
                       "--out", str(out))
    assert "NonFiniteLoss" in one_line_error(code, err, expected_code=1)
    [row] = ResultStore(out).rows()
    assert row["status"] == "failed" and "loss became nan" in row["reason"]
    assert not list(out.glob("checkpoints/*"))


def out_of_memory_above(monkeypatch, max_batch: int):
    """Every training step with a batch larger than max_batch raises CUDA out of memory."""
    real_fit = Trainer.fit

    def fit(self, params, x, y, step, cfg, *a, **k):
        def step_or_oom(xb, yb, idx):
            if len(xb) > max_batch:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return step(xb, yb, idx)
        return real_fit(self, params, x, y, step_or_oom, cfg, *a, **k)
    monkeypatch.setattr(Trainer, "fit", fit)


def test_out_of_memory_recorded_with_batch_size_and_retried_at_half(tmp_path, capsys,
                                                                    monkeypatch):
    out = tmp_path / "store"
    out_of_memory_above(monkeypatch, 16)
    args = ["run", "--method", "replay", *BUDGET, *TINY, "--out", str(out), "--json"]
    code, _, err = cli(capsys, *args)
    one_line_error(code, err, expected_code=1)
    assert "CUDA out of memory at batch size 32" in err
    [row] = ResultStore(out).rows()
    assert row["status"] == "failed" and "batch size 32" in row["reason"]
    code, text, err = cli(capsys, *args, "--retry-smaller-batch")
    assert code == 0, err
    row = json.loads(text)
    assert row["run_key"] == tiny_spec("replay").key and row["spec"]["batch_size"] == 16
    assert row["retry"]["batch_size"] == 16 and "batch size 32" in row["retry"]["reason"]
    assert ResultStore(out).status(row["run_key"]) == "finished"   # the failure replaced
    out_of_memory_above(monkeypatch, 8)                             # half is still too much
    with pytest.raises(torch.cuda.OutOfMemoryError, match=r"batch size 16, the retry at half .*batch size 32\); rerun with --batch-size 8"):
        run_guarded(tiny_spec("finetune"), stream=tiny_stream(), retry_smaller_batch=True)


class FullDisk:
    """A connection whose row inserts fail as a full disk does, after writing part of it."""

    def __init__(self, db):
        self.db = db

    def execute(self, sql, *args):
        cur = self.db.execute(sql, *args)
        if sql.startswith("INSERT INTO runs"):
            raise sqlite3.OperationalError("database or disk is full")
        return cur

    def __getattr__(self, name):
        return getattr(self.db, name)


def test_disk_full_leaves_the_store_consistent(tmp_path):
    store = ResultStore(tmp_path)
    store.add({"run_key": "a", "status": "finished", "method": "replay", "x": 1})
    store.db = FullDisk(store.db)
    with pytest.raises(StoreWriteError, match="database or disk is full; the store keeps"):
        store.add({"run_key": "b", "status": "finished", "method": "replay"})
    store.db = store.db.db
    assert not store.db.in_transaction
    again = ResultStore(tmp_path)
    assert [r["run_key"] for r in again.rows()] == ["a"] and again.rows()[0]["x"] == 1
    assert again.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert again.add({"run_key": "b", "status": "finished", "method": "replay"})


def test_sweep_on_full_disk_stops_clearly_and_resumes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "sweep"
    real_init = ResultStore.__init__

    def full_disk_store(self, path):
        real_init(self, path)
        self.db = FullDisk(self.db)
    monkeypatch.setattr(ResultStore, "__init__", full_disk_store)
    args = ["sweep", "--methods", "finetune", "--budgets", "5xconv2+300ex", *TINY,
            "--out", str(out), "--json"]
    code, _, err = cli(capsys, *args)
    assert "database or disk is full" in one_line_error(code, err, expected_code=1)
    monkeypatch.setattr(ResultStore, "__init__", real_init)
    assert ResultStore(out).rows() == []
    code, text, err = cli(capsys, *args)
    assert code == 0 and json.loads(text)["finished"] == 1, err
    [row] = ResultStore(out).rows()
    assert row["resumed_tasks"] == 3          # its checkpoint was kept: nothing trained again


def test_run_refuses_while_another_process_runs_it(tmp_path, capsys, no_training):
    store = ResultStore(tmp_path)
    with store.claim(tiny_spec("finetune").key):
        code, _, err = cli(capsys, "run", "--method", "finetune", *BUDGET, *TINY,
                           "--out", str(tmp_path))
    assert "another clbudget process is running this run" in one_line_error(code, err)


def test_sweep_skips_a_cell_another_process_claimed_or_finished(tmp_path):
    cells = [tiny_spec("finetune"), tiny_spec("lwf"), tiny_spec("ewc")]
    store = ResultStore(tmp_path)
    other = ResultStore(tmp_path)                 # another sweep's connection to the store
    ran = []

    def finish_ewc_meanwhile(row):
        ran.append(row["method"])
        if row["method"] == "finetune":
            other.add({"run_key": cells[2].key, "status": "finished", "method": "ewc"})
    with other.claim(cells[1].key) as mine:       # lwf is being trained elsewhere
        assert mine
        summary = sweep.run_cells(cells, store, on_row=finish_ewc_meanwhile)
    assert ran == ["finetune"] and summary["busy"] == 1 and summary["skipped"] == 1
    summary = sweep.run_cells(cells, store)
    assert summary["finished"] == 1 and summary["skipped"] == 2
    keys = [r[0] for r in store.db.execute("SELECT run_key FROM runs")]
    assert sorted(keys) == sorted(c.key for c in cells)
