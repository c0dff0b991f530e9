"""The accountant, the cost models and the allocator against hand-computed numbers."""
import json

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from clbudget.budget.accountant import (exemplar_bytes, exemplars_to_model, format_bytes,
                                        mask_bytes, memo_bytes, model_to_exemplars,
                                        module_bytes, parse_budget, state_dict_bytes)
from clbudget.budget.allocator import (AllocatorConfig, BudgetError, allocate,
                                       allocate_protocol, memo_budget_points)
from clbudget.budget.costs import COST_MODELS, StreamShape, head_bytes, num_tasks_of
from clbudget.budget.ledger import Ledger, LedgerItem
from clbudget.nets.backbones import BACKBONES, FAMILIES, backbone_stats, create_backbone
from clbudget.streams.catalog import DATASETS, dataset_info
from tests.helpers import cli

CIFAR100 = StreamShape.from_protocol((3, 32, 32), 100, 0, 10)
MEMO = AllocatorConfig(convention="memo")


def cifar_resnet_params(n):
    """Hand count of a CIFAR ResNet with n blocks per stage (16/32/64, option-A shortcuts)."""
    stem = 3 * 16 * 9 + 2 * 16
    stage1 = n * (2 * 16 * 16 * 9 + 2 * 2 * 16)
    stage2 = (16 * 32 * 9 + 32 * 32 * 9 + 2 * 2 * 32) + (n - 1) * (2 * 32 * 32 * 9 + 2 * 2 * 32)
    stage3 = (32 * 64 * 9 + 64 * 64 * 9 + 2 * 2 * 64) + (n - 1) * (2 * 64 * 64 * 9 + 2 * 2 * 64)
    return stem + stage1 + stage2 + stage3


@pytest.mark.parametrize("depth", [14, 20, 26, 32])
def test_cifar_resnet_params_exact(depth):
    assert backbone_stats(f"resnet{depth}").params == cifar_resnet_params((depth - 2) // 6)


def test_resnet32_is_463504_params_and_603_exemplars():
    s = backbone_stats("resnet32")
    assert s.params == 463_504 and s.params_bytes == 1_854_016
    assert s.generalized_params + s.specialized_params == s.params
    assert memo_bytes(create_backbone("resnet32")) == 1_854_016
    assert model_to_exemplars(1_854_016, (3, 32, 32)) == pytest.approx(603.52, abs=0.005)


def test_other_backbones_match_reference_counts():
    # conv2: conv(3->64)+bias, BN, conv(64->64)+bias, BN
    assert backbone_stats("conv2").params == (1728 + 64 + 128) + (36864 + 64 + 128)
    # torchvision resnet18/34/50 minus their fc layer (512*1000+1000, 2048*1000+1000)
    assert backbone_stats("resnet18", (3, 224, 224)).params == 11_689_512 - 513_000
    assert backbone_stats("resnet34", (3, 224, 224)).params == 21_797_672 - 513_000
    assert backbone_stats("resnet50", (3, 224, 224)).params == 25_557_032 - 2_049_000
    # small images: 3x3 stem instead of 7x7 (the DER++ CIFAR ResNet18: 11,173,962 with 10-class head)
    assert backbone_stats("resnet18", (3, 32, 32)).params + 512 * 10 + 10 == 11_173_962


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_strict_bytes_equal_state_dict_bytes(name):
    shape = (3, 224, 224) if name in FAMILIES["imagenet"] or name == "resnet50" else (3, 32, 32)
    net = create_backbone(name, shape)
    s = backbone_stats(name, shape)
    by_hand = sum(v.numel() * v.element_size() for v in net.state_dict().values())
    assert state_dict_bytes(net) == by_hand == s.state_bytes
    mb = module_bytes(net)
    assert (mb.param_bytes, mb.buffer_bytes) == (s.params_bytes, s.buffers_bytes)
    head = nn.Linear(s.out_dim, 100)
    assert state_dict_bytes(head) == head_bytes(s.out_dim, 100)


def test_generalized_specialized_split_runs():
    net = create_backbone("resnet32")
    mid = net.generalized(torch.zeros(2, 3, 32, 32))
    assert mid.shape == (2, 32, 16, 16)
    assert net.specialized(mid).shape == (2, 64)
    assert create_backbone("resnet18", (3, 64, 64))(torch.zeros(1, 3, 64, 64)).shape == (1, 512)


def test_module_bytes_respects_dtype():
    m = nn.Linear(10, 10).to(torch.float16)
    assert module_bytes(m).param_bytes == 110 * 2
    bn = nn.BatchNorm1d(4)
    assert module_bytes(bn).buffer_bytes == 4 * 4 * 2 + 8  # mean, var float32 + int64 counter


def test_exemplar_and_mask_bytes_by_hand():
    assert exemplar_bytes(10, (3, 32, 32)) == 30_720
    assert exemplar_bytes(10, (3, 32, 32), label_dtype=torch.int16) == 30_740
    assert exemplar_bytes(10, (3, 32, 32), label_dtype=torch.int64, logits_dim=10) == 30_720 + 80 + 400
    assert exemplar_bytes(5, (1, 28, 28), dtype=torch.float32) == 5 * 784 * 4
    assert mask_bytes(1000, 10, "byte") == 1000
    assert mask_bytes(1000, 10, "bits") == 500    # 4 bits per weight for 10 tasks
    assert mask_bytes(1001, 2, "bits") == 126     # 1 bit, rounded up to whole bytes
    with pytest.raises(ValueError, match="packing"):
        mask_bytes(10, 2, "nibble")


@pytest.mark.parametrize("text,expected", [
    ("7.63MiB", 8_000_634), ("8MB", 8_000_000), ("1.5GiB", 1_610_612_736), ("123456", 123_456),
    ("123456B", 123_456), ("512KiB", 524_288), ("2000ex", 6_144_000), ("0.5ex", 1536),
    ("1xresnet32", 1_854_016), ("2.5xresnet32", 4_635_040), (4096, 4096),
    ("1xresnet32+2000ex", 7_998_016), ("1MiB + 1KiB", 2**20 + 2**10)])
def test_parse_budget(text, expected):
    model = lambda name: backbone_stats(name).params_bytes
    assert parse_budget(text, image_shape=(3, 32, 32), model_bytes=model) == expected


@pytest.mark.parametrize("text,match", [
    ("7.63XB", "accepted forms"), ("abc", "accepted forms"), ("", "accepted forms"),
    ("-5MB", "accepted forms"), ("0", "positive"), ("1MiB+", "accepted forms"), ("0MiB", "positive"),
    ("2000ex", "image shape")])
def test_parse_budget_errors_name_the_accepted_forms(text, match):
    with pytest.raises(ValueError, match=match):
        parse_budget(text)


@given(st.integers(1, 10**9))
def test_model_exemplar_conversion_round_trips(n_bytes):
    for shape in [(3, 32, 32), (1, 28, 28), (3, 224, 224)]:
        assert exemplars_to_model(model_to_exemplars(n_bytes, shape), shape) == n_bytes


def test_ledger_totals_and_kinds():
    ledger = Ledger.of([("net.params", "params", 100), ("memory.images", "exemplars", 30_720),
                        ("memory.labels", "exemplar_aux", 20), ("empty", "masks", 0)])
    assert ledger.total_bytes == 30_840
    assert ledger.by_kind() == {"params": 100, "exemplars": 30_720, "exemplar_aux": 20}
    assert ledger.bytes_of("exemplars", "exemplar_aux") == 30_740
    assert ledger.to_dict()["total_bytes"] == 30_840
    with pytest.raises(ValueError, match="kind"):
        LedgerItem("x", "weights", 1)
    with pytest.raises(ValueError, match="non-negative"):
        LedgerItem("x", "params", -1)


def test_format_bytes_is_unambiguous():
    assert format_bytes(8_000_634) == "7.63 MiB (8,000,634 B)"
    assert format_bytes(512) == "512 B"


def test_dataset_metadata_without_files():
    for name in ["cifar10", "cifar100", "tinyimagenet", "imagenet100", "fashion-mnist", "glyphs"]:
        assert name in DATASETS
    assert dataset_info("cifar100").image_shape == (3, 32, 32)
    assert dataset_info("cifar100").num_classes == 100
    assert dataset_info("Fashion_MNIST").image_shape == (1, 28, 28)
    assert dataset_info("tinyimagenet").num_classes == 200
    with pytest.raises(ValueError, match="nearest: cifar10"):
        dataset_info("cifar1O")


def test_num_tasks_and_bad_protocols():
    assert num_tasks_of(100, 0, 10) == 10
    assert num_tasks_of(100, 50, 5) == 11
    assert num_tasks_of(10, 2, 2) == 5
    with pytest.raises(ValueError, match="valid --inc for --init 0: 1, 2, 5, 10"):
        num_tasks_of(10, 0, 3)
    with pytest.raises(ValueError, match="between 0 and 10"):
        num_tasks_of(10, 11, 1)


# --- allocator: hand-computed cases -------------------------------------------------------

def test_fit_memo_convention_by_hand():
    # resnet32 (1,854,016 B) + 2000 x 3,072 B = 7,998,016 B: exactly 2000 exemplars, no slack
    a = allocate("replay", 7_998_016, CIFAR100, config=MEMO)
    assert (a.backbone, a.n_exemplars, a.slack_bytes, a.per_class_quota) == ("resnet32", 2000, 0, 20)
    a = allocate("replay", 7_998_016 + 3071, CIFAR100, config=MEMO)
    assert a.n_exemplars == 2000 and a.slack_bytes == 3071


def test_fit_strict_counts_labels_head_and_old_model():
    s = backbone_stats("resnet32")
    net = s.state_bytes + head_bytes(64, 100)
    per = 3072 + 2  # uint8 pixels + int16 label
    budget = 2 * net + 100 * 64 * 4 + 2000 * per  # net + old net + class means + exemplars
    a = allocate("icarl", budget, CIFAR100)
    assert a.n_exemplars == 2000 and a.slack_bytes == 0
    assert allocate("icarl", budget - 1, CIFAR100).n_exemplars == 1999
    assert a.ledger.by_kind()["old_model"] == net
    assert a.ledger.by_kind()["class_stats"] == 100 * 64 * 4


def test_memo_fair_reproduces_the_memo_paper():
    """MEMO section 5: DER keeps 2000, iCaRL-like 7431, MEMO 3312 exemplars (CIFAR-100 B0Inc10)."""
    allocs = {a.method: a for a in allocate_protocol(["der", "icarl", "replay", "memo", "finetune"],
                                                     CIFAR100, "memo-fair", config=MEMO)}
    budget = 10 * 1_854_016 + 2000 * 3072
    assert all(a.budget_bytes == budget and a.total_bytes <= budget for a in allocs.values())
    assert allocs["der"].n_exemplars == 2000 and allocs["der"].slack_bytes == 0
    assert allocs["icarl"].n_exemplars == 2000 + (9 * 463_504 * 4) // 3072 == 7431
    memo_model = 4 * (backbone_stats("resnet32").generalized_params
                      + 10 * backbone_stats("resnet32").specialized_params)
    assert allocs["memo"].n_exemplars == 2000 + (10 * 1_854_016 - memo_model) // 3072 == 3312
    assert allocs["finetune"].n_exemplars == 0


def test_memo_auc_points():
    points = memo_budget_points(CIFAR100, MEMO)
    mib = [round(b / 2**20, 2) for b, _ in points]
    assert mib == [7.63, 12.42, 16.12, 19.83, 23.54]
    assert [rung for _, rung in points] == ["conv2", "resnet14", "resnet20", "resnet26", "resnet32"]
    allocs = allocate_protocol(["der", "replay"], CIFAR100, "memo-auc", config=MEMO)
    der = [a for a in allocs if a.method == "der"]
    assert [a.backbone for a in der] == ["conv2", "resnet14", "resnet20", "resnet26", "resnet32"]
    assert [a.n_exemplars for a in der[1:]] == [2000] * 4
    replay = [a for a in allocs if a.method == "replay"]
    assert replay[0].n_exemplars == 2000 and {a.backbone for a in replay} == {"resnet32"}


def test_expanding_methods_climb_the_ladder():
    # 10 x resnet26 + 2000 exemplars fits resnet26 but not resnet32 with the 20/class reserve
    budget = 10 * 4 * backbone_stats("resnet26").params + 2000 * 3072
    assert allocate("der", budget, CIFAR100, config=MEMO).backbone == "resnet26"
    assert allocate("der", budget, CIFAR100, config=MEMO, backbone="resnet32").n_exemplars < 2000


def test_infeasible_budget_names_the_minimum():
    with pytest.raises(BudgetError, match=r"below der's minimum of .*for 10 tasks of resnet32"):
        allocate("der", 1_000_000, CIFAR100, backbone="resnet32")
    with pytest.raises(BudgetError, match="below finetune's minimum"):
        allocate("finetune", 1000, CIFAR100)


def test_joint_is_not_budgeted():
    a = allocate("joint", 10, CIFAR100)
    assert not a.budgeted and a.n_exemplars == 0


def test_expansion_grows_with_tasks():
    for name in ("der", "memo", "clr", "mind"):
        small = COST_MODELS[name].cost(StreamShape(2, (3, 32, 32), 10), "resnet32", 0)
        big = COST_MODELS[name].cost(StreamShape(5, (3, 32, 32), 10), "resnet32", 0)
        assert big.total_bytes > small.total_bytes, name


# --- allocator: properties ----------------------------------------------------------------

streams = st.builds(lambda k, inc, shape: StreamShape.from_protocol(shape, k * inc, 0, inc),
                    st.integers(1, 10), st.sampled_from([1, 2, 5, 10]),
                    st.sampled_from([(3, 32, 32), (1, 28, 28), (3, 64, 64)]))


@settings(max_examples=60, deadline=None)
@given(method=st.sampled_from(sorted(COST_MODELS)), budget=st.integers(1, 80 * 2**20),
       stream=streams, convention=st.sampled_from(["strict", "memo"]))
def test_never_over_budget(method, budget, stream, convention):
    try:
        a = allocate(method, budget, stream, config=AllocatorConfig(convention=convention))
    except BudgetError:
        return
    assert a.total_bytes <= budget or not a.budgeted
    assert a.ledger.total_bytes == COST_MODELS[method].cost(
        stream, a.backbone, a.n_exemplars, convention).total_bytes


@settings(max_examples=60, deadline=None)
@given(method=st.sampled_from(sorted(COST_MODELS)), b1=st.integers(1, 60 * 2**20),
       extra=st.integers(0, 20 * 2**20), stream=streams)
def test_more_budget_never_fewer_exemplars(method, b1, extra, stream):
    def n(b):
        try:
            return allocate(method, b, stream, backbone="resnet20").n_exemplars
        except BudgetError:
            return -1
    assert n(b1 + extra) >= n(b1)


@settings(max_examples=40, deadline=None)
@given(b1=st.integers(1, 60 * 2**20), extra=st.integers(0, 20 * 2**20))
def test_more_budget_never_a_smaller_rung(b1, extra):
    ladder = FAMILIES["cifar"]

    def rung(b):
        try:
            return ladder.index(allocate("der", b, CIFAR100).backbone)
        except BudgetError:
            return -1
    assert rung(b1 + extra) >= rung(b1)


# --- CLI ----------------------------------------------------------------------------------

def test_cli_budget_model_memo(capsys):
    code, out, _ = cli(capsys, "budget", "model", "resnet32", "--image-shape", "3,32,32",
                           "--convention", "memo", "--json")
    d = json.loads(out)
    assert code == 0 and d["params"] == 463_504 and d["bytes"] == 1_854_016
    assert d["exemplar_equivalent"] == pytest.approx(603.5, abs=0.05)


def test_cli_allocate_json(capsys):
    code, out, _ = cli(capsys, "budget", "allocate", "--budget", "7.63MiB", "--methods",
                           "replay,der", "--dataset", "cifar100", "--init", "0", "--inc", "10",
                           "--json")
    d = json.loads(out)
    assert code == 0 and [a["method"] for a in d["allocations"]] == ["replay", "der"]
    assert all(a["total_bytes"] <= a["budget_bytes"] == 8_000_634 for a in d["allocations"])


def test_cli_methods_lists_every_cost_model(capsys):
    code, out, _ = cli(capsys, "methods", "--json")
    assert code == 0 and {m["name"] for m in json.loads(out)["methods"]} == set(COST_MODELS)


@pytest.mark.parametrize("argv,message", [
    (["--budget", "1MiB", "--methods", "der", "--backbone", "resnet32"], "below der's minimum of"),
    (["--budget", "8MiB", "--methods", "dre"], "unknown method 'dre'"),
    (["--budget", "8 gallons", "--methods", "der"], "cannot parse budget"),
    (["--budget=-1MiB", "--methods", "der"], "cannot parse budget"),
    (["--budget", "-1MiB", "--methods", "der"], "--budget: expected one argument"),
])
def test_cli_allocate_errors_are_one_line(capsys, argv, message):
    code, out, err = cli(capsys, "budget", "allocate", "--dataset", "cifar100", "--init", "0",
                             "--inc", "10", *argv)
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_bad_image_shape(capsys):
    code, _, err = cli(capsys, "budget", "model", "resnet32", "--image-shape", "3,32")
    assert code == 2 and "expected C,H,W" in err
