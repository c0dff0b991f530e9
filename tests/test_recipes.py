"""Training recipes: resolved per method, imposed, overridden, recorded in the row."""
from __future__ import annotations

import json

import pytest

from clbudget.train.recipes import get_recipe, resolve
from clbudget.experiment.run import run_experiment
from clbudget.methods.registry import load_all, method_class
from tests.helpers import cli, tiny_spec


@pytest.mark.parametrize("name", sorted(load_all()))
def test_every_method_resolves_its_reference_recipe_with_its_phases(name):
    cls = method_class(name)
    recipe = resolve(cls)
    assert recipe.name == cls.recipe and recipe.phase_names == cls.phases
    for phase in cls.phases:
        assert recipe.phase(phase) == get_recipe(cls.recipe).phase(phase)


def test_an_imposed_recipe_fills_missing_phases_from_the_fallbacks():
    """Task phases an imposed recipe lacks come from `phase_fallbacks`; other phases from the
    method's own reference recipe: BMC's consolidation stays the un-augmented AdamW phase,
    never the imposed SGD "later" phase with augmentation."""
    bmc = resolve(method_class("bmc"), "pycil-icarl")
    later = get_recipe("pycil-icarl").phase("later")
    assert bmc.name == "pycil-icarl" and bmc.phase("later") == later
    cons = bmc.phase("consolidation")
    assert cons == get_recipe("bmc").phase("consolidation")
    assert (cons.optimizer, cons.augment, cons.epochs) == ("adamw", False, 100)
    clr = resolve(method_class("clr"), "mammoth-seq-cifar10-derpp")
    assert clr.phase("task").lr == 0.03
    assert clr.phase("pretrain") == get_recipe("clr").phase("pretrain")


@pytest.mark.parametrize("epochs", [2, 7])
def test_run_wide_epochs_and_lr_change_only_the_task_phases(epochs):
    """--epochs/--lr reach the phases that train on the task (BMC's experts, CLR's task,
    MIND's distillation); BMC's consolidation (100, defaults.json cons_epochs), CLR's
    pre-training (PyCIL's 200) and MIND's teacher (50, cifar100_exp.sh) keep theirs unless
    named as a recipe option."""
    bmc = resolve(method_class("bmc"), epochs=epochs, lr=0.5)
    assert [bmc.phase(p).epochs for p in ("first", "later", "consolidation")] == \
        [epochs, epochs, 100]
    assert bmc.phase("later").lr == 0.5 and bmc.phase("consolidation").lr == 0.01
    clr = resolve(method_class("clr"), epochs=epochs)
    assert (clr.phase("task").epochs, clr.phase("pretrain").epochs) == (epochs, 200)
    mind = resolve(method_class("mind"), epochs=epochs)
    assert (mind.phase("distill").epochs, mind.phase("teacher").epochs) == (epochs, 50)
    named = resolve(method_class("bmc"), options=(("consolidation", {"epochs": 3}),),
                    epochs=epochs)
    assert named.phase("consolidation").epochs == 3
    replay = resolve(method_class("replay"), epochs=epochs)   # no task_phases: every phase
    assert replay.phase("first").epochs == replay.phase("later").epochs == epochs


def test_bmc_run_with_epochs_2_trains_100_consolidation_epochs_and_the_row_says_so():
    """`clbudget run --method bmc --epochs 2` (2 tasks): experts train 2 epochs, every
    consolidation 100 (the FLOP tally records each consolidation `fit`; a task's loss history
    is its expert's 2 epochs then the consolidation's 100), and the row shows both."""
    import dataclasses
    spec = dataclasses.replace(tiny_spec("bmc", epochs=None, num_classes=4), epochs=2)
    row = run_experiment(spec)
    assert row["phase_epochs"] == {"first": 2, "later": 2, "consolidation": 100}
    assert [p["epochs"] for p in row["flops_by_phase"]] == [100, 100]
    assert [len(losses) for losses in row["losses"]] == [102, 102]
    from clbudget.analysis.rows import recipe_label     # reports show it beside the recipe
    assert recipe_label(row).endswith("; first 2, later 2, consolidation 100 ep]")


def test_options_overrides_and_precision_change_the_fingerprint():
    cls = method_class("replay")
    ref = resolve(cls)
    five = resolve(cls, options=(("later", {"epochs": 5}),))
    assert five.phase("later").epochs == 5 and five.phase("first") == ref.phase("first")
    assert five.fingerprint != ref.fingerprint
    bf16 = resolve(cls, precision="bf16")
    assert bf16.precision == "bf16" and bf16.fingerprint != ref.fingerprint
    run_wide = resolve(cls, epochs=2, batch_size=16, lr=0.5)
    for phase in ("first", "later"):
        assert (run_wide.phase(phase).epochs, run_wide.phase(phase).batch_size,
                run_wide.phase(phase).lr) == (2, 16, 0.5)


def test_bad_recipes_and_phases_are_refused_with_the_nearest_name():
    with pytest.raises(ValueError, match="nearest: pycil-icarl"):
        get_recipe("pycil-icarll")
    with pytest.raises(ValueError, match="no training phase 'latr'.*nearest: later"):
        resolve(method_class("replay"), options=(("latr", {"epochs": 5}),))
    with pytest.raises(ValueError, match="later.epoch: no such field.*nearest: epochs"):
        resolve(method_class("replay"), options=(("later", {"epoch": 5}),))
    with pytest.raises(ValueError, match="precision must be"):
        resolve(method_class("replay"), precision="fp16")


def test_the_run_trains_with_and_records_its_recipe_and_training_work():
    spec = tiny_spec("replay", epochs=None, recipe_options=(("first", {"epochs": 2}),
                                                            ("later", {"epochs": 1})))
    row = run_experiment(spec)
    assert row["recipe"]["name"] == "pycil-replay" and not row["recipe"]["imposed"]
    assert row["recipe"]["phases"]["first"]["epochs"] == 2
    assert [len(loss) for loss in row["losses"]] == [2, 1, 1]
    n = [40 * 2, 40 * 2, 40 * 2]    # 2 classes x 40 images per task, plus the memory later
    per_task = row["train_images_per_task"]
    assert per_task[0] == 2 * n[0] and per_task[1] > n[1] and per_task[2] > n[2]
    assert row["train_images"] == sum(per_task)
    assert spec.key != tiny_spec("replay", epochs=None, recipe_options=(
        ("first", {"epochs": 2}), ("later", {"epochs": 2}))).key
    assert tiny_spec("replay").key != tiny_spec("replay", precision="bf16").key


def test_bf16_precision_turns_autocast_on():
    from clbudget.experiment.run import prepare
    _, ctx, _ = prepare(tiny_spec("finetune", precision="bf16"))
    assert ctx.trainer.amp and ctx.recipe.precision == "bf16"
    _, ctx, _ = prepare(tiny_spec("finetune"))
    assert not ctx.trainer.amp and ctx.recipe.precision == "fp32"


def test_cli_lists_recipes_and_takes_recipe_flags(capsys, tmp_path):
    code, out, err = cli(capsys, "recipes", "--json")
    assert code == 0, err
    names = {r["name"] for r in json.loads(out)["recipes"]}
    assert {"pycil-icarl", "mammoth-seq-cifar10-derpp", "bmc", "clr", "mind"} <= names
    code, out, err = cli(capsys, "run", "--method", "finetune", "--budget", "5xconv2+300ex",
                         "--init", "0", "--inc", "2", "--num-classes", "4", "--backbone",
                         "conv2", "--device", "cpu", "--glyphs", "num_classes=4", "--glyphs",
                         "train_per_class=20", "--glyphs", "test_per_class=8", "--glyphs",
                         "image_size=16", "--recipe", "mammoth-seq-cifar10-derpp",
                         "--recipe-option", "first.epochs=1", "--recipe-option",
                         "later.epochs=1", "--json")
    assert code == 0, err
    row = json.loads(out)
    assert row["recipe"]["name"] == "mammoth-seq-cifar10-derpp" and row["recipe"]["imposed"]
    assert row["recipe"]["phases"]["first"]["batch_size"] == 32
    code, _, err = cli(capsys, "run", "--method", "finetune", "--budget", "1MiB", "--init", "0",
                       "--inc", "2", "--recipe", "pycil-icarll")
    assert code == 2 and "nearest: pycil-icarl" in err and len(err.strip().splitlines()) == 1


SWEEP_TINY = ["--budgets", "5xconv2+300ex", "--seeds", "0", "--dataset", "glyphs", "--init",
              "0", "--inc", "2", "--num-classes", "4", "--glyphs", "num_classes=4", "--glyphs",
              "train_per_class=12", "--glyphs", "test_per_class=4", "--glyphs",
              "image_size=16", "--backbone", "conv2", "--device", "cpu", "--epochs", "1"]


def test_a_sweep_mixing_recipes_warns_and_the_report_and_audit_show_it(capsys, tmp_path):
    from clbudget.analysis.audit import recipe_flags
    from clbudget.experiment.store import ResultStore
    out = tmp_path / "mixed"
    code, _, err = cli(capsys, "sweep", "--methods", "replay,derpp", *SWEEP_TINY, "--out",
                       str(out), "--json")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "mixes training recipes" in line]
    assert len(warnings) == 2                          # one line per recipe, naming methods
    assert any("replay" in w and "pycil-replay" in w for w in warnings)
    assert any("derpp" in w and "mammoth-seq-cifar10-derpp" in w for w in warnings)
    code, report_out, err = cli(capsys, "report", str(out), "--json")
    assert code == 0, err
    assert "different recipes" in err
    md = (out / "report" / "summary.md").read_text()
    assert "pycil-replay [" in md and "mammoth-seq-cifar10-derpp [" in md and "] (differs)" in md
    csv_text = (out / "report" / "table.csv").read_text()
    assert "recipe" in csv_text.splitlines()[0] and "True" in csv_text
    rows = ResultStore(out).rows()
    by = {m: [r for r in rows if r["method"] == m] for m in ("replay", "derpp")}
    flags = recipe_flags(by["replay"], by["derpp"], "replay", "derpp")
    assert [f["kind"] for f in flags] == ["recipe"]


def test_an_imposed_recipe_trains_every_method_alike_without_warning(capsys, tmp_path):
    from clbudget.analysis.audit import recipe_flags
    from clbudget.experiment.store import ResultStore
    out = tmp_path / "imposed"
    code, _, err = cli(capsys, "sweep", "--methods", "replay,derpp", *SWEEP_TINY, "--recipe",
                       "pycil-replay", "--out", str(out), "--json")
    assert code == 0, err
    assert "mixes training recipes" not in err
    rows = ResultStore(out).rows()
    recipes = {r["method"]: r["recipe"] for r in rows}
    assert recipes["replay"]["phases"] == recipes["derpp"]["phases"]
    assert recipes["derpp"]["fingerprint"] == recipes["replay"]["fingerprint"]
    assert recipes["derpp"]["imposed"] and not recipes["replay"]["imposed"]
    assert recipes["derpp"]["augmentation"] == "crop-flip-brightness63"
    by = {m: [r for r in rows if r["method"] == m] for m in ("replay", "derpp")}
    assert recipe_flags(by["replay"], by["derpp"], "replay", "derpp") == []
    code, _, err = cli(capsys, "report", str(out), "--json")
    assert code == 0 and "different recipes" not in err
    assert "] (differs)" not in (out / "report" / "summary.md").read_text()


def test_a_config_file_overrides_a_recipe_field_for_every_method(capsys, tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text("methods: [replay, icarl]\nrecipe: pycil-icarl\nrecipe_option:\n"
                      "  later: {epochs: 3, lr: 0.05}\n")
    code, out, err = cli(capsys, "sweep", "--config", str(config), *SWEEP_TINY[:-2],
                         "--out", str(tmp_path / "c"), "--dry-run", "--json")
    assert code == 0, err
    assert "mixes training recipes" not in err
    from clbudget.experiment.run import RunSpec
    cells = json.loads(out)["cells"]
    labels = {c["recipe"] for c in cells}
    assert len(labels) == 1 and labels.pop().startswith("pycil-icarl [")
    spec = RunSpec(method="replay", budget="1MiB", recipe="pycil-icarl",
                   recipe_options=(("later", {"epochs": 3, "lr": 0.05}),))
    later = spec.resolved_recipe().phase("later")
    assert (later.epochs, later.lr, later.milestones) == (3, 0.05, (80, 120))
