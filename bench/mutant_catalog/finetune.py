"""Mutants of finetune (methods/finetune.py).

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only finetune
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import MECHANISM

AREA = "finetune"
FINETUNE = "clbudget/methods/finetune.py"
T_PARITY = "tests/test_parity.py"

MUTANTS = [
    # --- clbudget/methods/finetune.py ------------------------------------------------------------
    Mutant("finetune.ce_over_all_seen", FINETUNE,
           "return F.cross_entropy(logits[:, lo:self.seen], y - lo)",
           "return F.cross_entropy(logits[:, :self.seen], y)",
           (f"{T_PARITY}::test_finetune_step_is_new_class_ce",),
           "later tasks' CE covers every seen class instead of the new ones", origin=MECHANISM),
    Mutant("finetune.no_head_row_init", FINETUNE,
           "            self.net.init_rows(self.old, self.seen)\n",
           "            pass\n",
           (f"{T_PARITY}::test_pycil_heads_initialise_arriving_rows_as_simple_linear[finetune]",
            f"{T_PARITY}::test_pycil_heads_initialise_arriving_rows_as_simple_linear[replay]",
            f"{T_PARITY}::test_pycil_heads_initialise_arriving_rows_as_simple_linear[joint]",
            f"{T_PARITY}::test_pycil_heads_initialise_arriving_rows_as_simple_linear[icarl]",
            f"{T_PARITY}::test_pycil_heads_initialise_arriving_rows_as_simple_linear[wa]",
            f"{T_PARITY}::test_pycil_heads_initialise_arriving_rows_as_simple_linear[lwf]"),
           "arriving classes keep whatever rows decay left (no SimpleLinear init)",
           origin=MECHANISM),
    Mutant("finetune.icarl_recipe", FINETUNE,
           'recipe = "pycil-finetune"',
           'recipe = "pycil-icarl"',
           (f"{T_PARITY}::test_baselines_train_with_their_reference_recipes",),
           "finetune trains with iCaRL's 170-epoch recipe", origin=MECHANISM),
]
