"""Mutants of the pieces several methods share (methods/losses.py, methods/memory.py)."""
from bench.mutant_catalog import Mutant

MUTANTS = [
    Mutant("shared.align_weights_noop", "clbudget/methods/losses.py",
           "    head_weight[old:seen] *= gamma\n",
           "    pass\n",
           ("tests/test_distillation_methods.py::test_wa_aligns_new_class_weight_norms_to_old_ones",),
           "weight aligning rescales nothing"),
]
