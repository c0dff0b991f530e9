"""Mutants of DER (methods/expanding.py, shared with MEMO): auxiliary loss, frozen old branches,
weight aligning.

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only der
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import MECHANISM, BLIND1, BLIND1_TESTS

AREA = "der"
EXPANDING = "clbudget/methods/expanding.py"
T_EXPANDING_METHODS = "tests/test_expanding_methods.py"
T_PARITY = "tests/test_parity.py"

MUTANTS = [
    # --- clbudget/methods/expanding.py -----------------------------------------------------------
    Mutant("der.no_aux_loss", EXPANDING,
           "loss = loss + cfg.aux_weight * F.cross_entropy(aux(f[:, -D:]), aux_y)",
           "loss = loss",
           (f"{T_PARITY}::test_der_step_aux_labels_and_head_growth_match_the_reference",),
           "the auxiliary CE removed", origin=MECHANISM),
    Mutant("der.aux_labels_unshifted", EXPANDING,
           "aux_y = torch.where(yb >= old, yb - old + 1, torch.zeros_like(yb))",
           "aux_y = torch.where(yb >= old, yb - old, torch.zeros_like(yb))",
           (f"{T_PARITY}::test_der_step_aux_labels_and_head_growth_match_the_reference",),
           "new classes not shifted past the 'old' class 0", origin=MECHANISM),
    Mutant("der.old_branches_trainable", EXPANDING,
           "        for branch in self.branches:\n            freeze(branch, store_dtype)\n",
           "        for branch in self.branches:\n            pass\n",
           (f"{T_PARITY}::test_der_step_aux_labels_and_head_growth_match_the_reference",),
           "old backbones not frozen", origin=MECHANISM),
    Mutant("der.old_rows_not_copied", EXPANDING,
           "head.weight[:old_classes, :old.in_features] = old.weight[:old_classes]",
           "pass",
           (f"{T_PARITY}::test_der_step_aux_labels_and_head_growth_match_the_reference",),
           "the grown head forgets the old classes' rows", origin=MECHANISM),
    Mutant("der.new_branch_fresh", EXPANDING,
           "new = copy.deepcopy(self.branches[-1]).train()",
           "new = copy.deepcopy(self.branches[-1]).train()\n"
           "        [m.reset_parameters() for m in new.modules() if hasattr(m, 'reset_parameters')]",
           (f"{T_PARITY}::test_der_step_aux_labels_and_head_growth_match_the_reference",),
           "the new backbone not initialised from the previous one", origin=MECHANISM),
    Mutant("der.no_weight_aligning", EXPANDING,
           'stats["gamma"] = align_weights(net.head.weight, old, seen)',
           'stats["gamma"] = 1.0',
           (T_EXPANDING_METHODS,),
           "no weight aligning after an incremental task", origin=MECHANISM),
    Mutant("der.expanding_ce_all_classes", EXPANDING,
           "loss = F.cross_entropy(net.head(f)[:, :seen], yb)",
           "loss = F.cross_entropy(net.head(f), yb)",
           BLIND1_TESTS["losses"],
           "DER/MEMO cross-entropy over the full-width head, unseen classes included",
           origin=BLIND1),
]
