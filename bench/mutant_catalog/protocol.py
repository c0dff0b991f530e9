"""Mutants of the protocol choices of issue 24: the recorded normalisation, class order per
seed, iCaRL's two accuracies, Mammoth's per-data-set recipes and backbone, EWC's Fisher pass,
DER++'s augmented replay, joint from scratch, and the import graph without cycles.

    python -m bench.mutants --only protocol
"""
from bench.mutant_catalog import Mutant

T = "tests/test_protocol.py"
CYCLES = "tests/test_import_cycles.py::test_clbudget_has_no_import_cycle"


def t(*names):
    return tuple(f"{T}::{n}" for n in names)


MUTANTS = [
    # --- normalisation recorded as applied -------------------------------------------------
    Mutant("protocol.normalization_pipeline_ignores_choice", "clbudget/experiment/run.py",
           "    pipeline = Pipeline(norm.mean, norm.std, brightness=AUGMENTATIONS[recipe.augmentation])\n",
           "    pipeline = Pipeline.from_images(train_x, brightness=AUGMENTATIONS[recipe.augmentation])\n",
           t("test_rows_record_the_normalisation_the_pipeline_applied"),
           "the pipeline normalises by train-set statistics whatever the row says"),
    Mutant("protocol.normalization_fallback_labelled_constants", "clbudget/train/recipes.py",
           '    return Normalization("train-set", stats.mean, stats.std, why=why)\n',
           '    return Normalization("constants", stats.mean, stats.std, recipe.normalization, '
           'dataset, why=why)\n',
           t("test_rows_record_the_normalisation_the_pipeline_applied"),
           "the train-set fallback recorded as the recipe's constants (the issue's finding)"),
    Mutant("protocol.normalization_choice_ignored", "clbudget/experiment/run.py",
           "    norm = normalization_for(recipe, spec.dataset, train_x, spec.normalization)\n",
           "    norm = normalization_for(recipe, spec.dataset, train_x)\n",
           t("test_rows_record_the_normalisation_the_pipeline_applied"),
           "--normalization has no effect"),
    # --- class order -----------------------------------------------------------------------
    Mutant("protocol.per_seed_order_uses_fixed_seed", "clbudget/streams/protocol.py",
           '    return {"fixed": class_order_seed, "per-seed": seed, "unshuffled": None}[protocol]',
           '    return {"fixed": class_order_seed, "per-seed": class_order_seed, '
           '"unshuffled": None}[protocol]',
           t("test_class_order_protocols_follow_pycils_setup_data",
             "test_sweep_with_per_seed_orders_records_a_different_order_per_seed"),
           "per-seed orders all shuffled with 1993"),
    Mutant("protocol.unshuffled_is_shuffled", "clbudget/streams/protocol.py",
           "    if class_order_seed is None:\n        return list(range(num_classes))\n",
           "    if class_order_seed is None:\n        class_order_seed = 1993\n",
           t("test_class_order_protocols_follow_pycils_setup_data"),
           "PyCIL's shuffle false still shuffles"),
    Mutant("protocol.pairing_flags_per_seed_orders", "clbudget/analysis/audit_pairing.py",
           "    if common:\n        return any(oa[s] != ob[s] for s in common)\n",
           "    if common:\n        return len(set().union(*oa.values(), *ob.values())) > 1\n",
           t("test_sweep_with_per_seed_orders_records_a_different_order_per_seed"),
           "audit pairing flags per-seed orders of the same seeds as a mismatch"),
    Mutant("protocol.shuffle_seed_always_1993", "clbudget/experiment/run.py",
           '"class_order_shuffle_seed": spec.order_seed,',
           '"class_order_shuffle_seed": 1993,',
           ("tests/test_class_order.py::test_rows_record_the_shuffle_seed_that_ran",),
           "rows record class_order_shuffle_seed as 1993 whatever ran: per-seed and unshuffled "
           "runs would still say 1993 (a survivor of a blind round)"),
    Mutant("protocol.sweep_default_fixed", "clbudget/experiment/sweep.py",
           'SWEEP_CLASS_ORDER = "per-seed"', 'SWEEP_CLASS_ORDER = "fixed"',
           ("tests/test_class_order.py::test_sweep_defaults_to_per_seed_and_the_report_says_so",),
           "a sweep without --class-order holds the class order fixed for every seed"),
    Mutant("protocol.sweep_ignores_fixed_store", "clbudget/experiment/sweep.py",
           "    if not fixed:\n        return SWEEP_CLASS_ORDER, \"\"",
           "    if True:\n        return SWEEP_CLASS_ORDER, \"\"",
           ("tests/test_class_order.py::test_a_store_of_fixed_order_runs_is_resumed_as_fixed",),
           "rerunning a sweep into a store of fixed-order runs starts a per-seed setting beside it"),
    Mutant("protocol.report_hides_class_order", "clbudget/analysis/summary.py",
           '            "class_order": class_order_protocol(r),',
           '            "class_order": "fixed (seed 1993)",',
           ("tests/test_class_order.py::test_sweep_defaults_to_per_seed_and_the_report_says_so",
            "tests/test_class_order.py::test_headlines_and_audit_state_the_class_order_beside_"
            "intervals"),
           "reports call every interval's class order fixed whatever ran"),
    Mutant("protocol.audit_sweep_command_default_order", "clbudget/analysis/audit_commands.py",
           '        cmd += " --class-order fixed"', "        pass",
           ("tests/test_audit.py",),
           "the audit's sweep command for a fixed-order claim runs per-seed orders"),
    # --- iCaRL's two accuracies ------------------------------------------------------------
    Mutant("protocol.icarl_cnn_evaluated_with_nme", "clbudget/experiment/evaluate.py",
           "    scores = scores or method.scores\n", "    scores = method.scores\n",
           t("test_icarl_rows_carry_nme_and_cnn_accuracies_by_value"),
           "the CNN accuracy is the NME classifier's again"),
    Mutant("protocol.icarl_headline_cnn", "clbudget/methods/icarl.py",
           '    headline = "nme"', '    headline = "cnn"',
           t("test_icarl_rows_carry_nme_and_cnn_accuracies_by_value"),
           "iCaRL's headline named after the wrong classifier"),
    # --- Mammoth per data set --------------------------------------------------------------
    Mutant("protocol.derpp_one_recipe_for_all", "clbudget/methods/derpp.py",
           '        _entry(500, 0.3, 0.5, 32, "mammoth-seq-cifar100-derpp"),)),',
           "        _entry(500, 0.3, 0.5, 32, _C10),)),",
           (f"{T}::test_mammoth_methods_pick_their_data_sets_recipe[derpp-derpp]",),
           "DER++ on CIFAR-100 trains with seq-cifar10's constant lr"),
    Mutant("protocol.cifar100_no_decay", "clbudget/train/recipe_book.py",
           "                          milestones=(35, 45), gamma=0.2)",
           "                          milestones=(), gamma=0.2)",
           (f"{T}::test_mammoth_methods_pick_their_data_sets_recipe",),
           "seq-cifar100 without the decay at 35/45"),
    Mutant("protocol.declared_dataset_ignored", "clbudget/train/recipes.py",
           '    return key.split(":")[1] if kind == "constants" else dataset',
           "    return dataset",
           (f"{T}::test_mammoth_methods_pick_their_data_sets_recipe",
            f"{T}::test_normalization_choice_errors_name_the_nearest_valid_value"),
           "a tree declared cifar100 by --normalization keeps seq-cifar10's recipe"),
    Mutant("protocol.mammoth_resnet18_imagenet_stem", "clbudget/nets/backbones.py",
           "                                                     (2, 2, 2, 2), c, True),",
           "                                                     (2, 2, 2, 2), c, s <= 16),",
           t("test_mammoth_resnet18_has_the_parameters_counted_by_hand"),
           "Mammoth's ResNet18 with the ImageNet stem (7x7 stride 2 + maxpool)"),
    # --- EWC's Fisher (Mammoth ewc_on end_task) -------------------------------------------
    Mutant("protocol.ewc_fisher_eval_mode", "clbudget/methods/ewc.py",
           "    was_training = net.training\n    net.train()\n    params = list(net.parameters())",
           "    was_training = net.training\n    net.eval()\n    params = list(net.parameters())",
           t("test_ewc_fisher_is_mammoths_train_mode_augmented_per_image_pass"),
           "the Fisher pass with BN in eval mode (the former deviation)"),
    Mutant("protocol.ewc_fisher_not_augmented", "clbudget/methods/ewc.py",
           "        xb = trainer.pipeline(x[idx.to(x.device)].to(trainer.device), augment, "
           "trainer.generator)",
           "        xb = trainer.pipeline(x[idx.to(x.device)].to(trainer.device), False, "
           "trainer.generator)",
           t("test_ewc_fisher_is_mammoths_train_mode_augmented_per_image_pass"),
           "the Fisher pass on un-augmented images"),
    Mutant("protocol.ewc_fisher_divided_by_examples", "clbudget/methods/ewc.py",
           "    return [f / (batches * batch_size) for f in fisher]",
           "    return [f / n for f in fisher]",
           t("test_ewc_fisher_is_mammoths_train_mode_augmented_per_image_pass"),
           "divided by the examples, not Mammoth's batches x batch size"),
    Mutant("protocol.ewc_default_fisher_eval", "clbudget/methods/ewc.py",
           '    fisher: str = "mammoth"', '    fisher: str = "eval"',
           t("test_ewc_fisher_is_mammoths_train_mode_augmented_per_image_pass"),
           "the default Fisher is the eval-mode alternative"),
    # --- DER++ replays augmented batches ---------------------------------------------------
    Mutant("protocol.derpp_replay_not_augmented", "clbudget/methods/derpp.py",
           "            return trainer.pipeline(memory.images_at(i), augment, trainer.generator), i",
           "            return trainer.pipeline(memory.images_at(i), False, trainer.generator), i",
           t("test_derpp_replays_buffer_samples_through_the_train_transform"),
           "DER++ replays un-augmented buffer samples"),
    # --- joint from scratch ----------------------------------------------------------------
    Mutant("protocol.joint_continues", "clbudget/methods/joint.py",
           '    start: str = "scratch"', '    start: str = "continue"',
           (f"{T}::test_joint_trains_a_fresh_network_at_every_task[scratch]",),
           "joint's default continues the previous network"),
    Mutant("protocol.joint_scratch_with_later_phase", "clbudget/methods/joint.py",
           '        return super().phase(name or ("first" if self.from_scratch else None))',
           "        return super().phase(name)",
           (f"{T}::test_joint_trains_a_fresh_network_at_every_task[scratch]",),
           "a fresh joint network trains with the later-task phase"),
    # --- import cycles ---------------------------------------------------------------------
    Mutant("protocol.cycle_cli", "clbudget/cli/data.py",
           "    from clbudget.streams.download import archive_of, download\n",
           "    from clbudget.streams.download import archive_of, download\n"
           "    from clbudget.cli import main  # noqa: F401\n",
           (CYCLES,), "cli/data.py imports the cli package again"),
    Mutant("protocol.cycle_recipes", "clbudget/train/recipe_book.py",
           "from clbudget.train.recipe import Recipe, register_recipe",
           "from clbudget.train.recipes import Recipe, register_recipe",
           (CYCLES,), "recipe_book imports recipes, which loads the book"),
    Mutant("protocol.cycle_methods", "clbudget/methods/state.py",
           '    module, _, qualname = name.partition(":")\n'
           "    from clbudget.methods.names import trusted_modules\n",
           '    module, _, qualname = name.partition(":")\n'
           "    from clbudget.methods.external import trusted_modules\n",
           (CYCLES,), "state imports external (-> base -> state)"),
]
