"""Mutants of the losses several methods share (methods/losses.py): KD, symmetric KL, JS, weight
aligning.

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only losses
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import (
    MECHANISM, PROOF, BLIND1, BLIND2, BLIND3, BLIND1_TESTS, BLIND2_TESTS, BLIND3_TESTS)

AREA = "losses"
LOSSES = "clbudget/methods/losses.py"
T_DISTILLATION_METHODS = "tests/test_distillation_methods.py"
T_METHOD_LOSSES = "tests/test_method_losses.py"
T_PARITY = "tests/test_parity.py"

MUTANTS = [
    # --- clbudget/methods/losses.py --------------------------------------------------------------
    Mutant("losses.kd_without_temperature", LOSSES,
           "log_p = F.log_softmax(student_logits.float() / T, dim=1)",
           "log_p = F.log_softmax(student_logits.float(), dim=1)",
           (f"{T_PARITY}::test_icarl_step_is_ce_plus_kd_and_nme_uses_reference_means",),
           "the student's logits not softened by T", origin=MECHANISM),
    Mutant("losses.align_weights_noop", LOSSES,
           "    head_weight[old:seen] *= gamma\n",
           "    pass\n",
           (f"{T_DISTILLATION_METHODS}::test_wa_aligns_new_class_weight_norms_to_old_ones",),
           "weight aligning rescales nothing", origin=MECHANISM),
    Mutant("losses.symmetric_kl_one_side", LOSSES,
           "return 0.5 * (kl_pq + kl_qp).mean()",
           "return kl_pq.mean()",
           (f"{T_METHOD_LOSSES}::test_symmetric_kl_by_hand",),
           "MIND's L_SD is one KL, not symmetric", origin=PROOF),
    Mutant("losses.align_with_unseen_rows", LOSSES,
           "gamma = norms[:old].mean() / norms[old:seen].mean()",
           "gamma = norms[:old].mean() / head_weight[old:].norm(dim=1).mean()",
           BLIND1_TESTS["losses"],
           "weight aligning's new-class norm averages every row past the old ones, unseen "
           "classes included (only while seen < K)", origin=BLIND1),
    Mutant("losses.kd_teacher_not_softened", LOSSES,
           "q = F.softmax(teacher_logits.float() / T, dim=1)",
           "q = F.softmax(teacher_logits.float(), dim=1)",
           BLIND2_TESTS["losses"],
           "KD's teacher distribution without the temperature: only T != 1 (LwF/iCaRL/WA use 2)",
           origin=BLIND2),
    Mutant("losses.symmetric_kl_without_half", LOSSES,
           "return 0.5 * (kl_pq + kl_qp).mean()",
           "return (kl_pq + kl_qp).mean()",
           BLIND2_TESTS["losses"],
           "MIND's L_SD is the sum of both KLs, not their mean: distillation weight doubled",
           origin=BLIND2),
    Mutant("losses.kd_mean_over_classes", LOSSES,
           "return -(q * log_p).sum(1).mean()",
           "return -(q * log_p).mean()",
           BLIND3_TESTS["losses"],
           "KD averaged over classes as well as the batch: scaled by 1/K_old", origin=BLIND3),
    Mutant("losses.js_mean_not_batchmean", LOSSES,
           'F.kl_div(m.log(), p, reduction="batchmean")',
           'F.kl_div(m.log(), p, reduction="mean")',
           BLIND3_TESTS["losses"],
           "JS divergence's first KL averaged over classes too: scaled by 1/K on that half",
           origin=BLIND3),
    Mutant("losses.symmetric_kl_wrong_weight", LOSSES,
           "kl_qp = (log_q.exp() * (log_q - log_p)).sum(1)",
           "kl_qp = (log_p.exp() * (log_q - log_p)).sum(1)",
           BLIND3_TESTS["losses"],
           "the reverse KL weighted by p instead of q: it cancels the forward KL and L_SD is 0",
           origin=BLIND3),
]
