"""Mutants of exemplar replay (methods/replay.py).

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only replay
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import MECHANISM

AREA = "replay"
REPLAY = "clbudget/methods/replay.py"
T_PARITY = "tests/test_parity.py"

MUTANTS = [
    # --- clbudget/methods/replay.py --------------------------------------------------------------
    Mutant("replay.no_memory_in_training", REPLAY,
           "return torch.cat([task.x, mx]), torch.cat([task.y, my])",
           "return task.x, task.y",
           (f"{T_PARITY}::test_replay_step_is_ce_over_seen_classes",),
           "the memory is not replayed", origin=MECHANISM),
    Mutant("replay.ce_new_classes_only", REPLAY,
           "return F.cross_entropy(logits[:, :self.seen], y)",
           "return F.cross_entropy(logits[:, self.old:self.seen], (y - self.old).clamp_min(0))",
           (f"{T_PARITY}::test_replay_step_is_ce_over_seen_classes",),
           "replay's CE restricted to the new classes", origin=MECHANISM),
    Mutant("replay.random_selection", REPLAY,
           'selection = "herding"',
           'selection = "random"',
           (f"{T_PARITY}::test_memory_after_a_task_is_the_reference_herding_of_the_networks_features[replay]",
            f"{T_PARITY}::test_memory_after_a_task_is_the_reference_herding_of_the_networks_features[icarl]",
            f"{T_PARITY}::test_memory_after_a_task_is_the_reference_herding_of_the_networks_features[wa]"),
           "herding replaced by random selection (replay and its subclasses)", origin=MECHANISM),
    Mutant("replay.icarl_recipe", REPLAY,
           'recipe = "pycil-replay"',
           'recipe = "pycil-icarl"',
           (f"{T_PARITY}::test_baselines_train_with_their_reference_recipes",),
           "replay trains later tasks 170 epochs at 80/120 (the issue's finding 1)",
           origin=MECHANISM),
]
