"""Methods defined outside the package: registered, checked by check-method, swept, audited."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from clbudget.budget.costs import COST_MODELS, StreamShape, cost_model
from clbudget.conformance import check_method
from clbudget.experiment.store import ResultStore
from clbudget.methods import external
from clbudget.methods.registry import METHODS, load_all, method_class
from tests.helpers import cli, tiny_spec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "methods" / "reservoir_replay.py"

DISHONEST = '''
import torch
from usermethods import ReservoirReplay


class Hoarder(ReservoirReplay):
    """Keeps a copy of every task's first images and does not declare it."""
    def end_task(self, task):
        super().end_task(task)
        self.stash = task.x[:8].clone()      # 8 x 3x16x16 uint8 = 6,144 bytes, undeclared
'''

AMNESIAC = '''
import weakref

import torch.nn.functional as F
from usermethods import ReservoirReplay

_TASKS_SEEN = weakref.WeakKeyDictionary()   # state outside the method's attributes


class Amnesiac(ReservoirReplay):
    """Weighs its loss by the tasks it has seen, counted where no checkpoint looks."""
    def learn(self, task):
        n = _TASKS_SEEN[self] = _TASKS_SEEN.get(self, 0) + 1
        x, y = task.x, task.y
        step = lambda xb, yb, idx: n * F.cross_entropy(self.net(xb)[:, :self.seen], yb)
        return self.trainer.fit(self.net.parameters(), x, y, step, self.phase(),
                                modules=[self.net])
'''

SUBCLASSES = '''
from clbudget.methods.replay import Replay
from clbudget.methods.lwf import LwF


class MyReplay(Replay):
    pass


class Named(LwF):
    cost_model = "lwf"
'''


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """A folder of user modules on sys.path; the registries are restored afterwards."""
    folder = tmp_path / "user"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "usermethods.py")
    (folder / "dishonest.py").write_text(DISHONEST)
    (folder / "subclasses.py").write_text(SUBCLASSES)
    (folder / "amnesiac.py").write_text(AMNESIAC)
    monkeypatch.syspath_prepend(str(folder))
    load_all()
    methods, costs = dict(METHODS), dict(COST_MODELS)
    yield folder
    METHODS.clear(); METHODS.update(methods)
    COST_MODELS.clear(); COST_MODELS.update(costs)
    for name in ("usermethods", "dishonest", "subclasses", "amnesiac"):
        sys.modules.pop(name, None)
    external.load_entry_points.cache_clear()


def verdicts(report):
    return {c["check"]: c["passed"] for c in report["checks"]}


def test_example_method_passes_every_check(user_dir):
    report = check_method("usermethods:ReservoirReplay")
    assert verdicts(report) == dict.fromkeys(verdicts(report), True) and report["passed"]
    assert len(report["checks"]) == 5
    assert report["source"]["import_path"] == "usermethods:ReservoirReplay"
    assert report["source"]["file"] == str(user_dir / "usermethods.py")


def test_dishonest_method_fails_the_ledger_check(user_dir, capsys):
    code, out, _ = cli(capsys, "check-method", "dishonest:Hoarder")
    assert code == 1
    line = next(l for l in out.splitlines() if "ledger_equals_held" in l)
    assert line.split()[0] == "FAIL" and "+6,144 B undeclared" in line, out
    assert "PASS  deterministic" in out and out.strip().endswith("FAILED")


def test_state_outside_the_attributes_fails_the_resume_check(user_dir):
    report = check_method("amnesiac:Amnesiac")
    assert verdicts(report) == {"finite_losses": True, "ledger_equals_held": True,
                                "within_budget": True, "deterministic": True,
                                "resume_equals_uninterrupted": False}
    assert not report["passed"]


def test_unknown_module_and_class_are_one_line_errors(user_dir, capsys):
    code, _, err = cli(capsys, "check-method", "nosuchmodule:X", "--json")
    assert code == 1     # reported per check: the run could not be prepared
    code, out, _ = cli(capsys, "check-method", "nosuchmodule:X")
    assert "cannot import 'nosuchmodule'" in out
    with pytest.raises(ValueError, match="usermethods has no 'Nope'; its Method subclasses: "
                                         "ReservoirReplay$"):
        method_class("usermethods:Nope")


def test_cost_models_of_external_classes(user_dir):
    shape = StreamShape(3, (3, 16, 16), 6)
    fit = cost_model("usermethods:ReservoirReplay")          # uses_exemplars: replay's shape
    assert fit.uses_exemplars and fit.cost(shape, "conv2", 10).by_kind() == \
        COST_MODELS["replay"].cost(shape, "conv2", 10).by_kind()
    assert cost_model("subclasses:MyReplay").ledger is COST_MODELS["replay"].ledger  # ancestor
    assert cost_model("subclasses:Named").ledger is COST_MODELS["lwf"].ledger        # declared


def test_external_method_sweeps_reports_and_audits_with_its_source(user_dir, tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", "--methods", "usermethods:ReservoirReplay,replay", "--budgets",
            "5xconv2+300ex", "--seeds", "0", "--glyphs", "num_classes=6",
            "--glyphs", "train_per_class=40", "--glyphs", "test_per_class=12",
            "--glyphs", "image_size=16", "--init", "0", "--inc", "2", "--backbone", "conv2",
            "--epochs", "1", "--device", "cpu", "--out", str(out)]
    code, text, err = cli(capsys, *argv)
    assert code == 0, err
    rows = {r["method"]: r for r in ResultStore(out).rows()}
    assert rows["usermethods:ReservoirReplay"]["status"] == "finished"
    src = rows["usermethods:ReservoirReplay"]["method_source"]
    assert src["import_path"] == "usermethods:ReservoirReplay" and len(src["sha256"]) == 64
    assert rows["replay"]["method_source"] is None
    code, text, err = cli(capsys, "audit", "--store", str(out), "--json")
    assert code == 0, err
    assert "usermethods:ReservoirReplay" in text


def test_the_run_key_follows_the_method_file(user_dir):
    spec = tiny_spec("usermethods:ReservoirReplay")
    before = spec.key
    path = user_dir / "usermethods.py"
    path.write_text(path.read_text() + "\n# edited\n")
    assert spec.key != before
    assert tiny_spec("replay").key == tiny_spec("replay").key


def test_entry_point_methods_register_with_the_builtins(user_dir):
    dist = user_dir / "usermethods-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: usermethods\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[clbudget.methods]\nmyreplay = usermethods:ReservoirReplay\n")
    external.load_entry_points.cache_clear()
    assert "myreplay" in load_all()
    assert method_class("myreplay").__name__ == "ReservoirReplay"
    assert cost_model("myreplay").uses_exemplars
