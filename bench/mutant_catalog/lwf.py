"""Mutants of LwF (methods/lwf.py).

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only lwf
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import MECHANISM

AREA = "lwf"
LWF = "clbudget/methods/lwf.py"
T_PARITY = "tests/test_parity.py"

MUTANTS = [
    # --- clbudget/methods/lwf.py -----------------------------------------------------------------
    Mutant("lwf.no_kd", LWF,
           "return ce + lamda * kd_loss(logits[:, :old], self.teacher_logits(xb), T)",
           "return ce",
           (f"{T_PARITY}::test_lwf_step_is_new_class_ce_plus_three_kd",),
           "the distillation term removed", origin=MECHANISM),
    Mutant("lwf.ce_over_all_seen", LWF,
           "ce = F.cross_entropy(logits[:, old:seen], yb - old)",
           "ce = F.cross_entropy(logits[:, :seen], yb)",
           (f"{T_PARITY}::test_lwf_step_is_new_class_ce_plus_three_kd",),
           "CE over every seen class instead of the new ones", origin=MECHANISM),
    Mutant("lwf.lamda_one", LWF,
           "lamda: float = 3.0",
           "lamda: float = 1.0",
           (f"{T_PARITY}::test_lwf_step_is_new_class_ce_plus_three_kd",),
           "KD weight 1 (the paper's) instead of PyCIL's 3", origin=MECHANISM),
]
