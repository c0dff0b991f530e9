"""Mutants of the evaluation protocol as the references run it: class order, normalisation choice,
each baseline's reference evaluation and recipe, import layering of the CLI.

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only protocol
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import MECHANISM

AREA = "protocol"
RUN = "clbudget/experiment/run.py"
RECIPES = "clbudget/train/recipes.py"
PROTOCOL = "clbudget/streams/protocol.py"
AUDIT_PAIRING = "clbudget/analysis/audit_pairing.py"
SWEEP = "clbudget/experiment/sweep.py"
SUMMARY = "clbudget/analysis/summary.py"
AUDIT_COMMANDS = "clbudget/analysis/audit_commands.py"
EVALUATE = "clbudget/experiment/evaluate.py"
ICARL = "clbudget/methods/icarl.py"
DERPP = "clbudget/methods/derpp.py"
RECIPE_BOOK = "clbudget/train/recipe_book.py"
BACKBONES = "clbudget/nets/backbones.py"
EWC = "clbudget/methods/ewc.py"
JOINT = "clbudget/methods/joint.py"
DATA = "clbudget/cli/data.py"
STATE = "clbudget/methods/state.py"
T_AUDIT = "tests/test_audit.py"
T_CLASS_ORDER = "tests/test_class_order.py"
T_IMPORT_CYCLES = "tests/test_import_cycles.py"
T_PROTOCOL = "tests/test_protocol.py"

MUTANTS = [
    # --- clbudget/experiment/run.py --------------------------------------------------------------
    Mutant("protocol.normalization_pipeline_ignores_choice", RUN,
           "    pipeline = Pipeline(norm.mean, norm.std, brightness=AUGMENTATIONS[recipe.augmentation])\n",
           "    pipeline = Pipeline.from_images(train_x, brightness=AUGMENTATIONS[recipe.augmentation])\n",
           (f"{T_PROTOCOL}::test_rows_record_the_normalisation_the_pipeline_applied",),
           "the pipeline normalises by train-set statistics whatever the row says",
           origin=MECHANISM),
    Mutant("protocol.normalization_choice_ignored", RUN,
           "    norm = normalization_for(recipe, spec.dataset, train_x, spec.normalization)\n",
           "    norm = normalization_for(recipe, spec.dataset, train_x)\n",
           (f"{T_PROTOCOL}::test_rows_record_the_normalisation_the_pipeline_applied",),
           "--normalization has no effect", origin=MECHANISM),
    Mutant("protocol.shuffle_seed_always_1993", RUN,
           '"class_order_shuffle_seed": spec.order_seed,',
           '"class_order_shuffle_seed": 1993,',
           (f"{T_CLASS_ORDER}::test_rows_record_the_shuffle_seed_that_ran",),
           "rows record class_order_shuffle_seed as 1993 whatever ran: per-seed and unshuffled "
           "runs would still say 1993 (a survivor of a blind round)", origin=MECHANISM),
    # --- clbudget/train/recipes.py ---------------------------------------------------------------
    Mutant("protocol.normalization_fallback_labelled_constants", RECIPES,
           '    return Normalization("train-set", stats.mean, stats.std, why=why)\n',
           '    return Normalization("constants", stats.mean, stats.std, recipe.normalization, '
           'dataset, why=why)\n',
           (f"{T_PROTOCOL}::test_rows_record_the_normalisation_the_pipeline_applied",),
           "the train-set fallback recorded as the recipe's constants (the issue's finding)",
           origin=MECHANISM),
    Mutant("protocol.declared_dataset_ignored", RECIPES,
           '    return key.split(":")[1] if kind == "constants" else dataset',
           "    return dataset",
           (f"{T_PROTOCOL}::test_mammoth_methods_pick_their_data_sets_recipe",
            f"{T_PROTOCOL}::test_normalization_choice_errors_name_the_nearest_valid_value"),
           "a tree declared cifar100 by --normalization keeps seq-cifar10's recipe",
           origin=MECHANISM),
    # --- clbudget/streams/protocol.py ------------------------------------------------------------
    Mutant("protocol.per_seed_order_uses_fixed_seed", PROTOCOL,
           '    return {"fixed": class_order_seed, "per-seed": seed, "unshuffled": None}[protocol]',
           '    return {"fixed": class_order_seed, "per-seed": class_order_seed, '
           '"unshuffled": None}[protocol]',
           (f"{T_PROTOCOL}::test_class_order_protocols_follow_pycils_setup_data",
            f"{T_PROTOCOL}::test_sweep_with_per_seed_orders_records_a_different_order_per_seed"),
           "per-seed orders all shuffled with 1993", origin=MECHANISM),
    Mutant("protocol.unshuffled_is_shuffled", PROTOCOL,
           "    if class_order_seed is None:\n        return list(range(num_classes))\n",
           "    if class_order_seed is None:\n        class_order_seed = 1993\n",
           (f"{T_PROTOCOL}::test_class_order_protocols_follow_pycils_setup_data",),
           "PyCIL's shuffle false still shuffles", origin=MECHANISM),
    # --- clbudget/analysis/audit_pairing.py ------------------------------------------------------
    Mutant("protocol.pairing_flags_per_seed_orders", AUDIT_PAIRING,
           "    if common:\n        return any(oa[s] != ob[s] for s in common)\n",
           "    if common:\n        return len(set().union(*oa.values(), *ob.values())) > 1\n",
           (f"{T_PROTOCOL}::test_sweep_with_per_seed_orders_records_a_different_order_per_seed",),
           "audit pairing flags per-seed orders of the same seeds as a mismatch",
           origin=MECHANISM),
    # --- clbudget/experiment/sweep.py ------------------------------------------------------------
    Mutant("protocol.sweep_default_fixed", SWEEP,
           'SWEEP_CLASS_ORDER = "per-seed"',
           'SWEEP_CLASS_ORDER = "fixed"',
           (f"{T_CLASS_ORDER}::test_sweep_defaults_to_per_seed_and_the_report_says_so",),
           "a sweep without --class-order holds the class order fixed for every seed",
           origin=MECHANISM),
    Mutant("protocol.sweep_ignores_fixed_store", SWEEP,
           "    if not fixed:\n        return SWEEP_CLASS_ORDER, \"\"",
           "    if True:\n        return SWEEP_CLASS_ORDER, \"\"",
           (f"{T_CLASS_ORDER}::test_a_store_of_fixed_order_runs_is_resumed_as_fixed",),
           "rerunning a sweep into a store of fixed-order runs starts a per-seed setting beside it",
           origin=MECHANISM),
    # --- clbudget/analysis/summary.py ------------------------------------------------------------
    Mutant("protocol.report_hides_class_order", SUMMARY,
           '            "class_order": class_order_protocol(r),',
           '            "class_order": "fixed (seed 1993)",',
           (f"{T_CLASS_ORDER}::test_sweep_defaults_to_per_seed_and_the_report_says_so",
            f"{T_CLASS_ORDER}::test_headlines_and_audit_state_the_class_order_beside_intervals"),
           "reports call every interval's class order fixed whatever ran", origin=MECHANISM),
    # --- clbudget/analysis/audit_commands.py -----------------------------------------------------
    Mutant("protocol.audit_sweep_command_default_order", AUDIT_COMMANDS,
           '        cmd += " --class-order fixed"',
           "        pass",
           (T_AUDIT,),
           "the audit's sweep command for a fixed-order claim runs per-seed orders",
           origin=MECHANISM),
    # --- clbudget/experiment/evaluate.py ---------------------------------------------------------
    Mutant("protocol.icarl_cnn_evaluated_with_nme", EVALUATE,
           "    scores = scores or method.scores\n",
           "    scores = method.scores\n",
           (f"{T_PROTOCOL}::test_icarl_rows_carry_nme_and_cnn_accuracies_by_value",),
           "the CNN accuracy is the NME classifier's again", origin=MECHANISM),
    # --- clbudget/methods/icarl.py ---------------------------------------------------------------
    Mutant("protocol.icarl_headline_cnn", ICARL,
           '    headline = "nme"',
           '    headline = "cnn"',
           (f"{T_PROTOCOL}::test_icarl_rows_carry_nme_and_cnn_accuracies_by_value",),
           "iCaRL's headline named after the wrong classifier", origin=MECHANISM),
    # --- clbudget/methods/derpp.py ---------------------------------------------------------------
    Mutant("protocol.derpp_one_recipe_for_all", DERPP,
           '        _entry(500, 0.3, 0.5, 32, "mammoth-seq-cifar100-derpp"),)),',
           "        _entry(500, 0.3, 0.5, 32, _C10),)),",
           (f"{T_PROTOCOL}::test_mammoth_methods_pick_their_data_sets_recipe[derpp-derpp]",),
           "DER++ on CIFAR-100 trains with seq-cifar10's constant lr", origin=MECHANISM),
    Mutant("protocol.derpp_replay_not_augmented", DERPP,
           "            return trainer.pipeline(memory.images_at(i), augment, trainer.generator), i",
           "            return trainer.pipeline(memory.images_at(i), False, trainer.generator), i",
           (f"{T_PROTOCOL}::test_derpp_replays_buffer_samples_through_the_train_transform",),
           "DER++ replays un-augmented buffer samples", origin=MECHANISM),
    # --- clbudget/train/recipe_book.py -----------------------------------------------------------
    Mutant("protocol.cifar100_no_decay", RECIPE_BOOK,
           "                          milestones=(35, 45), gamma=0.2)",
           "                          milestones=(), gamma=0.2)",
           (f"{T_PROTOCOL}::test_mammoth_methods_pick_their_data_sets_recipe",),
           "seq-cifar100 without the decay at 35/45", origin=MECHANISM),
    Mutant("protocol.cycle_recipes", RECIPE_BOOK,
           "from clbudget.train.recipe import Recipe, register_recipe",
           "from clbudget.train.recipes import Recipe, register_recipe",
           (f"{T_IMPORT_CYCLES}::test_clbudget_has_no_import_cycle",),
           "recipe_book imports recipes, which loads the book", origin=MECHANISM),
    # --- clbudget/nets/backbones.py --------------------------------------------------------------
    Mutant("protocol.mammoth_resnet18_imagenet_stem", BACKBONES,
           "                                                     (2, 2, 2, 2), c, True),",
           "                                                     (2, 2, 2, 2), c, s <= 16),",
           (f"{T_PROTOCOL}::test_mammoth_resnet18_has_the_parameters_counted_by_hand",),
           "Mammoth's ResNet18 with the ImageNet stem (7x7 stride 2 + maxpool)", origin=MECHANISM),
    # --- clbudget/methods/ewc.py -----------------------------------------------------------------
    Mutant("protocol.ewc_fisher_eval_mode", EWC,
           "    was_training = net.training\n    net.train()\n    params = list(net.parameters())",
           "    was_training = net.training\n    net.eval()\n    params = list(net.parameters())",
           (f"{T_PROTOCOL}::test_ewc_fisher_is_mammoths_train_mode_augmented_per_image_pass",),
           "the Fisher pass with BN in eval mode (the former deviation)", origin=MECHANISM),
    Mutant("protocol.ewc_fisher_not_augmented", EWC,
           "        xb = trainer.pipeline(x[idx.to(x.device)].to(trainer.device), augment, "
           "trainer.generator)",
           "        xb = trainer.pipeline(x[idx.to(x.device)].to(trainer.device), False, "
           "trainer.generator)",
           (f"{T_PROTOCOL}::test_ewc_fisher_is_mammoths_train_mode_augmented_per_image_pass",),
           "the Fisher pass on un-augmented images", origin=MECHANISM),
    Mutant("protocol.ewc_fisher_divided_by_examples", EWC,
           "    return [f / (batches * batch_size) for f in fisher]",
           "    return [f / n for f in fisher]",
           (f"{T_PROTOCOL}::test_ewc_fisher_is_mammoths_train_mode_augmented_per_image_pass",),
           "divided by the examples, not Mammoth's batches x batch size", origin=MECHANISM),
    Mutant("protocol.ewc_default_fisher_eval", EWC,
           '    fisher: str = "mammoth"',
           '    fisher: str = "eval"',
           (f"{T_PROTOCOL}::test_ewc_fisher_is_mammoths_train_mode_augmented_per_image_pass",),
           "the default Fisher is the eval-mode alternative", origin=MECHANISM),
    # --- clbudget/methods/joint.py ---------------------------------------------------------------
    Mutant("protocol.joint_continues", JOINT,
           '    start: str = "scratch"',
           '    start: str = "continue"',
           (f"{T_PROTOCOL}::test_joint_trains_a_fresh_network_at_every_task[scratch]",),
           "joint's default continues the previous network", origin=MECHANISM),
    Mutant("protocol.joint_scratch_with_later_phase", JOINT,
           '        return super().phase(name or ("first" if self.from_scratch else None))',
           "        return super().phase(name)",
           (f"{T_PROTOCOL}::test_joint_trains_a_fresh_network_at_every_task[scratch]",),
           "a fresh joint network trains with the later-task phase", origin=MECHANISM),
    # --- clbudget/cli/data.py --------------------------------------------------------------------
    Mutant("protocol.cycle_cli", DATA,
           "    from clbudget.streams.download import archive_of, download\n",
           "    from clbudget.streams.download import archive_of, download\n"
           "    from clbudget.cli import main  # noqa: F401\n",
           (f"{T_IMPORT_CYCLES}::test_clbudget_has_no_import_cycle",),
           "cli/data.py imports the cli package again", origin=MECHANISM),
    # --- clbudget/methods/state.py ---------------------------------------------------------------
    Mutant("protocol.cycle_methods", STATE,
           '    module, _, qualname = name.partition(":")\n'
           "    from clbudget.methods.names import trusted_modules\n",
           '    module, _, qualname = name.partition(":")\n'
           "    from clbudget.methods.external import trusted_modules\n",
           (f"{T_IMPORT_CYCLES}::test_clbudget_has_no_import_cycle",),
           "state imports external (-> base -> state)", origin=MECHANISM),
]
