"""Mutants of multi-domain and domain-incremental streams (streams/multidomain.py) and their
wiring in experiment/run.py and experiment/evaluate.py."""
from bench.mutant_catalog import Mutant

T = "tests/test_multidomain.py"
MD = "clbudget/streams/multidomain.py"
IDX = f"{T}::test_multidomain_stream_global_labels_from_the_idx_files"
FOLDER = f"{T}::test_imagefolder_component_and_unequal_tasks"
UNIFY = f"{T}::test_unify_pads_grey_28_to_rgb_32_centred"
DI = f"{T}::test_domain_incremental_stream_keeps_the_labels_and_splits_the_images"
DI_EVAL = f"{T}::test_evaluate_on_a_domain_incremental_stream_by_hand"
DI_RUN = f"{T}::test_domain_incremental_methods_run_and_others_are_refused"
DI_MIND = f"{T}::test_mind_on_a_domain_incremental_stream_as_its_core50_path"
MIND = "clbudget/methods/mind.py"

MUTANTS = [
    Mutant("multidomain.labels_not_offset", MD,
           "        train = Split(unify(only.train.x), only.train.y + offset)\n"
           "        test = Split(unify(only.test.x), only.test.y + offset)\n",
           "        train = Split(unify(only.train.x), only.train.y)\n"
           "        test = Split(unify(only.test.x), only.test.y)\n",
           (IDX, FOLDER),
           "every data set's labels start at 0: classes of different data sets share labels"),
    Mutant("multidomain.extra_class_to_last_tasks", MD,
           "    return tuple(base + (i < extra) for i in range(num_tasks))\n",
           "    return tuple(base + (i >= num_tasks - extra) for i in range(num_tasks))\n",
           (f"{T}::test_parse_stream_components_and_unequal_splits", FOLDER),
           "an unequal split gives its extra classes to the last tasks, not the first"),
    Mutant("multidomain.pad_top_left", MD,
           "        top, left = (H - h) // 2, (W - w) // 2\n",
           "        top, left = 0, 0\n",
           (UNIFY, IDX),
           "small images padded into the top-left corner instead of centred"),
    Mutant("multidomain.grey_into_red_only", MD,
           "        x = np.repeat(x, 3, axis=1)\n",
           "        x = np.concatenate([x, np.zeros_like(x), np.zeros_like(x)], axis=1)\n",
           (UNIFY, IDX),
           "a grey image becomes red instead of grey (replicated to 3 channels)"),
    Mutant("multidomain.class_order_ignored", MD,
           "        class_subset=lambda available: class_order(available, class_order_seed)[:k])\n"
           "    return make_stream(dataset, k, k, class_order_seed=class_order_seed, num_classes=k,\n",
           "        class_subset=lambda available: list(range(k)))\n"
           "    return make_stream(dataset, k, k, class_order_seed=None, num_classes=k,\n",
           (IDX, FOLDER),
           "a component keeps its first K labels, not the first K of PyCIL's class order"),
    Mutant("multidomain.domains_share_images", MD,
           "        mine = part == t\n",
           "        mine = part >= 0\n",
           (DI,),
           "every domain trains on all the images instead of its own disjoint part"),
    Mutant("multidomain.invert_is_identity", MD,
           "        return 255 - x\n",
           "        return x\n",
           (DI,),
           "the invert domain leaves images unchanged"),
    Mutant("multidomain.di_offsets_cumulative", MD,
           "        if self.domain_incremental:\n            return (0,) * self.num_tasks\n",
           "",
           (DI,),
           "a domain-incremental stream's tasks placed at cumulative offsets (0, K, 2K)"),
    Mutant("multidomain.di_later_tasks_bring_classes", "clbudget/experiment/run.py",
           "    return (stream.num_classes,) + (0,) * (stream.num_tasks - 1)\n",
           "    return tuple(stream.increments)\n",
           (DI_RUN,),
           "domain-incremental tasks counted as K new classes each: heads and offsets grow"),
    Mutant("multidomain.di_task_aware_slice_empty", "clbudget/experiment/evaluate.py",
           "        if hi == lo:   # a domain-incremental task (no new classes): its classes are "
           "all seen\n            lo, hi = 0, method.seen\n",
           "",
           (DI_EVAL, DI_RUN),
           "a task without new classes is scored task-aware over an empty slice"),
    Mutant("multidomain.di_seen_per_domain_mean", "clbudget/experiment/metrics.py",
           "        seen.append(hits / total)\n",
           "        seen.append(sum(A[t][:t + 1]) / (t + 1))\n",
           (f"{T}::test_domain_accuracy_by_hand", DI_EVAL),
           "seen accuracy as the unweighted mean over domains instead of per test image"),
    Mutant("multidomain.mind_head_not_gated", MIND,
           "            gated = gated + [(\"head.weight\", net.head.weight)]\n",
           "            gated = gated\n",
           (DI_MIND,),
           "MIND on a domain-incremental stream trains the shared head in every task, unmasked"),
    Mutant("multidomain.mind_head_bias_trains", MIND,
           "            net.head.bias.requires_grad_(False)\n",
           "            pass\n",
           (DI_MIND,),
           "the head's bias, shared by every domain, trains in each task (changes old domains)"),
    Mutant("multidomain.mind_rows_are_new_classes", MIND,
           "        if self.domain:   # every task's classes are all K (the CORE50 output mask)\n",
           "        if False:\n",
           (DI_MIND,),
           "a domain task's head rows are its new classes (none after task 0)"),
    Mutant("multidomain.mind_head_masks_not_priced", "clbudget/budget/costs.py",
           "    masks = s.conv_weights + (s.out_dim * st.num_classes if st.domain_incremental else 0)\n",
           "    masks = s.conv_weights\n",
           (DI_MIND,),
           "the allocator leaves MIND's head masks out of a domain-incremental preview"),
    Mutant("multidomain.shape_not_domain_incremental", "clbudget/experiment/run.py",
           "        shape = dataclasses.replace(shape, domain_incremental=True)\n",
           "        pass\n",
           (DI_MIND,),
           "the run does not tell the allocator the stream is domain-incremental"),
    Mutant("multidomain.mind_head_reinit_fan_out_only", MIND,
           "                fan_out = w.shape[0] * (w.shape[1] if w.dim() == 2   # Linear: out * in\n",
           "                fan_out = w.shape[0] * (1 if w.dim() == 2   # Linear: out * in\n",
           (DI_MIND,),
           "without sharing a domain's head weights re-drawn at sqrt(2 / out), not sqrt(2 / (out * in))"),
    Mutant("multidomain.sweep_plan_not_domain_incremental", "clbudget/cli.py",
           "                            domain_incremental=getattr(stream, \"domain_incremental\", False))\n",
           "                            domain_incremental=False)\n",
           (f"{T}::test_sweep_plans_minds_head_masks_on_a_domain_incremental_stream",),
           "a sweep's plan prices a domain-incremental MIND without its head masks"),
]
