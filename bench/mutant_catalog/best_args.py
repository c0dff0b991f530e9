"""Mutants of Mammoth's best arguments per data set and buffer size (methods/best_args.py, the
BEST_ARGS of methods/derpp.py and methods/ewc.py, their recipes in train/recipe_book.py).

    python -m bench.mutants --only derpp.best_args,ewc.best_args
"""
from bench.mutant_catalog import Mutant

T = "tests/test_best_args.py"
DERPP = "clbudget/methods/derpp.py"
EWC = "clbudget/methods/ewc.py"
BOOK = "clbudget/train/recipe_book.py"
RULE = "clbudget/methods/best_args.py"


def t(*names):
    return tuple(f"{T}::{n}" for n in names)


TABLES = t("test_derpp_takes_mammoths_best_args_per_data_set_and_buffer")
EWC_TABLES = t("test_ewc_takes_mammoths_best_args_per_data_set")
UNLISTED = t("test_an_unlisted_buffer_takes_the_nearest_listed_sizes_args_and_the_row_says_so")
MNIST = t("test_seq_mnist_buffers_pick_their_own_lr_and_minibatch")

MUTANTS = [
    # --- the values as Mammoth's files write them ------------------------------------------
    Mutant("derpp.best_args_cifar100_alpha_0_2", DERPP,
           '        _entry(500, 0.3, 0.5, 32, "mammoth-seq-cifar100-derpp"),)),',
           '        _entry(500, 0.2, 0.5, 32, "mammoth-seq-cifar100-derpp"),)),',
           TABLES + t("test_cifar100_lists_500_only_and_options_override_the_table"),
           "DER++ on CIFAR-100 at alpha 0.2 where models/config/derpp.yaml has 0.3 (the issue)"),
    Mutant("derpp.best_args_cifar10_5120_beta", DERPP,
           "        _entry(5120, 0.1, 1.0, 32, _C10))),", "        _entry(5120, 0.1, 0.5, 32, _C10))),",
           TABLES + UNLISTED, "seq-cifar10 5120's beta 1.0 replaced by 500's 0.5"),
    Mutant("derpp.best_args_mnist_minibatch", DERPP,
           "        _entry(200, 0.2, 1.0, 128, _MNIST),", "        _entry(200, 0.2, 1.0, 32, _MNIST),",
           TABLES + MNIST, "seq-mnist 200's replay minibatch 128 replaced by 32"),
    Mutant("derpp.best_args_mnist_5120_lr", BOOK,
           "        replace(MAMMOTH_MNIST, lr=0.1))", "        MAMMOTH_MNIST)",
           TABLES + MNIST + ("tests/test_loop_recipes.py",),
           "seq-mnist 5120 trains at lr 0.03 instead of best_args.py's 0.1"),
    Mutant("derpp.best_args_tinyimg_50_epochs", BOOK,
           '        "batch 32, 100 epochs at 200/500/5120) + datasets/seq_tinyimagenet.py (no '
           'schedule)",\n        replace(MAMMOTH, epochs=100))',
           '        "batch 32, 100 epochs at 200/500/5120) + datasets/seq_tinyimagenet.py (no '
           'schedule)",\n        MAMMOTH)',
           TABLES, "seq-tinyimg DER++ for 50 epochs instead of best_args.py's 100"),
    Mutant("ewc.best_args_cifar10_lr_0_03", BOOK,
           '"or weight decay (utils/args.py)", replace(MAMMOTH, lr=0.1))',
           '"or weight decay (utils/args.py)", MAMMOTH)',
           EWC_TABLES + ("tests/test_loop_recipes.py",),
           "EWC on seq-cifar10 at best_args.py's lr 0.03, not models/config/ewc_on.yaml's 0.1"),
    Mutant("ewc.best_args_mnist_lambda", EWC,
           '        _entry(90, 1.0, "mammoth-seq-mnist-ewc_on"),)),',
           '        _entry(10, 1.0, "mammoth-seq-mnist-ewc_on"),)),',
           EWC_TABLES, "seq-mnist's e_lambda 90 replaced by seq-cifar10's 10"),
    # --- the rule for unlisted sizes, applied and said --------------------------------------
    Mutant("derpp.best_args_largest_not_above", RULE,
           "    return min(sorted(sizes), key=lambda s: abs(math.log(n / s)))",
           "    return max([s for s in sizes if s <= n] or [min(sizes)])",
           t("test_the_nearest_listed_size_in_log_scale_by_hand") + UNLISTED,
           "the largest listed size not above the buffer instead of the nearest in log scale"),
    Mutant("derpp.best_args_linear_nearest", RULE,
           "abs(math.log(n / s))", "abs(n - s)",
           t("test_the_nearest_listed_size_in_log_scale_by_hand") + UNLISTED,
           "nearest in buffer entries instead of in log scale"),
    Mutant("derpp.best_args_not_applied", "clbudget/experiment/run.py",
           "    config = configure(config, best, options)\n", "",
           UNLISTED + t("test_cifar100_lists_500_only_and_options_override_the_table"),
           "the row names the table's values but the method trains with its defaults"),
    Mutant("derpp.best_args_options_lose", RULE,
           "    return dataclasses.replace(config, **{k: v for k, v in choice.entry.config\n"
           "                                          if k not in options})",
           "    return dataclasses.replace(config, **dict(choice.entry.config))",
           t("test_cifar100_lists_500_only_and_options_override_the_table"),
           "the table overrides the run's --option"),
    Mutant("derpp.best_args_recipe_at_planning_buffer", "clbudget/experiment/run.py",
           "    recipe = spec.resolved_recipe(allocation.n_exemplars)\n",
           "    recipe = spec.resolved_recipe()\n",
           MNIST, "the recipe of buffer 500 whatever the run's buffer (seq-mnist 5120's lr lost)"),
    Mutant("derpp.best_args_row_names_planning_size", RULE,
           '"buffer_size": None if self.entry is None else self.entry.buffer_size,',
           '"buffer_size": None if self.entry is None else PLANNING_BUFFER,',
           UNLISTED, "the row names buffer 500 whatever listed size was used"),
    Mutant("derpp.best_args_text_hides_nearest", RULE,
           "            elif size == self.n_exemplars:",
           "            elif True:",
           UNLISTED + t("test_run_summary_prints_which_listed_size_was_used"),
           "the row and summary call the listed size this run's buffer"),
    Mutant("derpp.best_args_plan_label_at_planning_buffer", "clbudget/cli/run.py",
           '"recipe": _recipe_label(c, a),', '"recipe": _recipe_label(c),',
           t("test_sweep_plan_names_the_recipe_of_each_cells_buffer"),
           "a sweep's dry-run names buffer 500's recipe whatever the cell's buffer"),
    Mutant("derpp.best_args_key_ignores_table", "clbudget/experiment/run.py",
           '                d["best_args"] = table.fingerprint\n',
           "                pass\n",
           t("test_run_keys_change_with_the_tables_not_elsewhere"),
           "a changed best-args value keeps the run key (stores would skip the rerun)"),
]
