"""Mutants that survived the suite when written blind (issue: "kill the mutants the suite
still lets through"), each with the test written for it afterwards, from the formula or the
reference, not from the code.

- the "mean ± CI" cells of the report's tables printed the full interval width;
- iCaRL's linear-head (CNN) task-aware curve was the plain mean over tasks while every other
  curve is per test image (experiment/run.py; fixed with this catalogue entry);
- MIND's class-incremental path: a subnetwork leaving out its own weights at inference, and
  the fan of the head's He-normal redraw without weight sharing (killed before only by the
  domain-incremental test, tests/test_multidomain.py, as blind3.losses.mind_subnet_excludes_
  own_task and multidomain.mind_head_reinit_fan_out_only).
"""
from bench.mutant_catalog import Mutant

REPORT = ("tests/test_report_compute.py::"
          "test_table_cells_print_the_ci_half_width_in_markdown_and_html")
ICARL = ("tests/test_protocol.py::"
         "test_icarl_task_aware_curves_of_both_classifiers_weigh_tasks_by_test_images")
P = "tests/test_paper_methods.py"
MIND = "clbudget/methods/mind.py"

MUTANTS = [
    Mutant("report.ci_cell_full_width", "clbudget/analysis/report.py",
           "{(s['ci_high'] - s['ci_low']) / 2:.{digits}f}",
           "{(s['ci_high'] - s['ci_low']):.{digits}f}",
           (REPORT,),
           "a Markdown/HTML table cell prints mean ± the CI's full width, not its half-width"),
    Mutant("report.gflops_ci_full_width", "clbudget/analysis/compute.py",
           'half = (s["ci_high"] - s["ci_low"]) / 2',
           'half = s["ci_high"] - s["ci_low"]',
           (REPORT,),
           "the Compute table's training GFLOPs cell prints ± the CI's full width"),
    Mutant("icarl.cnn_task_aware_curve_task_mean", "clbudget/experiment/run.py",
           '[seen_accuracy(r[:i + 1], sizes) for i, r in enumerate(d["taw"])]',
           '[sum(r[:i + 1]) / (i + 1) for i, r in enumerate(d["taw"])]',
           (ICARL,),
           "iCaRL's linear-head task-aware curve weighs tasks equally, the NME one by test "
           "images: the two differ on uneven tasks (B50Inc5)"),
    Mutant("mind.ci_subnet_excludes_own_task", MIND,
           "return [m <= j for m in self.masks]", "return [m < j for m in self.masks]",
           (f"{P}::test_mind_subnetwork_computes_with_its_own_weights_at_inference",),
           "class-incremental, weight sharing: task j's subnetwork at inference leaves out its "
           "own weights (task 0's: every conv weight)"),
    Mutant("mind.ci_head_redraw_fan_out_only", MIND,
           "    return w.shape[0] * (w.shape[1] if w.dim() == 2   # Linear: out * in\n",
           "    return w.shape[0] * (1 if w.dim() == 2   # Linear: out * in\n",
           (f"{P}::test_mind_without_sharing_redraws_each_tasks_head_rows_he_normal",),
           "class-incremental, no sharing: a task's head rows redrawn at sqrt(2 / K), not "
           "sqrt(2 / (K * D))"),
    Mutant("mind.ci_head_rows_not_redrawn", MIND,
           "            head[r] = init.to(head.device, head.dtype)\n",
           "            pass\n",
           (f"{P}::test_mind_without_sharing_redraws_each_tasks_head_rows_he_normal",),
           "class-incremental, no sharing: a task's head rows keep their first "
           "initialisation instead of pruner.prune's He-normal redraw"),
]
