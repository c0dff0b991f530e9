"""Mutants of online EWC (methods/ewc.py): penalty, Fisher, anchor, Mammoth's best arguments.

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only ewc
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import MECHANISM

AREA = "ewc"
EWC = "clbudget/methods/ewc.py"
RECIPE_BOOK = "clbudget/train/recipe_book.py"
T_BEST_ARGS = "tests/test_best_args.py"
T_DISTILLATION_METHODS = "tests/test_distillation_methods.py"
T_LOOP_RECIPES = "tests/test_loop_recipes.py"
T_PARITY = "tests/test_parity.py"

MUTANTS = [
    # --- clbudget/methods/ewc.py -----------------------------------------------------------------
    Mutant("ewc.no_penalty", EWC,
           "return loss + self.penalty() if regularize else loss",
           "return loss",
           (f"{T_PARITY}::test_ewc_step_is_ce_over_all_classes_plus_penalty",),
           "the quadratic penalty removed", origin=MECHANISM),
    Mutant("ewc.ce_masked_to_seen", EWC,
           "loss = F.cross_entropy(self.net(xb), yb)",
           "loss = F.cross_entropy(self.net(xb)[:, :self.seen], yb)",
           (f"{T_PARITY}::test_ewc_step_is_ce_over_all_classes_plus_penalty",),
           "CE masked to seen classes (Mammoth's is over every output)", origin=MECHANISM),
    Mutant("ewc.fisher_unweighted", EWC,
           "w = ll.exp() ",
           "w = torch.ones_like(ll) ",
           (f"{T_PARITY}::test_ewc_fisher_matches_the_reference_formula",),
           "squared gradients not weighted by p(y|x)", origin=MECHANISM),
    Mutant("ewc.fisher_masked_to_seen", EWC,
           "task.x, task.y, self.ctx.stream.num_classes, self.trainer,",
           "task.x, task.y, self.seen, self.trainer,",
           (f"{T_PARITY}::test_ewc_fisher_matches_the_reference_formula",),
           "log p(y|x) over the seen classes only", origin=MECHANISM),
    Mutant("ewc.no_online_decay", EWC,
           "f.mul_(self.config.gamma).add_(fn)",
           "f.copy_(fn)",
           (f"{T_DISTILLATION_METHODS}::test_ewc_penalty_is_zero_at_the_anchor_and_fisher_accumulates_online",),
           "the running Fisher replaced by the last task's", origin=MECHANISM),
    Mutant("ewc.anchor_not_updated", EWC,
           "a.copy_(p.detach())",
           "pass",
           (f"{T_DISTILLATION_METHODS}::test_ewc_penalty_is_zero_at_the_anchor_and_fisher_accumulates_online",),
           "the anchor stays at the initial parameters", origin=MECHANISM),
    Mutant("ewc.pycil_head", EWC,
           '    head_init = "mammoth"\n',
           '    head_init = "pycil"\n',
           (f"{T_PARITY}::test_mammoth_heads_are_one_default_linear_never_reinitialised[ewc]",),
           "Mammoth's default full-width head re-initialised per task", origin=MECHANISM),
    Mutant("ewc.best_args_mnist_lambda", EWC,
           '        _entry(90, 1.0, "mammoth-seq-mnist-ewc_on"),)),',
           '        _entry(10, 1.0, "mammoth-seq-mnist-ewc_on"),)),',
           (f"{T_BEST_ARGS}::test_ewc_takes_mammoths_best_args_per_data_set",),
           "seq-mnist's e_lambda 90 replaced by seq-cifar10's 10", origin=MECHANISM),
    # --- clbudget/train/recipe_book.py -----------------------------------------------------------
    Mutant("ewc.best_args_cifar10_lr_0_03", RECIPE_BOOK,
           '"or weight decay (utils/args.py)", replace(MAMMOTH, lr=0.1))',
           '"or weight decay (utils/args.py)", MAMMOTH)',
           (f"{T_BEST_ARGS}::test_ewc_takes_mammoths_best_args_per_data_set", T_LOOP_RECIPES),
           "EWC on seq-cifar10 at best_args.py's lr 0.03, not models/config/ewc_on.yaml's 0.1",
           origin=MECHANISM),
]
