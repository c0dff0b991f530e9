"""Mutants of iCaRL (methods/icarl.py): KD, class means, NME.

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only icarl
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import MECHANISM, BLIND3, SURVIVORS, BLIND3_TESTS

AREA = "icarl"
ICARL = "clbudget/methods/icarl.py"
RUN = "clbudget/experiment/run.py"
T_PARITY = "tests/test_parity.py"
T_PROTOCOL = "tests/test_protocol.py"

MUTANTS = [
    # --- clbudget/methods/icarl.py ---------------------------------------------------------------
    Mutant("icarl.no_kd", ICARL,
           "loss = loss + w * kd_loss(logits[:, :old], teacher, T)",
           "loss = loss",
           (f"{T_PARITY}::test_icarl_step_is_ce_plus_kd_and_nme_uses_reference_means",),
           "the distillation term removed", origin=MECHANISM),
    Mutant("icarl.means_of_raw_features", ICARL,
           "mean = normalize(normalize(features(xc)).mean(0, keepdim=True))",
           "mean = normalize(features(xc).mean(0, keepdim=True))",
           (f"{T_PARITY}::test_icarl_step_is_ce_plus_kd_and_nme_uses_reference_means",),
           "class means of un-normalised features", origin=MECHANISM),
    Mutant("icarl.nme_to_linear_head", ICARL,
           "return nme_scores(self.net.features(x), self.class_means)",
           "return self.net(x)",
           (f"{T_PARITY}::test_icarl_step_is_ce_plus_kd_and_nme_uses_reference_means",),
           "the NME classifier replaced by the linear head", origin=MECHANISM),
    Mutant("icarl.means_not_updated", ICARL,
           "        super().end_task(task)            # herding rebalance of the memory; the "
           "teacher copy\n        self.update_class_means()\n",
           "        super().end_task(task)\n",
           (f"{T_PARITY}::test_icarl_step_is_ce_plus_kd_and_nme_uses_reference_means",),
           "class means never computed after a task", origin=MECHANISM),
    Mutant("icarl.nme_unnormalized_features", ICARL,
           "f = normalize(features.float())",
           "f = features.float()",
           BLIND3_TESTS["losses"],
           "NME compares raw features with unit-norm means: different nearest means unless "
           "every feature has unit norm", origin=BLIND3),
    # --- clbudget/experiment/run.py --------------------------------------------------------------
    Mutant("icarl.cnn_task_aware_curve_task_mean", RUN,
           '[seen_accuracy(r[:i + 1], sizes) for i, r in enumerate(d["taw"])]',
           '[sum(r[:i + 1]) / (i + 1) for i, r in enumerate(d["taw"])]',
           (f"{T_PROTOCOL}::test_icarl_task_aware_curves_of_both_classifiers_weigh_tasks_by_test_images",),
           "iCaRL's linear-head task-aware curve weighs tasks equally, the NME one by test "
           "images: the two differ on uneven tasks (B50Inc5)", origin=SURVIVORS),
]
