"""Scaled-down measurements of atlas claims (clbudget/analysis/atlas_scaled.py): exemplar
counts scaled to keep the claim's memory ratio (checked against byte figures computed by hand
here), the cells planned, the setting's rows picked, and the verdict at equal bytes read from
a fake store whose numbers give a known t statistic (scipy.stats computes the expected p).
"""
import math
import shutil
from pathlib import Path

import pytest
import yaml
from scipy import stats as sps

from clbudget.analysis.atlas import run_atlas
from clbudget.analysis.atlas_claims import AtlasError, load_atlas
from clbudget.analysis.atlas_scaled import load_settings, plan_setting, scale, verdict_word
from tests.helpers import cli
from tests.test_analysis import make_row

FIXTURES = Path(__file__).parent / "data" / "atlas"

# ---------------------------------------------------------------- hand-computed bytes (strict)
# CIFAR ResNet-32: parameters and buffers 1,863,352 B (tests/test_atlas.py).  A linear head of
# C classes over its 64 features: (64 C + C) x 4 B.  An exemplar: 3,072 uint8 pixels + an int16
# label; DER++ also keeps its C float32 logits; iCaRL keeps its teacher (a second net + head)
# and C float32 class means of 64.
R32_STATE = 1_863_352


def head(c):
    return (64 * c + c) * 4


DERPP_A = {c: R32_STATE + head(c) for c in (10, 100)}          # 1,865,952 / 1,889,352
DERPP_B = {c: 3_074 + 4 * c for c in (10, 100)}                # 3,114 / 3,474 an exemplar
ICARL_A = {c: 2 * (R32_STATE + head(c)) + 4 * 64 * c for c in (10, 100)}   # 3,734,464 / 3,804,304
ICARL_B = 3_074

# The claim (below): DER++ and iCaRL with 2,000 exemplars each on CIFAR-100 B0 Inc10.
CLAIM_DERPP = DERPP_A[100] + 2000 * DERPP_B[100]               # 8,837,352
CLAIM_ICARL = ICARL_A[100] + 2000 * ICARL_B                    # 9,952,304
RATIO = CLAIM_DERPP / CLAIM_ICARL                              # 0.88797...
# On CIFAR-10 with both counts x s: (a_d + 2000 s b_d) / (a_i + 2000 s b_i) = RATIO, solved for s
S = (RATIO * ICARL_A[10] - DERPP_A[10]) / (2000 * DERPP_B[10] - RATIO * 2000 * ICARL_B)
E = round(2000 * S)                                            # 3,773 exemplars each (s = 1.886)
OWN_DERPP = DERPP_A[10] + E * DERPP_B[10]
OWN_ICARL = ICARL_A[10] + E * ICARL_B                          # the larger: the aligned budget

SETTING = {"name": "tiny", "claims": ["derpp-vs-icarl-test"], "dataset": "cifar10",
           "data_root": "CIFAR10_DIR", "init": 0, "inc": 2, "backbone": "resnet32",
           "seeds": [0, 1, 2],
           "sweep": {"epochs": 3, "batch_size": 8, "max_per_class": 100, "device": "cpu"}}


def claim_file(folder: Path):
    d = yaml.safe_load((FIXTURES / "der-vs-icarl-cifar100-b0inc10.yaml").read_text())
    d["id"], d["metric"] = "derpp-vs-icarl-test", "last"
    d["methods"][0].update(name="derpp", label="DER++", paper_arxiv="2004.07211")
    d["methods"][0]["keeps"].update(backbones=1)
    (folder / "derpp-vs-icarl-test.yaml").write_text(yaml.safe_dump(d))


@pytest.fixture
def atlas(tmp_path):
    folder = tmp_path / "atlas"
    folder.mkdir()
    shutil.copy(FIXTURES / "der-vs-icarl-cifar100-b0inc10.yaml", folder)
    claim_file(folder)
    (folder / "scaled").mkdir()
    (folder / "scaled" / "tiny.yaml").write_text(yaml.safe_dump(SETTING))
    return folder


def _setting(atlas):
    claims = load_atlas(atlas)
    [s] = load_settings(atlas, claims)
    return {c.id: c for c in claims}, s


def test_counts_are_scaled_to_keep_the_claims_ratio(atlas):
    by_id, s = _setting(atlas)
    sc = scale(by_id["derpp-vs-icarl-test"], s)
    assert sc["claim_ratio"] == pytest.approx(RATIO, rel=1e-12)
    assert sc["factor"] == pytest.approx(S, rel=1e-9) and E == 3773
    [w, l] = sc["methods"]
    assert (w["exemplars"], l["exemplars"]) == (E, E)
    assert (w["bytes"], l["bytes"]) == (OWN_DERPP, OWN_ICARL)
    assert sc["aligned_budget_bytes"] == OWN_ICARL
    assert sc["ratio"] == pytest.approx(RATIO, abs=2e-4)       # rounding E moves it a little
    # on its own stream and backbone a claim scales by 1
    own = dict(SETTING, dataset="cifar100", inc=10)
    (atlas / "scaled" / "tiny.yaml").write_text(yaml.safe_dump(own))
    by_id, s = _setting(atlas)
    sc = scale(by_id["derpp-vs-icarl-test"], s)
    assert sc["factor"] == pytest.approx(1.0, rel=1e-12)
    assert [m["exemplars"] for m in sc["methods"]] == [2000, 2000]


# Mammoth's ResNet-18 (tests/test_atlas.py): 11,168,832 parameters x 4 B + 38,560 B of buffers
M18 = 11_168_832 * 4 + 38_560
M18_HEAD = (512 * 10 + 10) * 4                                 # its head over CIFAR-10


def test_floor_and_expanding_backbones(atlas):
    by_id, s = _setting(atlas)
    # DER kept one ResNet-32 a task of 10: on CIFAR-10 B0 Inc2 it keeps 5
    sc = scale(by_id["der-vs-icarl-cifar100-b0inc10"], s)
    assert [m["backbones"] for m in sc["methods"]] == [5, 1]
    # the shipped DER++ vs iCaRL claim (200 exemplars each on Mammoth's ResNet-18): on a
    # ResNet-32 its ratio needs 8.9 exemplars each, under the allocator's floor (one a class)
    root = Path(__file__).parents[1] / "atlas"
    shutil.copy(root / "derpp-vs-icarl-seqcifar10-buf200.yaml", atlas)
    d = dict(SETTING, claims=["derpp-vs-icarl-seqcifar10-buf200"])
    (atlas / "scaled" / "tiny.yaml").write_text(yaml.safe_dump(d))
    by_id, s = _setting(atlas)
    ratio = ((M18 + M18_HEAD + 200 * DERPP_B[10])
             / (2 * (M18 + M18_HEAD) + 4 * 512 * 10 + 200 * ICARL_B))   # 45,357,208 / 90,104,096
    s_hand = (ratio * ICARL_A[10] - DERPP_A[10]) / (200 * DERPP_B[10] - ratio * 200 * ICARL_B)
    sc = scale(by_id["derpp-vs-icarl-seqcifar10-buf200"], s)
    assert sc["claim_ratio"] == pytest.approx(45_357_208 / 90_104_096, rel=1e-12)
    assert sc["factor"] == pytest.approx(s_hand, rel=1e-9)
    assert f"{200 * s_hand:.1f}" == "8.9"
    assert [m["exemplars"] for m in sc["methods"]] == [10, 10]
    assert sc["notes"] == [f"DER++: 8.9 exemplars raised to the allocator's floor of 10 (one a "
                           f"class)", f"iCaRL: 8.9 exemplars raised to the allocator's floor "
                           f"of 10 (one a class)"]
    assert [m["bytes"] for m in sc["methods"]] == [DERPP_A[10] + 10 * DERPP_B[10],
                                                   ICARL_A[10] + 10 * ICARL_B]


def test_a_ratio_out_of_reach_scales_to_the_floor(atlas):
    # 5 exemplars each on CIFAR-100: 1,906,722 / 3,819,674 = 0.4992, below what two CIFAR-10
    # ResNet-32 pairs can reach with any count (1,865,952 / 3,734,464 = 0.4997 at none)
    d = yaml.safe_load((atlas / "derpp-vs-icarl-test.yaml").read_text())
    for m in d["methods"]:
        m["keeps"]["exemplars"] = 5
    (atlas / "derpp-vs-icarl-test.yaml").write_text(yaml.safe_dump(d))
    by_id, s = _setting(atlas)
    sc = scale(by_id["derpp-vs-icarl-test"], s)
    assert sc["factor"] == 0.0 and [m["exemplars"] for m in sc["methods"]] == [10, 10]
    assert sc["notes"][0].startswith("the claim's ratio 0.4992 is out of reach")


def test_cells_within_one_percent_are_one(atlas):
    by_id, s = _setting(atlas)
    cells = plan_setting(by_id, s, "strict")
    # DER++ at its own bytes and at iCaRL's (13% apart: two cells); iCaRL at its own
    assert cells["derpp"] == [OWN_DERPP, OWN_ICARL] and cells["icarl"] == [OWN_ICARL]
    from clbudget.analysis.atlas_scaled import plan_cells
    near = [{"methods": [{"name": "x", "bytes": 1000}], "aligned_budget_bytes": 1009},
            {"methods": [{"name": "x", "bytes": 1100}], "aligned_budget_bytes": 1100}]
    assert plan_cells(near) == {"x": [1009, 1100]}             # 1000 within 1% of 1009


# ---------------------------------------------------------------- the verdict

def rows_of(method, budget, lasts, **spec):
    out = []
    for seed, last in enumerate(lasts):
        r = make_row(method, budget, seed, last=last, dataset="cifar10", inc=2, epochs=3,
                     spec_backbone="resnet32", T=5)
        r["spec"].update({"batch_size": 8, "max_per_class": 100, **spec})
        out.append(r)
    return out


def store_with(tmp_path, rows):
    from clbudget.experiment.store import ResultStore
    store = ResultStore(tmp_path / "sweep")
    for r in rows:
        store.add(r)
    return store


ICARL = [0.300, 0.350, 0.320]


@pytest.mark.parametrize("diffs, word", [((0.02, 0.03, 0.04), "holds at equal bytes"),
                                         ((-0.02, -0.03, -0.04), "reversed at equal bytes"),
                                         ((0.01, 0.02, 0.03), "not significant at equal bytes")])
def test_verdict_at_equal_bytes_from_a_fake_store(atlas, tmp_path, diffs, word):
    derpp = [i + d for i, d in zip(ICARL, diffs)]
    rows = (rows_of("derpp", OWN_ICARL, derpp) + rows_of("icarl", OWN_ICARL, ICARL)
            + rows_of("derpp", OWN_DERPP, [0.25, 0.26, 0.27]))
    r = run_atlas(atlas, store=store_with(tmp_path, rows))
    sc = next(c for c in r["claims"] if c["id"] == "derpp-vs-icarl-test")["scaled"]
    assert sc["verdict"] == word and sc["status"] == "measured"
    cp = sc["aligned"]["comparison"]
    a, b = [100 * x for x in derpp], [100 * x for x in ICARL]
    ref = sps.ttest_rel(a, b)
    d = [x - y for x, y in zip(a, b)]
    mean, sd = sum(d) / 3, math.sqrt(sum((x - sum(d) / 3) ** 2 for x in d) / 2)
    assert cp["test"] == "paired t-test" and cp["df"] == 2
    assert cp["diff"] == pytest.approx(mean) and abs(mean / (sd / math.sqrt(3))) == \
        pytest.approx(abs(ref.statistic))
    assert cp["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    half = 4.302652729911275 * sd / math.sqrt(3)               # t(0.975, 2) from tables
    assert (cp["ci_low"], cp["ci_high"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
    # each method's mean and t-interval over seeds
    st = sc["aligned"]["loser"]
    sd_b = math.sqrt(sum((x - sum(b) / 3) ** 2 for x in b) / 2)
    assert st["mean"] == pytest.approx(sum(b) / 3)
    assert st["ci_high"] - st["mean"] == pytest.approx(4.302652729911275 * sd_b / math.sqrt(3))
    # at the reported memories: DER++'s own cell against iCaRL's
    rep = sc["reported"]["comparison"]
    assert rep["diff"] == pytest.approx(100 * (0.26 - sum(ICARL) / 3))
    assert sc["reported"]["budget_bytes"] == {"winner": OWN_DERPP, "loser": OWN_ICARL}


def test_rows_of_another_training_or_stream_are_not_read(atlas, tmp_path):
    rows = (rows_of("derpp", OWN_ICARL, [0.4] * 3, epochs=5)      # epochs differ
            + rows_of("icarl", OWN_ICARL, ICARL, max_per_class=500)   # data differs
            + rows_of("derpp", OWN_DERPP, [0.3] * 3, backbone="resnet20")
            + rows_of("icarl", OWN_ICARL, ICARL, class_order="per-seed"))  # another order
    r = run_atlas(atlas, store=store_with(tmp_path, rows))
    sc = next(c for c in r["claims"] if c["id"] == "derpp-vs-icarl-test")["scaled"]
    assert sc["status"] == "not measured" and sc["verdict"] == "not measured"
    # iCaRL only with per-seed class orders (`clbudget sweep`'s default): not the setting's
    rows = (rows_of("derpp", OWN_ICARL, [0.4] * 3)
            + rows_of("icarl", OWN_ICARL, ICARL, class_order="per-seed"))
    r = run_atlas(atlas, store=store_with(tmp_path / "c", rows))
    sc = next(c for c in r["claims"] if c["id"] == "derpp-vs-icarl-test")["scaled"]
    assert sc["aligned"]["loser"]["n"] == 0 and sc["aligned"]["winner"]["n"] == 3
    # one seed missing: measured in part, the missing seed named
    rows = (rows_of("derpp", OWN_ICARL, [0.4, 0.41, 0.42]) + rows_of("icarl", OWN_ICARL, ICARL[:2]))
    r = run_atlas(atlas, store=store_with(tmp_path / "b", rows))
    sc = next(c for c in r["claims"] if c["id"] == "derpp-vs-icarl-test")["scaled"]
    assert sc["status"] == "partly measured"
    assert sc["missing"][0]["method"] == "icarl" and 2 in sc["missing"][0]["seeds"]
    assert sc["aligned"]["comparison"]["test"] == "Welch's t-test"


def test_verdict_words():
    sig = lambda diff, lo, hi: {"diff": diff, "ci_low": lo, "ci_high": hi, "testable": True,
                                "significant": lo > 0 or hi < 0}
    assert verdict_word(sig(2.0, 0.5, 3.5), []) == "holds at equal bytes"
    assert verdict_word(sig(-2.0, -3.5, -0.5), []) == "reversed at equal bytes"
    assert verdict_word(sig(1.0, -0.5, 2.5), []) == "not significant at equal bytes"
    assert verdict_word(None, []) == "not measured"


def test_commands_and_the_command_line(atlas, tmp_path, capsys):
    from clbudget.experiment.store import ResultStore
    ResultStore(tmp_path / "sweep").close()
    code, out, err = cli(capsys, "atlas", str(atlas), "--store", str(tmp_path / "sweep"),
                         "--out", str(tmp_path / "report"))
    assert code == 0, err
    assert "derpp-vs-icarl-test: not measured (scaled-down: cifar10 B0 Inc2 (5 tasks), " \
           "resnet32, seeds 0,1,2, epochs 3, batch-size 8, max-per-class 100)" in out
    md = (tmp_path / "report" / "atlas.md").read_text()
    cmd = (f"clbudget sweep --methods derpp --budgets {OWN_DERPP},{OWN_ICARL} --seeds 0,1,2 "
           f"--dataset cifar10 --data-root CIFAR10_DIR --init 0 --inc 2 --backbone resnet32 "
           f"--class-order fixed --epochs 3 --batch-size 8 --max-per-class 100 --device cpu "
           f"--out {tmp_path / 'sweep'}")
    assert cmd in md and "## Scaled-down measurements" in md
    csv = (tmp_path / "report" / "atlas.csv").read_text()
    assert "scaled_aligned_p" in csv.splitlines()[0]


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(seed=[0]), "unknown key 'seed'; nearest valid key: 'seeds'"),
    (lambda d: d.update(claims=["derpp-vs-icarl-tset"]),
     "no claim 'derpp-vs-icarl-tset' in the atlas; nearest: 'derpp-vs-icarl-test'"),
    (lambda d: d.update(dataset="cifar11"), "unknown dataset 'cifar11'; nearest: 'cifar10'"),
    (lambda d: d.update(inc=3), "B0Inc3 does not divide 10 classes"),
    (lambda d: d["sweep"].update(epoch=3), "unknown key 'epoch'; nearest valid key: 'epochs'"),
    (lambda d: d.update(name="other"), "'other' differs from the file stem 'tiny'"),
])
def test_bad_settings_are_refused(atlas, mutate, message):
    d = yaml.safe_load((atlas / "scaled" / "tiny.yaml").read_text())
    mutate(d)
    (atlas / "scaled" / "tiny.yaml").write_text(yaml.safe_dump(d))
    with pytest.raises(AtlasError, match="scaled/tiny.yaml") as e:
        load_settings(atlas, load_atlas(atlas))
    assert message in str(e.value)


def test_a_priced_only_pair_cannot_be_scaled(atlas):
    shutil.copy(FIXTURES / "podnet-vs-lucir-cifar100-b50inc5.yaml", atlas)
    d = dict(SETTING, claims=["podnet-vs-lucir-cifar100-b50inc5"])
    (atlas / "scaled" / "tiny.yaml").write_text(yaml.safe_dump(d))
    with pytest.raises(AtlasError, match="cannot be scaled down: podnet, lucir priced only"):
        load_settings(atlas, load_atlas(atlas))


def test_the_bench_plans_every_cell_seed_major_and_skips_stored_ones(atlas, tmp_path):
    from bench.atlas_verdicts import planned_runs
    store = store_with(tmp_path, rows_of("derpp", OWN_ICARL, [0.4]))      # seed 0 stored
    runs = planned_runs(str(atlas), str(tmp_path / "sweep"), "/data/cifar10", "strict")
    assert [r["label"] for r in runs] == [
        f"{m} {b} B seed {s}" for s in (0, 1, 2)
        for m, b in (("derpp", OWN_DERPP), ("derpp", OWN_ICARL), ("icarl", OWN_ICARL))]
    assert [r["done"] for r in runs] == [False, True] + [False] * 7
    argv = runs[0]["argv"]
    assert argv[1:4] == ["-m", "clbudget", "run"] and argv[argv.index("--data-root") + 1] == \
        "/data/cifar10" and argv[argv.index("--budget") + 1] == str(OWN_DERPP)
    store.close()
