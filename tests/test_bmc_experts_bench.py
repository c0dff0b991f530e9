"""bench/bmc_experts.py: its probe sees every expert without changing the run, and its
figures are the ones it names (a tiny glyphs run of each variant; the table by hand)."""
import dataclasses
import math

import pytest

from bench.bmc_experts import cell, probe_run, table
from clbudget.experiment.run import run_experiment
from tests.helpers import tiny_spec, tiny_stream


def test_probed_run_equals_the_unprobed_one_and_reads_every_expert():
    """3 tasks, one expert each: 3 probes, the first flagged (an untrained base), each with
    an accuracy in [0, 1] on its own 2 classes and the L_bd distance its stats report; the
    row (accuracies, losses) is the unprobed run's, so the probe draws no random number."""
    spec = tiny_spec("bmc", method_options=(("variant", "paper"), ("workers", 1)))
    probed = probe_run(spec, tiny_stream())
    plain = run_experiment(spec, stream=tiny_stream())
    assert probed["last_tag"] == plain["accuracy"]["last"]
    assert probed["last_taw"] == plain["accuracy"]["task_aware"]["last"]
    probes = probed["probes"]
    assert [(p["lo"], p["hi"], p["first"]) for p in probes] == \
        [(0, 2, True), (2, 4, False), (4, 6, False)]
    assert all(0 <= p["accuracy"] <= 1 and p["distance"] >= 0 for p in probes)
    assert [p["stability_weight"] for p in probes] == [0.0, 1.0, 1.0]
    assert probed["distance"] == pytest.approx((probes[1]["distance"] + probes[2]["distance"]) / 2)
    assert probed["variant"] == "paper" and probed["recipe"] == "bmc"
    # a stability weight given with the variant is named in the row's label
    weighted = dataclasses.replace(spec, method_options=(("variant", "paper"), ("stability", 0.01),
                                                         ("workers", 1)))
    assert probe_run(weighted, tiny_stream())["variant"] == "paper:0.01"


def test_table_cells_are_the_mean_and_the_t_half_width_by_hand():
    """Three seeds 0.1, 0.2, 0.3 (x100): mean 20.0, sample std 10, half-width
    t(0.975, 2) * 10 / sqrt(3) = 4.3027 * 5.7735 = 24.84."""
    assert cell([0.1, 0.2, 0.3], 100) == "20.0 +- 24.8"
    assert cell([0.5], 100) == "50.0" and cell([None]) == "n/a"
    assert math.isclose(4.302652729911275 * 10 / math.sqrt(3), 24.84, abs_tol=0.005)
    run = {"variant": "reference", "seed": 0, "distance": 2.0, "expert_accuracy": 0.5,
           "last_tag": 0.25, "last_taw": 0.75, "wall_s": 10.0,
           "cost_figures": {"stability_weight": 0.0, "distill_weight": 0.0},
           "expert_phase": {"optimizer": "adamw", "lr": 0.01, "momentum": 0.9,
                            "schedule": "plateau"}}
    assert table([run]).splitlines()[-1] == \
        "| reference | 0, 0 | adamw lr 0.01, plateau | 2.0 | 50.0 | 25.0 | 75.0 | 0 | 10 |"
