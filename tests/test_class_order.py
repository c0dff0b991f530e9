"""The class-order default and what rows and reports say about it (streams/protocol.py):
`clbudget sweep` shuffles each seed's classes with that seed, `clbudget run` keeps the fixed
order, a store of fixed-order runs is resumed as such, every row records the shuffle seed it
used, and every interval in a report says how the class order varied.

Expected orders are numpy's legacy permutation written out here (what PyCIL's
`np.random.seed(s); np.random.permutation(K)` gives), never clbudget's `class_order`."""
from __future__ import annotations

import json

import numpy as np
import pytest

from clbudget.experiment.run import run_experiment
from clbudget.experiment.store import ResultStore
from tests.helpers import cli, tiny_spec

K = 6             # the tiny glyphs data set's classes; runs keep the first 4 of the order
GLYPHS = ["--glyphs", "num_classes=6", "--glyphs", "train_per_class=40", "--glyphs",
          "test_per_class=12", "--glyphs", "image_size=16", "--glyphs", "seed=0"]
TINY = ["--dataset", "glyphs", "--init", "0", "--inc", "2", "--num-classes", "4", *GLYPHS,
        "--backbone", "conv2", "--batch-size", "32", "--device", "cpu", "--epochs", "1"]


def order(seed: int) -> list[int]:
    return np.random.RandomState(seed).permutation(K).tolist()[:4]


@pytest.mark.parametrize("protocol, seed, shuffled_with", [
    ("per-seed", 5, 5), ("per-seed", 2, 2), ("unshuffled", 5, None), ("fixed", 5, 1993)])
def test_rows_record_the_shuffle_seed_that_ran(protocol, seed, shuffled_with):
    """A per-seed run's row names its own seed, an unshuffled run's names none, a fixed run's
    1993; the recorded order is the one that seed gives (unshuffled: 0 1 2 3)."""
    row = run_experiment(tiny_spec("finetune", seed=seed, class_order=protocol, num_classes=4))
    assert row["class_order_shuffle_seed"] == shuffled_with
    assert row["class_order_protocol"] == protocol
    assert row["class_order"] == (order(shuffled_with) if shuffled_with is not None
                                  else [0, 1, 2, 3])
    assert json.loads(json.dumps(row))["class_order_shuffle_seed"] == shuffled_with  # stored


def test_sweep_defaults_to_per_seed_and_the_report_says_so(capsys, tmp_path):
    out = tmp_path / "s"
    code, _, err = cli(capsys, "sweep", "--methods", "finetune,replay", "--budgets",
                       "5xconv2+100ex", "--seeds", "0,1", *TINY, "--out", str(out),
                       "--cache-dir", str(tmp_path / "cache"))
    assert code == 0, err
    rows = ResultStore(out).rows("finished")
    assert {r["method"] for r in rows} == {"finetune", "replay"} and len(rows) == 4
    for r in rows:
        assert r["class_order_protocol"] == "per-seed" == r["spec"]["class_order"]
        assert r["class_order_shuffle_seed"] == r["seed"]
        assert r["class_order"] == order(r["seed"])
    code, report, err = cli(capsys, "report", str(out), "--json")
    assert code == 0, err
    md = (out / "report" / "summary.md").read_text()
    assert "| seeds | class order | last acc (%) |" in md and "| 2 | per-seed | " in md
    assert ("class order per-seed: each seed its own class order (PyCIL run with several "
            "seeds): the interval includes class-order variance") in md
    html = (out / "report" / "report.html").read_text()
    assert "the interval includes class-order variance" in html
    csv = (out / "report" / "table.csv").read_text().splitlines()
    assert "class_order" in csv[0].split(",") and "per-seed" in csv[1]
    # `clbudget run` keeps the fixed order
    code, text, err = cli(capsys, "run", "--method", "finetune", "--budget", "5xconv2+100ex",
                          "--seed", "1", *TINY, "--cache-dir", str(tmp_path / "cache"))
    assert code == 0, err
    assert f"class order         fixed (seed 1993): {' '.join(map(str, order(1993)))}" in text


def test_a_store_of_fixed_order_runs_is_resumed_as_fixed(capsys, tmp_path):
    out = tmp_path / "s"
    args = ["sweep", "--methods", "finetune", "--budgets", "5xconv2+100ex", "--seeds", "0",
            *TINY, "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    code, _, err = cli(capsys, *args, "--class-order", "fixed")
    assert code == 0, err
    code, text, err = cli(capsys, *args)       # the same command without --class-order
    assert code == 0, err
    assert "holds 1 finished run(s) of these cells under the fixed class order" in err
    assert "1 already done" in text
    rows = ResultStore(out).rows("finished")
    assert [r["class_order_protocol"] for r in rows] == ["fixed"]
    code, text, err = cli(capsys, *args, "--dry-run")
    assert "class order fixed" in text
    code, text, err = cli(capsys, *args, "--class-order", "per-seed", "--dry-run")
    assert "class order per-seed" in text and "to run" in text


def test_headlines_and_audit_state_the_class_order_beside_intervals():
    from clbudget.analysis.audit import audit_rows
    from clbudget.analysis.audit_render import render_audit
    from clbudget.analysis.compute import headlines
    from clbudget.analysis.summary import cell_summary

    def row(method, seed, last, protocol):
        spec = {"dataset": "glyphs", "init": 0, "inc": 2, "budget": "1MiB", "seed": seed,
                "class_order": protocol, "class_order_seed": 1993, "method": method}
        return {"status": "finished", "run_key": f"{method}{seed}{protocol}", "method": method,
                "spec": spec, "seed": seed, "budget_bytes": 2 ** 20, "budgeted": True,
                "class_order_protocol": protocol, "class_order": [0, 1],
                "accuracy": {"last": last, "average_incremental": last, "matrix": [[last]]},
                "ledger": {"total_bytes": 2 ** 20}, "ledger_memo": {"total_bytes": 2 ** 20},
                "allocation": {"backbone": "conv2", "n_exemplars": 10, "expansion": 1}}
    for protocol, says in (("fixed", "class order fixed (seed 1993): one class order for every "
                                     "seed: the interval leaves class-order variance out"),
                           ("per-seed", "class order per-seed: each seed its own class order")):
        rows = [row(m, s, acc + s / 100, protocol) for m, acc in (("icarl", 0.5), ("der", 0.6))
                for s in (0, 1, 2)]
        [h] = headlines(cell_summary(rows))
        assert says in h["text"]
        text = render_audit(audit_rows(rows))
        assert "test: paired t-test on 3 vs 3 seeds" in text and says in text
