"""Mutants of joint training (methods/joint.py).

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only joint
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import MECHANISM

AREA = "joint"
JOINT = "clbudget/methods/joint.py"
T_PARITY = "tests/test_parity.py"

MUTANTS = [
    # --- clbudget/methods/joint.py ---------------------------------------------------------------
    Mutant("joint.no_past_data", JOINT,
           "return torch.cat(self.past_x + [task.x]), torch.cat(self.past_y + [task.y])",
           "return task.x, task.y",
           (f"{T_PARITY}::test_joint_trains_on_every_seen_image_with_ce_over_seen",),
           "joint trains on the current task only", origin=MECHANISM),
    Mutant("joint.ce_new_classes_only", JOINT,
           "        return F.cross_entropy(logits[:, :self.seen], y)\n",
           "        return super().classification_loss(logits, y)\n",
           (f"{T_PARITY}::test_joint_trains_on_every_seen_image_with_ce_over_seen",),
           "joint inherits finetune's new-class CE", origin=MECHANISM),
]
