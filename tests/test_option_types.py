"""Option values are checked against the dataclass field types before any data is read
(issue 11, item 9): one line naming the option, its type and the bad value; exit 2."""
from dataclasses import dataclass

import pytest

from clbudget.train.fields import check_fields
from clbudget.train.loop import LoopConfig
from clbudget.train.recipes import resolve
from clbudget.experiment.run import method_config
from clbudget.methods.registry import method_class
from tests.helpers import cli


@dataclass(frozen=True)
class Example:
    flag: bool = False
    count: int = 1
    rate: float = 0.5
    name: str = "a"
    steps: tuple[int, ...] = (1, 2)
    pair: tuple[int, float] = (1, 2.0)
    limit: int | None = None
    extra: dict | None = None
    phase: LoopConfig = LoopConfig()


@pytest.mark.parametrize("key,value,message", [
    ("flag", 1, "where flag: expected bool (true or false), got 1"),
    ("flag", "yes", "where flag: expected bool (true or false), got 'yes'"),
    ("count", "abc", "where count: expected int, got 'abc'"),
    ("count", 2.0, "where count: expected int, got 2.0"),
    ("count", True, "where count: expected int, got True"),
    ("rate", "0.5", "where rate: expected float, got '0.5'"),   # strings are never numbers
    ("rate", None, "where rate: expected float, got None"),
    ("name", 3, "where name: expected str, got 3"),
    ("steps", [1, "x"], "where steps: expected a list of int, got [1, 'x']"),
    ("steps", 3, "where steps: expected a list of int, got 3"),
    ("pair", [1], "where pair: expected a list of 2: int, float, got [1]"),
    ("limit", "x", "where limit: expected int or None, got 'x'"),
    ("extra", [1], "where extra: expected a mapping or None, got [1]"),
    ("phase", 5, "where phase: expected a mapping of LoopConfig fields, got 5"),
    ("phase", {"epochs": "x"}, "where phase.epochs: expected int, got 'x'"),
    ("phase", {"milestones": [1.5]}, "where phase.milestones: expected a list of int, got [1.5]"),
    ("phase", {"epochz": 3}, "where phase.epochz: no such field of LoopConfig (nearest: epochs)"),
    ("cuont", 3, "where cuont: no such field of Example (nearest: count)"),
])
def test_bad_values_are_refused_naming_field_type_and_value(key, value, message):
    with pytest.raises(ValueError) as e:
        check_fields(Example, {key: value}, "where")
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)


def test_good_values_are_accepted_and_normalized():
    got = check_fields(Example, {"flag": True, "count": 3, "rate": 2, "name": "b",
                                 "steps": [4, 5], "pair": [1, 3], "limit": None, "extra": {},
                                 "phase": {"epochs": 2, "lr": 1, "milestones": [1]}}, "w")
    assert got == {"flag": True, "count": 3, "rate": 2.0, "name": "b", "steps": (4, 5),
                   "pair": (1, 3.0), "limit": None, "extra": {},
                   "phase": {"epochs": 2, "lr": 1.0, "milestones": (1,)}}
    assert isinstance(got["rate"], float) and isinstance(got["phase"]["lr"], float)
    phase = LoopConfig(epochs=3)
    assert check_fields(Example, {"phase": phase, "limit": 4}, "w") == {"phase": phase, "limit": 4}


def test_method_config_checks_types_and_applies_good_values():
    icarl = method_class("icarl")
    with pytest.raises(ValueError, match=r"^icarl option T: expected float, got 'abc'$"):
        method_config(icarl, {"T": "abc"})
    with pytest.raises(ValueError, match="has no option 'nonsense'"):
        method_config(icarl, {"nonsense": 1})
    config = method_config(icarl, {"T": 3})
    assert config.T == 3.0 and isinstance(config.T, float)


def test_recipe_options_check_phase_field_types_and_apply_good_values():
    icarl = method_class("icarl")
    with pytest.raises(ValueError,
                       match=r"^icarl recipe option first\.epochs: expected int, got 'x'$"):
        resolve(icarl, options=(("first", {"epochs": "x"}),))
    recipe = resolve(icarl, options=(("first", {"epochs": 4, "milestones": [2]}),))
    assert recipe.phase("first").epochs == 4 and recipe.phase("first").milestones == (2,)
    assert recipe.phase("first").lr == resolve(icarl).phase("first").lr   # other fields kept


NO_DATA = ["--dataset", "imagefolder", "--data-root", "/nonexistent/cifar10", "--init", "2",
           "--inc", "2", "--epochs", "1", "--device", "cpu"]


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_cli_bad_option_exits_2_in_one_line_before_reading_data(capsys, tmp_path, command):
    """The data root does not exist: had the data been read first, its error would show."""
    budget = ["--budget", "8MiB"] if command == "run" else ["--budgets", "8MiB",
                                                            "--out", str(tmp_path / "s")]
    methods = ["--method", "icarl"] if command == "run" else ["--methods", "icarl"]
    code, _, err = cli(capsys, command, *methods, *budget, *NO_DATA,
                       "--recipe-option", "first={\"epochs\": 1}", "--option", "T=abc")
    assert code == 2 and "Traceback" not in err, err
    assert err.strip() == "clbudget: error: icarl option T: expected float, got 'abc'"


def test_config_file_option_is_checked(capsys, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("method: icarl\nbudget: 8MiB\nrecipe_option: {first: {epochs: one}}\n")
    code, _, err = cli(capsys, "run", "--config", str(cfg), *NO_DATA)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "icarl recipe option first.epochs: expected int, got 'one'" in err


def test_an_unresolvable_annotation_is_left_unchecked():
    @dataclass(frozen=True)
    class External:                      # a user's Config naming a type never imported
        count: "int" = 1
        model: "NotImported" = None      # noqa: F821

    assert check_fields(External, {"model": object, "count": 2}, "x")["model"] is object
    with pytest.raises(ValueError, match="x count: expected int"):
        check_fields(External, {"count": "2"}, "x")


def test_a_run_key_holds_option_values_as_the_config_does():
    from tests.helpers import tiny_spec
    as_int, as_float = (tiny_spec("icarl", method_options=(("T", v),)) for v in (3, 3.0))
    assert as_int.key == as_float.key != tiny_spec("icarl", method_options=(("T", 4),)).key
    default = tiny_spec("icarl", method_options=(("T", 2),))    # T=2 is iCaRL's default
    assert default.key == tiny_spec("icarl").key != as_int.key


def _choice_cases():
    import dataclasses as dc
    import torch
    from clbudget.methods.bmc import BMCConfig
    from clbudget.methods.clr import CLRConfig
    from clbudget.methods.mind import MINDConfig
    from clbudget.nets.classifier import choose_task
    from clbudget.streams.protocol import order_seed
    from clbudget.train.recipes import get_recipe
    probs = [torch.full((1, 2), 0.5)]
    return [   # (what raises, the message's start, the nearest choice: one typo away)
        (lambda: MINDConfig(selection="magnitde"), "selection must be one of auto, magnitude, "
         "random, got 'magnitde'", "magnitude"),
        (lambda: MINDConfig(task_selection="entropi"), "task_selection must be one of", "entropy"),
        (lambda: CLRConfig(task_selection="max-prob"), "task_selection must be one of",
         "max_prob"),
        (lambda: CLRConfig(pretrain="glyph"), "pretrain must be one of glyphs, first_task",
         "glyphs"),
        (lambda: BMCConfig(executor="rya"), "executor must be one of local, ray", "ray"),
        (lambda: choose_task(probs, "top2-entropy"), "task rule must be one of", "top2_entropy"),
        (lambda: order_seed("per_seed", 0), "class order must be one of fixed, per-seed, "
         "unshuffled", "per-seed"),
        (lambda: dc.replace(get_recipe("clr"), precision="bf61"), "precision must be one of "
         "fp32, bf16, got 'bf61'", "bf16"),
        (lambda: dc.replace(get_recipe("clr"), augmentation="crop-flp"),
         "augmentation must be one of crop-flip, crop-flip-brightness63", "crop-flip"),
        (lambda: dc.replace(get_recipe("clr"), normalization="mamoth"),
         "normalization must be one of", "mammoth"),
    ]


@pytest.mark.parametrize("case", range(10))
def test_choice_errors_name_the_nearest_choice(case):
    """The older "must be one of" checks go through streams/catalog.py `check_choice`: the
    message names the choices, the bad value and the nearest choice."""
    make, start, near = _choice_cases()[case]
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value).startswith(start) and str(info.value).endswith(f"(nearest: {near})")
