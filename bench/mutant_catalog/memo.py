"""Mutants of MEMO and MEMO-2 (methods/memo.py, methods/expanding.py).

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only memo
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import (
    MECHANISM, PROOF, BLIND1, BLIND2, BLIND3, BLIND1_TESTS, BLIND2_TESTS, BLIND3_TESTS)

AREA = "memo"
EXPANDING = "clbudget/methods/expanding.py"
MEMO = "clbudget/methods/memo.py"
COSTS = "clbudget/budget/costs.py"
T_EXPANDING_METHODS = "tests/test_expanding_methods.py"
T_METHOD_LOSSES = "tests/test_method_losses.py"

MUTANTS = [
    # --- clbudget/methods/expanding.py -----------------------------------------------------------
    Mutant("memo.herding_to_random", EXPANDING,
           "        self.memory.rebalance(task.x, task.y, self.seen, \"herding\",\n",
           "        self.memory.rebalance(task.x, task.y, self.seen, \"random\",\n",
           (f"{T_EXPANDING_METHODS}::test_memo_memory_is_the_herding_selection_on_its_concatenated_features",),
           "exemplars chosen at random instead of by herding", origin=MECHANISM),
    Mutant("memo.old_branches_not_frozen", EXPANDING,
           "        for branch in self.branches:\n            freeze(branch, store_dtype)\n",
           "        for branch in self.branches:\n            branch.train()\n",
           (f"{T_EXPANDING_METHODS}::test_old_branches_are_frozen_bit_for_bit[memo]",),
           "old specialized blocks keep training", origin=MECHANISM),
    Mutant("memo.no_aux_loss", EXPANDING,
           "                loss = loss + cfg.aux_weight * F.cross_entropy(aux(f[:, -D:]), aux_y)\n",
           "                pass\n",
           (f"{T_EXPANDING_METHODS}::test_aux_head_is_temporary_and_weights_are_aligned[memo]",),
           "no auxiliary loss on the new block", origin=MECHANISM),
    Mutant("memo.no_weight_align", EXPANDING,
           "        if task.index > 0 and cfg.weight_align:\n",
           "        if False:\n",
           (f"{T_EXPANDING_METHODS}::test_aux_head_is_temporary_and_weights_are_aligned[memo]",),
           "no weight aligning of the new classes' head rows", origin=MECHANISM),
    Mutant("memo.aux_labels_off_by_one", EXPANDING,
           "aux_y = torch.where(yb >= old, yb - old + 1, torch.zeros_like(yb))",
           "aux_y = torch.where(yb >= old, yb - old, torch.zeros_like(yb))",
           (f"{T_METHOD_LOSSES}::test_memo_step_is_ce_plus_the_auxiliary_ce_with_pycils_labels",),
           "MEMO's auxiliary labels collide new class 0 with the 'old' class", origin=PROOF),
    Mutant("memo.aux_first_new_is_old", EXPANDING,
           "aux_y = torch.where(yb >= old, yb - old + 1, torch.zeros_like(yb))",
           "aux_y = torch.where(yb > old, yb - old + 1, torch.zeros_like(yb))",
           BLIND1_TESTS["losses"],
           "DER/MEMO auxiliary labels lump the first new class with the old ones", origin=BLIND1),
    Mutant("memo.aux_on_first_branch", EXPANDING,
           "F.cross_entropy(aux(f[:, -D:]), aux_y)",
           "F.cross_entropy(aux(f[:, :D]), aux_y)",
           BLIND1_TESTS["losses"],
           "the auxiliary head reads the first (frozen) branch's features, not the new one's",
           origin=BLIND1),
    Mutant("memo.aux_label_off_by_one", EXPANDING,
           "aux_y = torch.where(yb >= old, yb - old + 1, torch.zeros_like(yb))",
           "aux_y = torch.where(yb >= old, yb - old, torch.zeros_like(yb))",
           BLIND2_TESTS["losses"],
           "auxiliary head's first new class shares label 0 with the 'old' class: tasks after the first",
           origin=BLIND2),
    # the same slip as memo.aux_on_first_branch, written again by another round
    Mutant("memo.aux_on_first_branch_2", EXPANDING,
           "aux(f[:, -D:])",
           "aux(f[:, :D])",
           BLIND2_TESTS["losses"],
           "auxiliary head reads the oldest branch's features, not the new one's: tasks after the first",
           origin=BLIND2),
    # --- clbudget/methods/memo.py ----------------------------------------------------------------
    Mutant("memo.generalized_frozen_after_task_0", MEMO,
           "        return self.task == 0 or self.config.train_generalized\n",
           "        return self.task == 0\n",
           (f"{T_EXPANDING_METHODS}::test_memo_shares_one_generalized_block",),
           "train_base off: the generalized blocks stop learning", origin=MECHANISM),
    Mutant("memo.memo2_one_stage", MEMO,
           "    specialized_stages = 2\n",
           "    specialized_stages = 1\n",
           (f"{T_EXPANDING_METHODS}::test_memo2_specializes_the_last_two_stages_and_its_ledger_is_what_it_holds",),
           "MEMO-2 specializes one stage only", origin=MECHANISM),
    Mutant("memo.trunk_frozen_from_task0", MEMO,
           "return self.task == 0 or self.config.train_generalized",
           "return self.config.train_generalized",
           BLIND3_TESTS["losses"],
           "with train_generalized=False the generalized blocks are frozen from task 0 (never "
           "trained) instead of after it", origin=BLIND3),
    # --- clbudget/budget/costs.py ----------------------------------------------------------------
    Mutant("memo.memo2_cost_model_one_stage", COSTS,
           "    return _memo(st, memo2_stats(s, st.image_shape), n, c)\n",
           "    return _memo(st, s, n, c)\n",
           (f"{T_EXPANDING_METHODS}::test_memo2_specializes_the_last_two_stages_and_its_ledger_is_what_it_holds",),
           "MEMO-2 allocated as MEMO", origin=MECHANISM),
]
