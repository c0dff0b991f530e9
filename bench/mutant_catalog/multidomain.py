"""Mutants of multi-domain and domain-incremental streams (streams/multidomain.py) and of the
methods run on them.

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only multidomain
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import MECHANISM

AREA = "multidomain"
MULTIDOMAIN = "clbudget/streams/multidomain.py"
EXPERIMENT_RUN = "clbudget/experiment/run.py"
EVALUATE = "clbudget/experiment/evaluate.py"
METRICS = "clbudget/experiment/metrics.py"
MIND = "clbudget/methods/mind.py"
COSTS = "clbudget/budget/costs.py"
CLI_RUN = "clbudget/cli/run.py"
FINETUNE = "clbudget/methods/finetune.py"
T_MULTIDOMAIN = "tests/test_multidomain.py"
MULTIDOMAIN_STREAM_GLOBAL = (f"{T_MULTIDOMAIN}::test_multidomain_stream_global_labels_from_the_idx_files",
                             f"{T_MULTIDOMAIN}::test_imagefolder_component_and_unequal_tasks")
UNIFY_PADS_GREY = (f"{T_MULTIDOMAIN}::test_unify_pads_grey_28_to_rgb_32_centred",
                   f"{T_MULTIDOMAIN}::test_multidomain_stream_global_labels_from_the_idx_files")

MUTANTS = [
    # --- clbudget/streams/multidomain.py ---------------------------------------------------------
    Mutant("multidomain.labels_not_offset", MULTIDOMAIN,
           "        train = Split(unify(only.train.x), only.train.y + offset)\n"
           "        test = Split(unify(only.test.x), only.test.y + offset)\n",
           "        train = Split(unify(only.train.x), only.train.y)\n"
           "        test = Split(unify(only.test.x), only.test.y)\n",
           MULTIDOMAIN_STREAM_GLOBAL,
           "every data set's labels start at 0: classes of different data sets share labels",
           origin=MECHANISM),
    Mutant("multidomain.extra_class_to_last_tasks", MULTIDOMAIN,
           "    return tuple(base + (i < extra) for i in range(num_tasks))\n",
           "    return tuple(base + (i >= num_tasks - extra) for i in range(num_tasks))\n",
           (f"{T_MULTIDOMAIN}::test_parse_stream_components_and_unequal_splits",
            f"{T_MULTIDOMAIN}::test_imagefolder_component_and_unequal_tasks"),
           "an unequal split gives its extra classes to the last tasks, not the first",
           origin=MECHANISM),
    Mutant("multidomain.pad_top_left", MULTIDOMAIN,
           "        top, left = (H - h) // 2, (W - w) // 2\n",
           "        top, left = 0, 0\n",
           UNIFY_PADS_GREY,
           "small images padded into the top-left corner instead of centred", origin=MECHANISM),
    Mutant("multidomain.grey_into_red_only", MULTIDOMAIN,
           "        x = np.repeat(x, 3, axis=1)\n",
           "        x = np.concatenate([x, np.zeros_like(x), np.zeros_like(x)], axis=1)\n",
           UNIFY_PADS_GREY,
           "a grey image becomes red instead of grey (replicated to 3 channels)",
           origin=MECHANISM),
    Mutant("multidomain.class_order_ignored", MULTIDOMAIN,
           "        class_subset=lambda available: class_order(available, class_order_seed)[:k])\n"
           "    return make_stream(dataset, k, k, class_order_seed=class_order_seed, num_classes=k,\n",
           "        class_subset=lambda available: list(range(k)))\n"
           "    return make_stream(dataset, k, k, class_order_seed=None, num_classes=k,\n",
           MULTIDOMAIN_STREAM_GLOBAL,
           "a component keeps its first K labels, not the first K of PyCIL's class order",
           origin=MECHANISM),
    Mutant("multidomain.domains_share_images", MULTIDOMAIN,
           "        mine = part == t\n",
           "        mine = part >= 0\n",
           (f"{T_MULTIDOMAIN}::test_domain_incremental_stream_keeps_the_labels_and_splits_the_images",),
           "every domain trains on all the images instead of its own disjoint part",
           origin=MECHANISM),
    Mutant("multidomain.invert_is_identity", MULTIDOMAIN,
           "        return 255 - x\n",
           "        return x\n",
           (f"{T_MULTIDOMAIN}::test_domain_incremental_stream_keeps_the_labels_and_splits_the_images",),
           "the invert domain leaves images unchanged", origin=MECHANISM),
    Mutant("multidomain.di_offsets_cumulative", MULTIDOMAIN,
           "        if self.domain_incremental:\n            return (0,) * self.num_tasks\n",
           "",
           (f"{T_MULTIDOMAIN}::test_domain_incremental_stream_keeps_the_labels_and_splits_the_images",),
           "a domain-incremental stream's tasks placed at cumulative offsets (0, K, 2K)",
           origin=MECHANISM),
    # --- clbudget/experiment/run.py --------------------------------------------------------------
    Mutant("multidomain.di_later_tasks_bring_classes", EXPERIMENT_RUN,
           "    return (stream.num_classes,) + (0,) * (stream.num_tasks - 1)\n",
           "    return tuple(stream.increments)\n",
           (f"{T_MULTIDOMAIN}::test_domain_incremental_methods_run_and_others_are_refused",),
           "domain-incremental tasks counted as K new classes each: heads and offsets grow",
           origin=MECHANISM),
    Mutant("multidomain.shape_not_domain_incremental", EXPERIMENT_RUN,
           "        shape = dataclasses.replace(shape, domain_incremental=True)\n",
           "        pass\n",
           (f"{T_MULTIDOMAIN}::test_mind_on_a_domain_incremental_stream_as_its_core50_path",),
           "the run does not tell the allocator the stream is domain-incremental",
           origin=MECHANISM),
    # --- clbudget/experiment/evaluate.py ---------------------------------------------------------
    Mutant("multidomain.di_task_aware_slice_empty", EVALUATE,
           "        if hi == lo:   # a domain-incremental task (no new classes): its classes are "
           "all seen\n            lo, hi = 0, method.seen\n",
           "",
           (f"{T_MULTIDOMAIN}::test_evaluate_on_a_domain_incremental_stream_by_hand",
            f"{T_MULTIDOMAIN}::test_domain_incremental_methods_run_and_others_are_refused"),
           "a task without new classes is scored task-aware over an empty slice",
           origin=MECHANISM),
    # --- clbudget/experiment/metrics.py ----------------------------------------------------------
    Mutant("multidomain.di_seen_per_domain_mean", METRICS,
           "        seen.append(hits / total)\n",
           "        seen.append(sum(A[t][:t + 1]) / (t + 1))\n",
           (f"{T_MULTIDOMAIN}::test_domain_accuracy_by_hand",
            f"{T_MULTIDOMAIN}::test_evaluate_on_a_domain_incremental_stream_by_hand"),
           "seen accuracy as the unweighted mean over domains instead of per test image",
           origin=MECHANISM),
    # --- clbudget/methods/mind.py ----------------------------------------------------------------
    Mutant("multidomain.mind_head_not_gated", MIND,
           "            gated = gated + [(\"head.weight\", net.head.weight)]\n",
           "            gated = gated\n",
           (f"{T_MULTIDOMAIN}::test_mind_on_a_domain_incremental_stream_as_its_core50_path",),
           "MIND on a domain-incremental stream trains the shared head in every task, unmasked",
           origin=MECHANISM),
    Mutant("multidomain.mind_head_bias_trains", MIND,
           "            net.head.bias.requires_grad_(False)\n",
           "            pass\n",
           (f"{T_MULTIDOMAIN}::test_mind_on_a_domain_incremental_stream_as_its_core50_path",),
           "the head's bias, shared by every domain, trains in each task (changes old domains)",
           origin=MECHANISM),
    Mutant("multidomain.mind_rows_are_new_classes", MIND,
           "        if self.domain:   # every task's classes are all K (the CORE50 output mask)\n",
           "        if False:\n",
           (f"{T_MULTIDOMAIN}::test_mind_on_a_domain_incremental_stream_as_its_core50_path",),
           "a domain task's head rows are its new classes (none after task 0)", origin=MECHANISM),
    Mutant("multidomain.mind_head_reinit_fan_out_only", MIND,
           "    return w.shape[0] * (w.shape[1] if w.dim() == 2   # Linear: out * in\n",
           "    return w.shape[0] * (1 if w.dim() == 2   # Linear: out * in\n",
           (f"{T_MULTIDOMAIN}::test_mind_on_a_domain_incremental_stream_as_its_core50_path",),
           "without sharing a domain's head weights re-drawn at sqrt(2 / out), not sqrt(2 / (out * in))",
           origin=MECHANISM),
    # --- clbudget/budget/costs.py ----------------------------------------------------------------
    Mutant("multidomain.mind_head_masks_not_priced", COSTS,
           "    masks = s.conv_weights + (s.out_dim * st.num_classes if st.domain_incremental else 0)\n",
           "    masks = s.conv_weights\n",
           (f"{T_MULTIDOMAIN}::test_mind_on_a_domain_incremental_stream_as_its_core50_path",),
           "the allocator leaves MIND's head masks out of a domain-incremental preview",
           origin=MECHANISM),
    # --- clbudget/cli/run.py ---------------------------------------------------------------------
    Mutant("multidomain.sweep_plan_not_domain_incremental", CLI_RUN,
           "                            domain_incremental=getattr(stream, \"domain_incremental\", False))\n",
           "                            domain_incremental=False)\n",
           (f"{T_MULTIDOMAIN}::test_sweep_plans_minds_head_masks_on_a_domain_incremental_stream",),
           "a sweep's plan prices a domain-incremental MIND without its head masks",
           origin=MECHANISM),
    # --- clbudget/methods/finetune.py ------------------------------------------------------------
    Mutant("multidomain.finetune_domain_task_empty_slice", FINETUNE,
           "        lo = self.old if self.seen > self.old else 0\n",
           "        lo = self.old\n",
           (f"{T_MULTIDOMAIN}::test_finetune_on_a_domain_task_is_ce_over_every_seen_class",
            f"{T_MULTIDOMAIN}::test_domain_incremental_methods_run_and_others_are_refused"),
           "finetune's CE on a domain task is over the empty slice of its new classes",
           origin=MECHANISM),
]
