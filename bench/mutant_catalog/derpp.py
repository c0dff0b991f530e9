"""Mutants of DER++ (methods/derpp.py) and of Mammoth's best arguments per data set and buffer size
(methods/best_args.py).

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only derpp
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import MECHANISM

AREA = "derpp"
DERPP = "clbudget/methods/derpp.py"
RECIPE_BOOK = "clbudget/train/recipe_book.py"
BEST_ARGS = "clbudget/methods/best_args.py"
EXPERIMENT_RUN = "clbudget/experiment/run.py"
CLI_RUN = "clbudget/cli/run.py"
T_BEST_ARGS = "tests/test_best_args.py"
T_LOOP_RECIPES = "tests/test_loop_recipes.py"
T_PARITY = "tests/test_parity.py"
NEAREST_LISTED_SIZE = (f"{T_BEST_ARGS}::test_the_nearest_listed_size_in_log_scale_by_hand",
                       f"{T_BEST_ARGS}::test_an_unlisted_buffer_takes_the_nearest_listed_sizes_args_and_the_row_says_so")

MUTANTS = [
    # --- clbudget/methods/derpp.py ---------------------------------------------------------------
    Mutant("derpp.no_logit_mse", DERPP,
           "loss = loss + cfg.alpha * F.mse_loss(net(bx).float(), memory.logits[i])",
           "loss = loss",
           (f"{T_PARITY}::test_derpp_step_matches_the_reference_loss",),
           "the dark-knowledge (logit MSE) term removed", origin=MECHANISM),
    Mutant("derpp.no_buffer_ce", DERPP,
           "loss = loss + cfg.beta * F.cross_entropy(net(bx), memory.labels[i].long())",
           "loss = loss",
           (f"{T_PARITY}::test_derpp_step_matches_the_reference_loss",),
           "the buffer-label CE term removed", origin=MECHANISM),
    Mutant("derpp.one_replay_batch", DERPP,
           "                bx, i = replay_batch()\n                loss = loss + cfg.beta",
           "                loss = loss + cfg.beta",
           (f"{T_PARITY}::test_derpp_step_matches_the_reference_loss",),
           "both replay terms share one buffer sample", origin=MECHANISM),
    Mutant("derpp.ce_masked_to_seen", DERPP,
           "loss = F.cross_entropy(logits, yb)",
           "loss = F.cross_entropy(logits[:, :self.seen], yb)",
           (f"{T_PARITY}::test_derpp_step_matches_the_reference_loss",),
           "the stream CE masked to seen classes", origin=MECHANISM),
    Mutant("derpp.stores_augmented", DERPP,
           "memory.reservoir(task.x[idx], yb,",
           "memory.reservoir(task.x[idx].flip(3), yb,",
           (f"{T_PARITY}::test_derpp_step_matches_the_reference_loss",),
           "the buffer keeps transformed images instead of the un-augmented ones",
           origin=MECHANISM),
    Mutant("derpp.pycil_head", DERPP,
           '    head_init = "mammoth"\n',
           '    head_init = "pycil"\n',
           (f"{T_PARITY}::test_mammoth_heads_are_one_default_linear_never_reinitialised[derpp]",),
           "Mammoth's default full-width head re-initialised per task", origin=MECHANISM),
    Mutant("derpp.best_args_cifar100_alpha_0_2", DERPP,
           '        _entry(500, 0.3, 0.5, 32, "mammoth-seq-cifar100-derpp"),)),',
           '        _entry(500, 0.2, 0.5, 32, "mammoth-seq-cifar100-derpp"),)),',
           (f"{T_BEST_ARGS}::test_derpp_takes_mammoths_best_args_per_data_set_and_buffer",
            f"{T_BEST_ARGS}::test_cifar100_lists_500_only_and_options_override_the_table"),
           "DER++ on CIFAR-100 at alpha 0.2 where models/config/derpp.yaml has 0.3 (the issue)",
           origin=MECHANISM),
    Mutant("derpp.best_args_cifar10_5120_beta", DERPP,
           "        _entry(5120, 0.1, 1.0, 32, _C10))),",
           "        _entry(5120, 0.1, 0.5, 32, _C10))),",
           (f"{T_BEST_ARGS}::test_derpp_takes_mammoths_best_args_per_data_set_and_buffer",
            f"{T_BEST_ARGS}::test_an_unlisted_buffer_takes_the_nearest_listed_sizes_args_and_the_row_says_so"),
           "seq-cifar10 5120's beta 1.0 replaced by 500's 0.5", origin=MECHANISM),
    Mutant("derpp.best_args_mnist_minibatch", DERPP,
           "        _entry(200, 0.2, 1.0, 128, _MNIST),",
           "        _entry(200, 0.2, 1.0, 32, _MNIST),",
           (f"{T_BEST_ARGS}::test_derpp_takes_mammoths_best_args_per_data_set_and_buffer",
            f"{T_BEST_ARGS}::test_seq_mnist_buffers_pick_their_own_lr_and_minibatch"),
           "seq-mnist 200's replay minibatch 128 replaced by 32", origin=MECHANISM),
    # --- clbudget/train/recipe_book.py -----------------------------------------------------------
    Mutant("derpp.best_args_mnist_5120_lr", RECIPE_BOOK,
           "        replace(MAMMOTH_MNIST, lr=0.1))",
           "        MAMMOTH_MNIST)",
           (f"{T_BEST_ARGS}::test_derpp_takes_mammoths_best_args_per_data_set_and_buffer",
            f"{T_BEST_ARGS}::test_seq_mnist_buffers_pick_their_own_lr_and_minibatch",
            T_LOOP_RECIPES),
           "seq-mnist 5120 trains at lr 0.03 instead of best_args.py's 0.1", origin=MECHANISM),
    Mutant("derpp.best_args_tinyimg_50_epochs", RECIPE_BOOK,
           '        "batch 32, 100 epochs at 200/500/5120) + datasets/seq_tinyimagenet.py (no '
           'schedule)",\n        replace(MAMMOTH, epochs=100))',
           '        "batch 32, 100 epochs at 200/500/5120) + datasets/seq_tinyimagenet.py (no '
           'schedule)",\n        MAMMOTH)',
           (f"{T_BEST_ARGS}::test_derpp_takes_mammoths_best_args_per_data_set_and_buffer",),
           "seq-tinyimg DER++ for 50 epochs instead of best_args.py's 100", origin=MECHANISM),
    # --- clbudget/methods/best_args.py -----------------------------------------------------------
    Mutant("derpp.best_args_largest_not_above", BEST_ARGS,
           "    return min(sorted(sizes), key=lambda s: abs(math.log(n / s)))",
           "    return max([s for s in sizes if s <= n] or [min(sizes)])",
           NEAREST_LISTED_SIZE,
           "the largest listed size not above the buffer instead of the nearest in log scale",
           origin=MECHANISM),
    Mutant("derpp.best_args_linear_nearest", BEST_ARGS,
           "abs(math.log(n / s))",
           "abs(n - s)",
           NEAREST_LISTED_SIZE,
           "nearest in buffer entries instead of in log scale", origin=MECHANISM),
    Mutant("derpp.best_args_options_lose", BEST_ARGS,
           "    return dataclasses.replace(config, **{k: v for k, v in choice.entry.config\n"
           "                                          if k not in options})",
           "    return dataclasses.replace(config, **dict(choice.entry.config))",
           (f"{T_BEST_ARGS}::test_cifar100_lists_500_only_and_options_override_the_table",),
           "the table overrides the run's --option", origin=MECHANISM),
    Mutant("derpp.best_args_row_names_planning_size", BEST_ARGS,
           '"buffer_size": None if self.entry is None else self.entry.buffer_size,',
           '"buffer_size": None if self.entry is None else PLANNING_BUFFER,',
           (f"{T_BEST_ARGS}::test_an_unlisted_buffer_takes_the_nearest_listed_sizes_args_and_the_row_says_so",),
           "the row names buffer 500 whatever listed size was used", origin=MECHANISM),
    Mutant("derpp.best_args_text_hides_nearest", BEST_ARGS,
           "            elif size == self.n_exemplars:",
           "            elif True:",
           (f"{T_BEST_ARGS}::test_an_unlisted_buffer_takes_the_nearest_listed_sizes_args_and_the_row_says_so",
            f"{T_BEST_ARGS}::test_run_summary_prints_which_listed_size_was_used"),
           "the row and summary call the listed size this run's buffer", origin=MECHANISM),
    # --- clbudget/experiment/run.py --------------------------------------------------------------
    Mutant("derpp.best_args_not_applied", EXPERIMENT_RUN,
           "    config = configure(config, best, options)\n",
           "",
           (f"{T_BEST_ARGS}::test_an_unlisted_buffer_takes_the_nearest_listed_sizes_args_and_the_row_says_so",
            f"{T_BEST_ARGS}::test_cifar100_lists_500_only_and_options_override_the_table"),
           "the row names the table's values but the method trains with its defaults",
           origin=MECHANISM),
    Mutant("derpp.best_args_recipe_at_planning_buffer", EXPERIMENT_RUN,
           "    recipe = spec.resolved_recipe(allocation.n_exemplars)\n",
           "    recipe = spec.resolved_recipe()\n",
           (f"{T_BEST_ARGS}::test_seq_mnist_buffers_pick_their_own_lr_and_minibatch",),
           "the recipe of buffer 500 whatever the run's buffer (seq-mnist 5120's lr lost)",
           origin=MECHANISM),
    Mutant("derpp.best_args_key_ignores_table", EXPERIMENT_RUN,
           '                d["best_args"] = table.fingerprint\n',
           "                pass\n",
           (f"{T_BEST_ARGS}::test_run_keys_change_with_the_tables_not_elsewhere",),
           "a changed best-args value keeps the run key (stores would skip the rerun)",
           origin=MECHANISM),
    # --- clbudget/cli/run.py ---------------------------------------------------------------------
    Mutant("derpp.best_args_plan_label_at_planning_buffer", CLI_RUN,
           '"recipe": _recipe_label(c, a),',
           '"recipe": _recipe_label(c),',
           (f"{T_BEST_ARGS}::test_sweep_plan_names_the_recipe_of_each_cells_buffer",),
           "a sweep's dry-run names buffer 500's recipe whatever the cell's buffer",
           origin=MECHANISM),
]
