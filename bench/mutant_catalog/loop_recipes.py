"""Mutants of the training recipes (train/recipes.py, train/recipe.py, train/recipe_book.py): each
method's reference recipe, imposed recipes, fingerprints.

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only loop.recipes
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import (
    PROOF, BLIND1, BLIND2, BLIND3, BLIND1_TESTS, BLIND2_TESTS, BLIND3_TESTS)

AREA = "loop.recipes"
RECIPES = "clbudget/train/recipes.py"
RECIPE_BOOK = "clbudget/train/recipe_book.py"
RECIPE = "clbudget/train/recipe.py"
T_LOOP_RECIPES = "tests/test_loop_recipes.py"

MUTANTS = [
    # --- clbudget/train/recipes.py ---------------------------------------------------------------
    Mutant("loop.recipes.epochs_override_ignored", RECIPES,
           "        cfg = cfg.with_epochs(epochs)\n",
           "",
           (f"{T_LOOP_RECIPES}::test_fit_builds_the_recipes_optimizer_and_schedule_at_any_epochs",),
           "--epochs does not reach the phases", origin=PROOF),
    Mutant("loop.recipes.run_epochs_without_milestone_scaling", RECIPES,
           "cfg = cfg.with_epochs(epochs)",
           "cfg = replace(cfg, epochs=epochs) if epochs else cfg",
           BLIND2_TESTS["loop"],
           "--epochs replaces a task phase's epochs without scaling its milestones: the lr never decays in a short run",
           origin=BLIND2),
    Mutant("loop.recipes.run_epochs_on_every_phase", RECIPES,
           "        if phase not in task_phases:\n            continue\n        cfg = cfg.with_epochs(epochs)",
           "        cfg = cfg.with_epochs(epochs)",
           BLIND3_TESTS["loop"],
           "--epochs/--batch-size/--lr also rewrite non-task phases (BMC consolidation, CLR "
           "pretrain, MIND teacher)", origin=BLIND3),
    Mutant("loop.recipes.imposed_recipe_task_phase_from_own", RECIPES,
           "if source not in base.phase_names and phase not in task_phases:",
           "if source not in base.phase_names:",
           BLIND3_TESTS["loop"],
           "a task phase missing from an imposed recipe comes from the method's own reference, "
           "not its phase_fallbacks (CLR's task under a pycil recipe)", origin=BLIND3),
    Mutant("loop.recipes.normalization_not_compared", RECIPES,
           'for key in ("precision", "augmentation", "normalization"):',
           'for key in ("precision", "augmentation"):',
           BLIND3_TESTS["loop"],
           "recipes differing only in normalisation are reported as training alike",
           origin=BLIND3),
    # --- clbudget/train/recipe_book.py -----------------------------------------------------------
    Mutant("loop.recipes.lwf_first_milestones", RECIPE_BOOK,
           "milestones=(60, 120, 160), weight_decay=5e-4",
           "milestones=(60, 120, 170), weight_decay=5e-4",
           (f"{T_LOOP_RECIPES}::test_fit_builds_the_recipes_optimizer_and_schedule_at_any_epochs",),
           "LwF's first task takes the other methods' milestones", origin=PROOF),
    Mutant("loop.recipes.mind_distill_gamma", RECIPE_BOOK,
           "milestones=(40,), gamma=0.5",
           "milestones=(40,), gamma=0.1",
           (f"{T_LOOP_RECIPES}::test_fit_builds_the_recipes_optimizer_and_schedule_at_any_epochs",),
           "MIND's distillation decays by 0.1", origin=PROOF),
    Mutant("loop.recipes.pycil_first_milestone_160", RECIPE_BOOK,
           "PYCIL_FIRST = LoopConfig(epochs=200, lr=0.1, milestones=(60, 120, 170), "
           "weight_decay=5e-4)",
           "PYCIL_FIRST = LoopConfig(epochs=200, lr=0.1, milestones=(60, 120, 160), "
           "weight_decay=5e-4)",
           BLIND1_TESTS["loop"],
           "PyCIL's first-task last milestone 160 (LwF's) instead of 170", origin=BLIND1),
    Mutant("loop.recipes.mind_distill_milestone_copy", RECIPE_BOOK,
           "weight_decay=0.0, milestones=(40,), gamma=0.5)",
           "weight_decay=0.0, milestones=(35,), gamma=0.5)",
           BLIND1_TESTS["loop"],
           "MIND distillation phase copies the teacher's milestone 35 (reference: 40)",
           origin=BLIND1),
    Mutant("loop.recipes.mammoth_keeps_momentum", RECIPE_BOOK,
           "MAMMOTH = LoopConfig(epochs=50, batch_size=32, lr=0.03, momentum=0.0, weight_decay=0.0,",
           "MAMMOTH = LoopConfig(epochs=50, batch_size=32, lr=0.03, weight_decay=0.0,",
           BLIND3_TESTS["loop"],
           "Mammoth seq-cifar10 recipes get LoopConfig's default momentum 0.9 instead of 0",
           origin=BLIND3),
    # the same slip as loop.recipes.lwf_first_milestones, written again by another round
    Mutant("loop.recipes.lwf_first_milestones_2", RECIPE_BOOK,
           "first=LoopConfig(epochs=200, lr=0.1, milestones=(60, 120, 160), weight_decay=5e-4))",
           "first=LoopConfig(epochs=200, lr=0.1, milestones=(60, 120, 170), weight_decay=5e-4))",
           BLIND3_TESTS["loop"],
           "pycil-lwf's first task decays at 170 (the other methods') instead of PyCIL lwf's 160",
           origin=BLIND3),
    Mutant("loop.recipes.mammoth_c100_ewc_gamma", RECIPE_BOOK,
           "MAMMOTH_C100_EWC = replace(MAMMOTH_C100, gamma=0.1, lr=0.1)",
           "MAMMOTH_C100_EWC = replace(MAMMOTH_C100, lr=0.1)",
           BLIND3_TESTS["loop"],
           "mammoth-seq-cifar100-ewc_on decays by derpp's 0.2 instead of 0.1", origin=BLIND3),
    Mutant("loop.recipes.bmc_consolidation_shuffled", RECIPE_BOOK,
           'sampler="balanced", augment=False)',
           "augment=False)",
           BLIND3_TESTS["loop"],
           "BMC's consolidation samples every sample once per epoch instead of balanced by "
           "buffer", origin=BLIND3),
    Mutant("loop.recipes.mind_distill_lr_copied", RECIPE_BOOK,
           "weight_decay=0.0, milestones=(35,), gamma=0.5)),\n     (\"distill\", LoopConfig(epochs=50, batch_size=256, optimizer=\"adam\", lr=0.035,",
           "weight_decay=0.0, milestones=(35,), gamma=0.5)),\n     (\"distill\", LoopConfig(epochs=50, batch_size=256, optimizer=\"adam\", lr=0.005,",
           BLIND3_TESTS["loop"],
           "MIND's distillation phase copies the teacher's lr 0.005 instead of 0.035",
           origin=BLIND3),
    # --- clbudget/train/recipe.py ----------------------------------------------------------------
    Mutant("loop.recipes.fingerprint_ignores_normalization", RECIPE,
           'for k in ("precision", "phases", "augmentation",\n'
           '                                             "normalization")},',
           'for k in ("precision", "phases", "augmentation")},',
           BLIND1_TESTS["loop"],
           "recipes differing only in normalisation share a fingerprint", origin=BLIND1),
]
