"""Mutants of MIND (methods/mind.py): teacher distillation, subnetworks, pruning, per-task BN.

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only mind
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import (
    MECHANISM, PROOF, BLIND1, BLIND2, BLIND3, SURVIVORS, BLIND1_TESTS, BLIND2_TESTS, BLIND3_TESTS)

AREA = "mind"
MIND = "clbudget/methods/mind.py"
T_METHOD_LOSSES = "tests/test_method_losses.py"
T_PAPER_METHODS = "tests/test_paper_methods.py"

MUTANTS = [
    # --- clbudget/methods/mind.py ----------------------------------------------------------------
    Mutant("mind.beta_zero", MIND,
           "        beta = self.config.distill_weight\n",
           "        beta = 0.0\n",
           (f"{T_PAPER_METHODS}::test_mind_distillation_loss_is_ce_plus_beta_symmetric_kl_to_the_teacher",),
           "no distillation from the teacher", origin=MECHANISM),
    Mutant("mind.untrained_teacher", MIND,
           "            teach = self.trainer.fit(teacher.parameters(), task.x, task.y, teacher_step,\n",
           "            teach = {\"loss\": []} if True else self.trainer.fit(teacher.parameters(),"
           " task.x, task.y, teacher_step,\n",
           (f"{T_PAPER_METHODS}::test_mind_trains_its_teacher_on_the_task",),
           "the fresh teacher is never trained", origin=MECHANISM),
    Mutant("mind.self_teacher_untrained", MIND,
           "            teach = self.trainer.fit(teacher.parameters(), task.x, task.y, self_step,\n",
           "            teach = {\"loss\": []} if True else self.trainer.fit(teacher.parameters(),"
           " task.x, task.y, self_step,\n",
           (f"{T_PAPER_METHODS}::test_mind_trains_its_teacher_on_the_task",),
           "the self-distillation teacher is never trained", origin=MECHANISM),
    Mutant("mind.self_teacher_copies_the_network", MIND,
           "        self.values = [w.detach()[m == free_code].clone().requires_grad_(True)\n",
           "        self.values = [w.detach().clone().requires_grad_(True)\n",
           (f"{T_PAPER_METHODS}::test_mind_costs_masks_in_both_conventions_and_reports_the_teacher",),
           "the self-teacher holds a copy of every weight, not only the free ones",
           origin=MECHANISM),
    Mutant("mind.no_temperature", MIND,
           "        probs = [F.softmax(self.subnet_logits(x, j).float() / T, dim=1)\n",
           "        probs = [F.softmax(self.subnet_logits(x, j).float(), dim=1)\n",
           (f"{T_PAPER_METHODS}::test_mind_task_agnostic_probabilities_use_the_temperature",),
           "task selection without the temperature", origin=MECHANISM),
    Mutant("mind.free_weights_not_zeroed", MIND,
           "            w[mask == self.FREE] = 0.0\n",
           "            pass\n",
           (f"{T_PAPER_METHODS}::test_mind_without_sharing_reinitialises_each_tasks_weights_he_normal",),
           "pruning leaves the free weights as they were", origin=MECHANISM),
    Mutant("mind.no_reinit_without_sharing", MIND,
           "                w.view(-1)[chosen] = init.to(w.device, w.dtype)\n",
           "                pass\n",
           (f"{T_PAPER_METHODS}::test_mind_without_sharing_reinitialises_each_tasks_weights_he_normal",),
           "weight_sharing=False starts every later task from zero weights", origin=MECHANISM),
    Mutant("mind.magnitude_on_the_untrained_student", MIND,
           "        return \"magnitude\" if self.self_distillation else \"random\"\n",
           "        return \"magnitude\"\n",
           (f"{T_PAPER_METHODS}::test_mind_fresh_teacher_selects_at_random",),
           "fresh-teacher pruning scores the untrained student by magnitude", origin=MECHANISM),
    Mutant("mind.one_bn_set", MIND,
           "        return functional_call(self.net, {**weights, **self.bn_sets[j]}, (x,))[:, self.rows(j)]\n",
           "        return functional_call(self.net, {**weights, **self.bn_sets[-1]}, (x,))[:, self.rows(j)]\n",
           (f"{T_PAPER_METHODS}::test_mind_never_changes_an_earlier_tasks_weights",),
           "every subnetwork uses the last task's BN set", origin=MECHANISM),
    Mutant("mind.masks_not_in_memo_convention", MIND,
           "        return [(\"masks\", \"masks\", sum(m.numel() * m.element_size() for m in self.masks)),\n"
           "                (\"bn_per_task\", \"per_task\", 4 * affine)]\n",
           "        return [(\"bn_per_task\", \"per_task\", 4 * affine)]\n",
           (f"{T_PAPER_METHODS}::test_mind_costs_masks_in_both_conventions_and_reports_the_teacher",),
           "the memo convention omits the masks", origin=MECHANISM),
    Mutant("mind.teacher_not_costed", MIND,
           "                                  else _state_bytes(teacher))\n",
           "                                  else 0)\n",
           (f"{T_PAPER_METHODS}::test_mind_costs_masks_in_both_conventions_and_reports_the_teacher",),
           "the transient teacher is never costed", origin=MECHANISM),
    Mutant("mind.magnitude_scores_the_student", MIND,
           "            source = tw if self.config.self_distillation else w\n",
           "            source = w\n",
           (f"{T_PAPER_METHODS}::test_mind_self_distillation_prunes_by_the_teachers_magnitude",),
           "self-distillation pruning scores the student's stale weights (the reference's)",
           origin=MECHANISM),
    Mutant("mind.distill_at_temperature", MIND,
           "beta * symmetric_kl(target, logits)",
           "beta * symmetric_kl(target, logits, T=self.config.temperature)",
           (f"{T_METHOD_LOSSES}::test_mind_distillation_step_is_ce_plus_beta_symmetric_kl",),
           "the inference temperature 6.5 softens the distillation", origin=PROOF),
    # the same slip as mind.distill_at_temperature, written again by another round
    Mutant("mind.distill_at_temperature_2", MIND,
           "return ce(logits, yb) + beta * symmetric_kl(target, logits)",
           "return ce(logits, yb) + beta * symmetric_kl(target, logits, "
           "self.config.temperature)",
           BLIND1_TESTS["losses"],
           "MIND's L_SD softened at the inference temperature 6.5 instead of T=1", origin=BLIND1),
    Mutant("mind.teacher_ce_all_seen", MIND,
           "return ce(teacher(xb)[:, rows], yb)\n            teach = self.trainer.fit(teacher."
           "parameters(), task.x, task.y, teacher_step,",
           "return F.cross_entropy(teacher(xb)[:, :rows.stop], yb)\n            teach = "
           "self.trainer.fit(teacher.parameters(), task.x, task.y, teacher_step,",
           BLIND1_TESTS["losses"],
           "the fresh teacher's CE over every class seen so far, not the task's: from task 1 on",
           origin=BLIND1),
    Mutant("mind.inference_without_temperature", MIND,
           "probs = [F.softmax(self.subnet_logits(x, j).float() / T, dim=1)",
           "probs = [F.softmax(self.subnet_logits(x, j).float(), dim=1)",
           BLIND2_TESTS["losses"],
           "MIND's task-agnostic inference softmax without the 6.5 temperature: changes which task "
           "is chosen (TAG only; TAW unchanged)", origin=BLIND2),
    Mutant("mind.subnet_excludes_own_task", MIND,
           "return [m <= j for m in self.masks]",
           "return [m < j for m in self.masks]",
           BLIND3_TESTS["losses"],
           "with weight sharing, task j's subnetwork at inference leaves out its own weights "
           "(training still uses them): every task's scores (task 0: no conv weight at all)",
           origin=BLIND3),
    Mutant("mind.prune_share_of_free", MIND,
           "n = min(w.numel() // T, int(free.sum()))",
           "n = int(free.sum()) // T",
           BLIND3_TESTS["losses"],
           "each task gets 1/T of the still-free weights instead of numel // T: tasks > 0 get "
           "fewer weights", origin=BLIND3),
    Mutant("mind.ci_subnet_excludes_own_task", MIND,
           "return [m <= j for m in self.masks]",
           "return [m < j for m in self.masks]",
           (f"{T_PAPER_METHODS}::test_mind_subnetwork_computes_with_its_own_weights_at_inference",),
           "class-incremental, weight sharing: task j's subnetwork at inference leaves out its "
           "own weights (task 0's: every conv weight)", origin=SURVIVORS),
    Mutant("mind.ci_head_redraw_fan_out_only", MIND,
           "    return w.shape[0] * (w.shape[1] if w.dim() == 2   # Linear: out * in\n",
           "    return w.shape[0] * (1 if w.dim() == 2   # Linear: out * in\n",
           (f"{T_PAPER_METHODS}::test_mind_without_sharing_redraws_each_tasks_head_rows_he_normal",),
           "class-incremental, no sharing: a task's head rows redrawn at sqrt(2 / K), not "
           "sqrt(2 / (K * D))", origin=SURVIVORS),
    Mutant("mind.ci_head_rows_not_redrawn", MIND,
           "            head[r] = init.to(head.device, head.dtype)\n",
           "            pass\n",
           (f"{T_PAPER_METHODS}::test_mind_without_sharing_redraws_each_tasks_head_rows_he_normal",),
           "class-incremental, no sharing: a task's head rows keep their first "
           "initialisation instead of pruner.prune's He-normal redraw",
           origin=SURVIVORS),
]
