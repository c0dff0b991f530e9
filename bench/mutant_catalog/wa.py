"""Mutants of WA (methods/wa.py): weight aligning and its KD.

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only wa
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import MECHANISM

AREA = "wa"
WA = "clbudget/methods/wa.py"
T_PARITY = "tests/test_parity.py"

MUTANTS = [
    # --- clbudget/methods/wa.py ------------------------------------------------------------------
    Mutant("wa.no_weight_aligning", WA,
           "self.last_gamma = align_weights(self.net.head.weight, old, seen)",
           "self.last_gamma = 1.0",
           (f"{T_PARITY}::test_wa_step_and_weight_aligning_match_the_reference",),
           "no weight aligning after an incremental task", origin=MECHANISM),
    Mutant("wa.fixed_lambda", WA,
           "lam = old / seen                                   # paper eq. 3",
           "lam = 0.5                                          # paper eq. 3",
           (f"{T_PARITY}::test_wa_step_and_weight_aligning_match_the_reference",),
           "lambda = 0.5 instead of old / seen", origin=MECHANISM),
    Mutant("wa.no_kd", WA,
           "return (1 - lam) * ce + lam * kd_loss(logits[:, :old], teacher, T)",
           "return (1 - lam) * ce",
           (f"{T_PARITY}::test_wa_step_and_weight_aligning_match_the_reference",),
           "the distillation term removed", origin=MECHANISM),
]
