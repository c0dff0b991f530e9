"""The fairness audit: claim files, byte figures, verdicts on constructed rows, flags."""
import json
from pathlib import Path

import pytest
import yaml

from clbudget.analysis.audit import (ClaimError, audit_claim, audit_rows, load_claim,
                                     method_memory, parse_claim, render_audit, run_audit,
                                     run_flags)
from tests.test_analysis import make_row

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "claims" / "der_vs_icarl.yaml"
RESNET32_MEMO = 1_854_016      # 463,504 feature parameters x 4 B
CIFAR_IMAGE = 3 * 32 * 32
DER_MEMO = 10 * RESNET32_MEMO + 2000 * CIFAR_IMAGE        # 24,684,160 B = 23.54 MiB
ICARL_MEMO = RESNET32_MEMO + 2000 * CIFAR_IMAGE           # 7,998,016 B = 7.63 MiB


def claim_dict(**over):
    d = yaml.safe_load(EXAMPLE.read_text())
    d.update(over)
    return d


def aligned_rows(der_aia, icarl_aia, *, der_seeds=(0, 1, 2), icarl_seeds=(0, 1, 2), **kw):
    """Rows of both methods at DER's memo memory, as a sweep in memo convention writes them."""
    common = dict(convention="memo", backbone="resnet32", **kw)
    return ([make_row("der", DER_MEMO, s, aia=a, expansion=10, **common)
             for s, a in zip(der_seeds, der_aia)]
            + [make_row("icarl", DER_MEMO, s, aia=a, **common)
               for s, a in zip(icarl_seeds, icarl_aia)])


# ---------------------------------------------------------------- claim files

def test_claim_yaml_and_json_parse_alike(tmp_path):
    claim = load_claim(EXAMPLE)
    assert (claim.dataset, claim.init, claim.inc, claim.num_classes) == ("cifar100", 0, 10, 100)
    assert claim.image_shape == (3, 32, 32) and claim.num_tasks == 10
    assert claim.convention == "memo" and claim.metric == "average_incremental"
    der, icarl = claim.methods
    assert (der.name, der.backbones, der.exemplars, der.accuracy_pct) == ("der", 10, 2000, 75.4)
    assert (icarl.label, icarl.backbones) == ("iCaRL", 1)
    path = tmp_path / "claim.json"
    path.write_text(json.dumps(claim_dict()))
    assert load_claim(path) == claim


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(metrics="last"), "unknown key 'metrics'; nearest valid key: 'metric'"),
    (lambda d: d["stream"].update(datset="cifar100"),
     "stream: unknown key 'datset'; nearest valid key: 'dataset'"),
    (lambda d: d["methods"][1].update(exemplar=20),
     "methods[1]: unknown key 'exemplar'; nearest valid key: 'exemplars'"),
    (lambda d: d["methods"][0].update(name="dre"), "unknown method 'dre'; nearest: 'der'"),
    (lambda d: d["methods"][1].update(backbones=3), "icarl keeps one network, not 3"),
    (lambda d: d["methods"][0].update(accuracy=175), "percentage in [0, 100]"),
    (lambda d: d.update(methods=d["methods"][:1]), "two or more methods"),
])
def test_claim_errors_name_the_key_and_nearest(mutate, message):
    d = claim_dict()
    mutate(d)
    with pytest.raises(ClaimError) as e:
        parse_claim(d, "der_vs_icarl.yaml")
    assert message in str(e.value)


def test_claim_file_kind_and_syntax(tmp_path):
    bad = tmp_path / "claim.yaml"
    bad.write_text("stream: [unclosed")
    with pytest.raises(ClaimError, match="not valid YAML"):
        load_claim(bad)
    with pytest.raises(ClaimError, match="expected a .yaml, .yml or .json"):
        (tmp_path / "claim.txt").write_text("{}")
        load_claim(tmp_path / "claim.txt")


# ---------------------------------------------------------------- bytes

def test_der_ten_backbones_vs_icarl_one_bytes_both_conventions():
    claim = load_claim(EXAMPLE)
    der, icarl = (method_memory(claim, m) for m in claim.methods)
    assert der["memo"] == DER_MEMO == 24_684_160
    assert icarl["memo"] == ICARL_MEMO == 7_998_016
    # strict: + BN statistics (9,336 B per resnet32), heads, int16 labels, iCaRL's old model
    # and class means
    head_der = 4 * (10 * 64 * 100 + 100)
    assert der["strict"] == 10 * (RESNET32_MEMO + 9_336) + head_der + 2000 * (CIFAR_IMAGE + 2)
    head = 4 * (64 * 100 + 100)
    net = RESNET32_MEMO + 9_336 + head
    assert icarl["strict"] == 2 * net + 2000 * (CIFAR_IMAGE + 2) + 100 * 64 * 4
    result = audit_claim(claim)
    [pair] = result["pairs"]
    assert pair["memory_bytes"] == {"a": {"strict": der["strict"], "memo": DER_MEMO},
                                    "b": {"strict": icarl["strict"], "memo": ICARL_MEMO}}
    assert pair["aligned"] is False and pair["aligned_budget_bytes"] == DER_MEMO


# ---------------------------------------------------------------- verdicts

def test_verdict_not_significant_paired():
    # paired differences 0.5, 1.0, 1.5 pp: mean 1.0, std 0.5, CI 1 +- 4.303*0.5/sqrt(3)
    rows = aligned_rows([0.700, 0.710, 0.720], [0.695, 0.700, 0.705])
    [pair] = audit_claim(load_claim(EXAMPLE), rows)["pairs"]
    assert pair["verdict"] == ("DER +11.0 pp at unequal memory (23.5 MiB vs 7.6 MiB); "
                               "at 23.5 MiB each: +1.0 pp, 95% CI [-0.2, 2.2], not significant")
    assert pair["comparison"]["test"] == "paired t-test"
    assert pair["flags"] == [] and pair["missing"] == []


def test_verdict_significant():
    rows = aligned_rows([0.700, 0.710, 0.720], [0.680, 0.689, 0.701])   # 2.0, 2.1, 1.9 pp
    [pair] = audit_claim(load_claim(EXAMPLE), rows)["pairs"]
    assert pair["verdict"].endswith("at 23.5 MiB each: +2.0 pp, 95% CI [1.8, 2.2], significant")


def test_verdict_welch_when_seeds_differ_and_flagged():
    rows = aligned_rows([0.70, 0.71, 0.72], [0.60, 0.62, 0.61], icarl_seeds=(0, 1, 3))
    [pair] = audit_claim(load_claim(EXAMPLE), rows)["pairs"]
    assert pair["comparison"]["test"] == "Welch's t-test"
    assert pair["comparison"]["significant"] and ", significant" in pair["verdict"]
    assert [f["kind"] for f in pair["flags"]] == ["seeds"]
    assert "DER ran 0, 1, 2; iCaRL ran 0, 1, 3" in pair["flags"][0]["message"]
    assert pair["missing"] == [{"method": "icarl", "backbone": "resnet32",
                                "budget_bytes": DER_MEMO, "seeds": [2]}]


def test_verdict_one_seed_and_missing_cells():
    claim = load_claim(EXAMPLE)
    rows = aligned_rows([0.70], [0.69], der_seeds=(0,), icarl_seeds=(0,))
    [pair] = audit_claim(claim, rows)["pairs"]
    assert pair["verdict"].endswith(
        "+1.0 pp, 95% CI undefined (1 vs 1 seeds), significance not testable")
    result = audit_claim(claim, [], store="sweeps/der")
    assert result["pairs"][0]["verdict"].endswith(
        "at 23.5 MiB each: not measured (missing cells: DER seeds 0,1,2; iCaRL seeds 0,1,2)")
    assert result["sweep_commands"] == [
        "clbudget sweep --methods der,icarl --budgets 24684160 --seeds 0,1,2 --dataset cifar100 "
        "--init 0 --inc 10 --backbone resnet32 --convention memo --class-order fixed "
        "--out sweeps/der"]


def test_equal_memory_claim_and_given_budget():
    d = claim_dict()
    d["methods"][1]["exemplars"] = 2000 + (DER_MEMO - ICARL_MEMO) // CIFAR_IMAGE
    [pair] = audit_claim(parse_claim(d))["pairs"]
    assert pair["aligned"]
    assert pair["verdict"].startswith("DER +11.0 pp at equal memory (23.5 MiB each)")
    [pair] = audit_claim(parse_claim(claim_dict(budget="30MiB")))["pairs"]
    assert pair["aligned_budget_bytes"] == 30 * 2 ** 20


# ---------------------------------------------------------------- store audit and flags

def test_flags_for_differing_seeds_epochs_class_orders_backbones():
    a = [make_row("der", 100, s, epochs=5, backbone="resnet32") for s in (0, 1)]
    same = [make_row("icarl", 100, s, epochs=5, backbone="resnet32") for s in (0, 1)]
    assert run_flags(a, same, "DER", "iCaRL") == []
    b = [make_row("icarl", 100, s, epochs=10, class_order_seed=7, backbone="resnet20",
                  strict=50) for s in (0, 2)]
    kinds = {f["kind"]: f["message"] for f in run_flags(a, b, "DER", "iCaRL")}
    assert set(kinds) == {"seeds", "epochs", "class_order", "backbone", "memory"}
    assert kinds["epochs"] == "epochs differ: DER ran 5; iCaRL ran 10"
    assert "class order seeds differ: DER ran 1993; iCaRL ran 7" == kinds["class_order"]
    assert kinds["backbone"].startswith("backbones differ: DER ran resnet32; iCaRL ran resnet20")
    # same class-order seed, different orders (e.g. another stream version)
    c = [make_row("icarl", 100, s, epochs=5, class_order=list(range(30))[::-1]) for s in (0, 1)]
    assert [f["kind"] for f in run_flags(a, c, "DER", "iCaRL")] == ["class_order"]


def test_store_audit_unequal_and_aligned_pairs():
    der = [make_row("der", DER_MEMO, s, last=0.60 + s / 100) for s in (0, 1, 2)]
    icarl = [make_row("icarl", ICARL_MEMO, s, last=0.50 + s / 100) for s in (0, 1, 2)]
    result = audit_rows(der + icarl, store="sweeps/x")
    [pair] = result["pairs"]
    assert pair["verdict"] == (
        "DER +10.0 pp at unequal memory (23.5 MiB vs 7.6 MiB); at 23.5 MiB each: not measured "
        "(missing cells: iCaRL at 23.5 MiB seeds 0,1,2)")
    assert result["sweep_commands"] == [
        "clbudget sweep --methods icarl --budgets 24684160 --seeds 0,1,2 --dataset cifar100 "
        "--init 0 --inc 10 --class-order fixed --out sweeps/x"]
    # add the aligned cell: now compared at 23.5 MiB each (paired), plus the 7.6 MiB pair? no:
    # DER never ran 7.6 MiB, so only the common budget is compared
    icarl_big = [make_row("icarl", DER_MEMO, s, last=0.595 + s / 100 + (s == 1) / 200)
                 for s in (0, 1, 2)]
    [pair] = audit_rows(der + icarl + icarl_big)["pairs"]
    assert pair["verdict"].startswith("DER vs iCaRL at 23.5 MiB each: +0.3 pp, 95% CI [")
    assert pair["comparison"]["test"] == "paired t-test" and pair["aligned"]
    text = render_audit(audit_rows(der + icarl + icarl_big))
    assert "DER vs iCaRL at 23.5 MiB each" in text and "test: paired t-test on 3 vs 3 seeds" in text


# ---------------------------------------------------------------- running missing cells

def test_run_missing_cells_through_the_experiment_layer(tmp_path, monkeypatch):
    """--run asks clbudget.experiment.sweep.run_cells for the aligned cells (faked here)."""
    import importlib
    import sys
    import types

    from clbudget.experiment.store import ResultStore
    try:
        sweep = importlib.import_module("clbudget.experiment.sweep")
    except ImportError:  # the experiment layer's sweep not there yet: stand in for it
        sweep = types.ModuleType("clbudget.experiment.sweep")
        monkeypatch.setitem(sys.modules, "clbudget.experiment.sweep", sweep)
    asked = []
    aia = {"der": [0.700, 0.710, 0.720], "icarl": [0.680, 0.689, 0.701]}

    def fake_run_cells(specs, store, *, progress=False, **kw):
        for spec in specs:
            asked.append(spec)
            row = make_row(spec.method, int(spec.budget), spec.seed, convention=spec.convention,
                           aia=aia[spec.method][spec.seed], backbone=spec.backbone)
            row["spec"], row["run_key"] = spec.to_dict(), spec.key
            store.add(row)
        return {"finished": len(specs), "failed": 0, "skipped": 0}

    monkeypatch.setattr(sweep, "run_cells", fake_run_cells, raising=False)
    store = ResultStore(tmp_path)
    result = run_audit(store, load_claim(EXAMPLE), run=True, device="cpu")
    assert sorted((s.method, s.seed) for s in asked) == [("der", 0), ("der", 1), ("der", 2),
                                                         ("icarl", 0), ("icarl", 1), ("icarl", 2)]
    spec = asked[0]
    assert (spec.budget, spec.backbone, spec.convention, spec.dataset, spec.inc, spec.device) == (
        str(DER_MEMO), "resnet32", "memo", "cifar100", 10, "cpu")
    assert result["ran"]["finished"] == 6 and result["missing_cells"] == []
    assert result["pairs"][0]["verdict"].endswith("+2.0 pp, 95% CI [1.8, 2.2], significant")
    asked.clear()
    run_audit(store, load_claim(EXAMPLE), run=True)   # nothing missing: nothing asked
    assert asked == []


# ---------------------------------------------------------------- command line

def test_audit_cli(tmp_path, capsys):
    from clbudget.cli import main
    from clbudget.experiment.store import ResultStore
    assert main(["audit", str(EXAMPLE), "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["pairs"][0]["memory_bytes"]["a"]["memo"] == DER_MEMO
    assert obj["pairs"][0]["comparison"] is None and len(obj["sweep_commands"]) == 1

    bad = tmp_path / "bad.json"
    d = claim_dict()
    d["methods"][0]["exemplar"] = 10
    bad.write_text(json.dumps(d))
    assert main(["audit", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown key 'exemplar'; nearest valid key: 'exemplars'" in err

    store = ResultStore(tmp_path / "sweep")
    for row in aligned_rows([0.700, 0.710, 0.720], [0.695, 0.700, 0.705]):
        store.add(row)
    store.close()
    assert main(["audit", str(EXAMPLE), "--store", str(tmp_path / "sweep")]) == 0
    out = capsys.readouterr().out
    assert ("DER +11.0 pp at unequal memory (23.5 MiB vs 7.6 MiB); at 23.5 MiB each: "
            "+1.0 pp, 95% CI [-0.2, 2.2], not significant") in out
    assert main(["audit", "--store", str(tmp_path / "sweep"), "--metric",
                 "average_incremental", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "store"
    assert main(["audit"]) == 2 and "give a claim file" in capsys.readouterr().err


def test_claim_flags_runs_that_differ_from_the_claim():
    d = claim_dict(epochs=5)
    d["methods"][0]["memory"] = "18.5MiB"        # what a paper might print for DER
    rows = aligned_rows([0.70, 0.71, 0.72], [0.69, 0.70, 0.71], class_order_seed=7, epochs=3)
    [pair] = audit_claim(parse_claim(d), rows)["pairs"]
    messages = [f["message"] for f in pair["flags"]]
    assert "DER: the claim's class order seed is 1993, the stored runs used 7" in messages
    assert "iCaRL: the claim asks for 5 epochs, the stored runs used 3" in messages
    assert ("DER: the paper reports 18.50 MiB, the cost model gives 23.54 MiB (memo convention)"
            in messages)
