"""Blind mutants (issue 23, "keep yourselves honest").

Written blind on 2026-12-05 from the code at commit 3fb84297e4a1566d829c623bbf8ac9bcf2885b7c,
by a helper that read clbudget/, README.md, DESIGN.md and the seeds but none of tests/ nor the
other catalogue modules.  Each is a one-line bug a careless but competent engineer could write;
most change a reported number only in some situations (the mechanism says which).  The lead,
who has read the tests, fills AREA_TESTS.
"""
from bench.mutant_catalog import Mutant

# test files guarding each area: filled in by the lead, who has read the tests; after the
# first (blind) round, tests/test_blind_round_gaps.py was written against its survivors
AREA_TESTS = {
    "budget": ("tests/test_oracle_bytes.py", "tests/test_allocator_properties.py",
               "tests/test_budget.py", "tests/test_memo_convention.py", "tests/test_stored.py",
               "tests/test_codecs.py", "tests/test_blind_round_gaps.py"),
    "storage": ("tests/test_oracle_bytes.py", "tests/test_stored.py", "tests/test_codecs.py",
                "tests/test_codecs_reservoir.py", "tests/test_allocator_properties.py",
                "tests/test_blind_round_gaps.py"),
    "analysis": ("tests/test_metrics_reference.py", "tests/test_evaluate_oracle.py",
                 "tests/test_stats_scipy.py", "tests/test_pareto_bruteforce.py",
                 "tests/test_rows_oracle.py", "tests/test_analysis.py",
                 "tests/test_metric_definitions.py", "tests/test_report_compute.py",
                 "tests/test_blind_round_gaps.py"),
    "loop": ("tests/test_loop_recipes.py", "tests/test_recipes.py", "tests/test_parity.py",
             "tests/test_blind_round_gaps.py"),
    "losses": ("tests/test_method_losses.py", "tests/test_paper_methods.py",
               "tests/test_expanding_methods.py"),
}

ACC = "clbudget/budget/accountant.py"
COSTS = "clbudget/budget/costs.py"
ALLOC = "clbudget/budget/allocator.py"
BSTORE = "clbudget/budget/storage.py"
NSTORED = "clbudget/nets/stored.py"
SCODECS = "clbudget/streams/codecs.py"
MCODECS = "clbudget/methods/codecs.py"
METRICS = "clbudget/experiment/metrics.py"
STATS = "clbudget/analysis/stats.py"
PARETO = "clbudget/analysis/pareto.py"
ROWS = "clbudget/analysis/rows.py"
AUC = "clbudget/analysis/auc.py"
EVAL = "clbudget/experiment/evaluate.py"
CLASSIFIER = "clbudget/nets/classifier.py"
LOOP = "clbudget/train/loop.py"
RECIPES = "clbudget/train/recipes.py"
BOOK = "clbudget/train/recipe_book.py"
MIND = "clbudget/methods/mind.py"
CLR = "clbudget/methods/clr.py"
EXPANDING = "clbudget/methods/expanding.py"
LOSSES = "clbudget/methods/losses.py"

B, S, A, L, X = (AREA_TESTS[k] for k in ("budget", "storage", "analysis", "loop", "losses"))

MUTANTS = [
    # --- budget: accountant -------------------------------------------------------------------
    Mutant("blind.budget.mib_is_decimal", ACC,
           '"mib": 2**20', '"mib": 10**6', B,
           "MiB parsed as 10^6 bytes: every '...MiB' budget 4.9% too small"),
    Mutant("blind.budget.logits_at_pixel_dtype", ACC,
           "per += logits_dim * dtype_bytes(logit_dtype)",
           "per += logits_dim * dtype_bytes(dtype)", B,
           "exemplar_bytes prices kept logits at the pixel dtype (1 B for uint8) instead of "
           "logit_dtype; only when logits_dim > 0"),
    Mutant("blind.budget.mask_bits_floor", ACC,
           "return math.ceil(n_weights * bits / 8)",
           "return n_weights * bits // 8", B,
           "bit-packed mask bytes rounded down; only when n_weights * bits is not a multiple of 8"),
    # --- budget: cost models -----------------------------------------------------------------
    Mutant("blind.budget.bn_set_without_counter", COSTS,
           "4 * FLOAT_BYTES * s.bn_channels + dtype_bytes(torch.int64) * s.bn_layers",
           "4 * FLOAT_BYTES * s.bn_channels", B,
           "a per-task BN set (CLR, MIND strict) priced without num_batches_tracked (8 B/layer)"),
    Mutant("blind.budget.derpp_logits_once", COSTS,
           "n * stream.num_classes * FLOAT_BYTES))",
           "stream.num_classes * FLOAT_BYTES))", B,
           "DER++ logits priced for one exemplar, not n: more exemplars than the budget pays for"),
    Mutant("blind.budget.ewc_fisher_without_head", COSTS,
           "p = s.params_bytes + head_bytes(s.out_dim, st.num_classes)",
           "p = s.params_bytes", B,
           "online EWC's Fisher and anchor exclude the head's parameters (strict only)"),
    Mutant("blind.budget.der_buffers_once", COSTS,
           '("backbones.buffers", "buffers", T * s.buffers_bytes)',
           '("backbones.buffers", "buffers", s.buffers_bytes)', B,
           "DER's BN buffers counted for one backbone, not T (strict only; T > 1)"),
    Mutant("blind.budget.memo_conv_specialized_once", COSTS,
           '("specialized.feature_params", "params", T * FLOAT_BYTES * s.specialized_params)',
           '("specialized.feature_params", "params", FLOAT_BYTES * s.specialized_params)', B,
           "MEMO's specialized blocks counted once under the memo convention only (strict right)"),
    Mutant("blind.budget.memo2_buffers_not_moved", COSTS,
           "generalized_buffers_bytes=s.generalized_buffers_bytes - b,",
           "generalized_buffers_bytes=s.generalized_buffers_bytes,", B,
           "MEMO-2's split moves the stage's BN buffers into the specialized block without "
           "taking them from the generalized one (strict MEMO-2 only)"),
    Mutant("blind.budget.tasks_as_classes_over_inc", COSTS,
           "return 1 + rest // inc",
           "return num_classes // inc", B,
           "number of tasks of B{init}Inc{inc} = classes // inc: right for B0, wrong when the "
           "first task differs in size (B50Inc10 -> 10 tasks, not 6)"),
    Mutant("blind.budget.clr_kernels_per_bn_channel", COSTS,
           "return 9 * s.kxk_conv_channels",
           "return 9 * s.bn_channels", B,
           "CLR kernels counted per BN channel: equal on CIFAR ResNets, too many on ResNet-18 "
           "(1x1 downsample convs)"),
    Mutant("blind.budget.clr_heads_times_tasks", COSTS,
           '("clr.heads", "per_task", head_bytes(s.out_dim, st.num_classes))',
           '("clr.heads", "per_task", T * head_bytes(s.out_dim, st.num_classes))', B,
           "CLR's per-task heads priced as T full-width heads (strict only)"),
    Mutant("blind.budget.mind_memo_bn_with_stats", COSTS,
           '("bn_per_task", "per_task",\n'
           '                                       T * 2 * FLOAT_BYTES * s.bn_channels)]',
           '("bn_per_task", "per_task",\n'
           '                                       T * 4 * FLOAT_BYTES * s.bn_channels)]', B,
           "MIND's memo-convention BN sets count running statistics too (memo convention only)"),
    # --- budget: allocator --------------------------------------------------------------------
    Mutant("blind.budget.minimum_is_exclusive", ALLOC,
           "if n < config.min_per_class * stream.num_classes:\n            return None",
           "if n <= config.min_per_class * stream.num_classes:\n            return None", B,
           "a budget that buys exactly the minimum exemplars is refused (boundary only)"),
    Mutant("blind.budget.ladder_smallest_first", ALLOC,
           "for bb in reversed(ladder):  # largest rung that keeps the reserve",
           "for bb in ladder:  # largest rung that keeps the reserve", B,
           "expanding methods climb the ladder from the bottom: smallest rung that keeps the "
           "reserve instead of the largest"),
    Mutant("blind.budget.reserve_is_minimum", ALLOC,
           "reserve = config.reserve_per_class * stream.num_classes",
           "reserve = config.min_per_class * stream.num_classes", B,
           "ladder keeps min_per_class, not reserve_per_class: larger rungs, fewer exemplars"),
    Mutant("blind.budget.auc_point0_icarl", ALLOC,
           'single = cost_model("replay")',
           'single = cost_model("icarl")', B,
           "memo-auc point 0 priced as iCaRL (teacher + class means) under strict; memo "
           "convention unchanged"),
    Mutant("blind.budget.memo_fair_always_strict", ALLOC,
           "config.convention).total_bytes, ladder[-1])]",
           '"strict").total_bytes, ladder[-1])]', B,
           "memo-fair's budget is DER's strict cost even under the memo convention"),
    # --- budget: storage ----------------------------------------------------------------------
    Mutant("blind.budget.der_newest_backbone_stored", BSTORE,
           '"der": ("backbones", "backbone", lambda T: T - 1),',
           '"der": ("backbones", "backbone", lambda T: T),', B,
           "DER's store dtype reprices all T backbones, the training one included (fp16/bf16/int8)"),
    Mutant("blind.budget.memo_conv_stored_buffers", BSTORE,
           'f"{prefix}.feature_params": k * (low[0] - fp32[0]),',
           'f"{prefix}.feature_params": k * (sum(low) - sum(fp32)),', B,
           "memo-convention repricing also subtracts the BN buffers' savings (fp16/bf16, memo only)"),
    Mutant("blind.budget.codec_buffer_exact", BSTORE,
           "buffer = max(0, budget_bytes - fixed - n * slot)",
           "buffer = max(0, int(n * per_image))", B,
           "the codec byte buffer is n x the expected size; the leftover slack goes unspent"),
    Mutant("blind.budget.store_dtype_teachers_only", BSTORE,
           'and (store_dtype == "fp32" or method in STORED_PARTS))',
           'and (store_dtype == "fp32" or method in TEACHER_METHODS))', B,
           "sweeps expand store dtypes only for LwF/iCaRL/WA: DER, MEMO, CLR lose their cells"),

    # --- storage: nets/stored.py -------------------------------------------------------------
    Mutant("blind.storage.int8_scale_128", NSTORED,
           "scale = (amax / INT8_MAX)",
           "scale = (amax / 128)", S,
           "int8 scale max|w|/128: the largest weight of each channel no longer maps to +-127"),
    Mutant("blind.storage.int8_skips_linear", NSTORED,
           "if t.dim() >= 2:",
           "if t.dim() > 2:", S,
           "int8 quantizes conv weights only: a teacher's linear head stays float32 (bytes)"),
    Mutant("blind.storage.unstored_copy_keeps_held_dtype", NSTORED,
           "value = getattr(m, tname).detach().clone()",
           "value = rules.original0.detach().clone()", S,
           "an unstored copy keeps the held 16-bit tensors instead of their float32 values "
           "(CLR's per-task BN under fp16/bf16)"),
    # --- storage: streams/codecs.py ----------------------------------------------------------
    Mutant("blind.storage.down_bytes_one_channel", SCODECS,
           "return c * h * w if self.name == \"raw\" else c * self.param * self.param",
           "return c * h * w if self.name == \"raw\" else self.param * self.param", S,
           "down:S priced at S*S bytes, not C*S*S (3-channel streams only)"),
    Mutant("blind.storage.default_bytes_ignore_channels", SCODECS,
           "return DEFAULT_BYTES_32x32x3[key] * (c * h * w) / (3 * 32 * 32)",
           "return DEFAULT_BYTES_32x32x3[key] * (h * w) / (32 * 32)", S,
           "default jpeg/png bytes scaled by pixels only: 3x too large for 1-channel streams"),
    Mutant("blind.storage.estimate_first_images", SCODECS,
           "pick = torch.randperm(len(x), generator=g)[:ESTIMATE_SAMPLE]",
           "pick = torch.arange(len(x))[:ESTIMATE_SAMPLE]", S,
           "the bytes estimate takes the first 256 images, not a seeded sample: differs only "
           "with more than 256 images (and ignores the seed)"),
    # --- storage: methods/codecs.py ----------------------------------------------------------
    Mutant("blind.storage.pack_refuses_exact_fit", MCODECS,
           "if used + len(codes[rank]) > budget:",
           "if used + len(codes[rank]) >= budget:", S,
           "a code that exactly fills the buffer is refused (boundary only)"),
    Mutant("blind.storage.pack_class_keeps_going", MCODECS,
           "open_[j] = False\n                    continue",
           "continue", S,
           "a class that misses one exemplar keeps packing later, smaller codes: its held set "
           "is no longer a prefix of its herding order (variable-size codecs only)"),
    Mutant("blind.storage.decoded_bytes_capacity", MCODECS,
           "return len(self) * c * h * w",
           "return self.capacity * c * h * w", S,
           "decoded bytes of a class-balanced codec memory counted at capacity, not held "
           "exemplars (differs when not full)"),
    Mutant("blind.storage.reservoir_replaced_not_freed", MCODECS,
           "used = self.used_bytes - int(ln[slots].sum())",
           "used = self.used_bytes", S,
           "replaced reservoir codes still count as used: extra evictions, used_bytes drifts up"),

    # --- analysis: metrics -------------------------------------------------------------------
    Mutant("blind.analysis.clipped_excludes_last_row", METRICS,
           "return [max(A[t][j] for t in range(j, T)) - A[T - 1][j] for j in range(T - 1)]",
           "return [max(A[t][j] for t in range(j, T - 1)) - A[T - 1][j] for j in range(T - 1)]", A,
           "clipped forgetting = Chaudhry's: negative when the last task raised an old task"),
    Mutant("blind.analysis.bwt_over_all_tasks", METRICS,
           "vals = [A[T - 1][j] - A[j][j] for j in range(T - 1)]",
           "vals = [A[T - 1][j] - A[j][j] for j in range(T)]", A,
           "BWT averaged over T tasks, the last (always 0) included: shrunk by (T-1)/T"),
    # --- analysis: stats ---------------------------------------------------------------------
    Mutant("blind.analysis.std_population", STATS,
           "std = float(a.std(ddof=1))",
           "std = float(a.std())", A,
           "seed std with ddof=0 (and a narrower CI)"),
    Mutant("blind.analysis.ci_df_n", STATS,
           "half = t_quantile(n - 1, confidence) * std / math.sqrt(n)",
           "half = t_quantile(n, confidence) * std / math.sqrt(n)", A,
           "CI's t quantile with n degrees of freedom, not n-1: too narrow (4.30 -> 3.18 at n=3)"),
    Mutant("blind.analysis.welch_swapped_counts", STATS,
           "va, vb = a.var(ddof=1) / na, b.var(ddof=1) / nb",
           "va, vb = a.var(ddof=1) / nb, b.var(ddof=1) / na", A,
           "Welch's standard error divides each variance by the other's count: only with "
           "unequal seed counts (a missing seed)"),
    Mutant("blind.analysis.paired_when_subset", STATS,
           "if set(a) == set(b) and len(a) >= 2:",
           "if set(a) <= set(b) and len(a) >= 2:", A,
           "paired test when a's seeds are a subset of b's: b's extra seeds silently dropped"),
    Mutant("blind.analysis.paired_missing_b", STATS,
           "ok = np.isfinite(a) & np.isfinite(b)",
           "ok = np.isfinite(a)", A,
           "paired test keeps seeds where b is missing: NaN result instead of dropping the pair"),
    # --- analysis: pareto, rows, auc ----------------------------------------------------------
    Mutant("blind.analysis.pareto_keeps_equal_y", PARETO,
           "if ys[i] > best_y and ys[i] == group_best:",
           "if ys[i] >= best_y and ys[i] == group_best:", A,
           "a costlier point with the same accuracy as a cheaper one stays on the front"),
    Mutant("blind.analysis.pareto_group_order", PARETO,
           "key=lambda i: (xs[i], -ys[i], i))\n    mask",
           "key=lambda i: (xs[i], ys[i], i))\n    mask", A,
           "points of equal cost sorted by increasing accuracy: only ties in cost go wrong"),
    Mutant("blind.analysis.total_cost_run_convention", ROWS,
           'held = ledger_bytes(row, "strict")',
           "held = held_bytes(row)", A,
           "BMC total cost uses the run's convention: memo-convention runs report memo bytes"),
    Mutant("blind.analysis.cost_accuracy_per_mb", ROWS,
           "return acc / (cost / MIB)",
           "return acc / (cost / 10**6)", A,
           "cost-accuracy in % per MB (10^6), labelled per MiB"),
    Mutant("blind.analysis.relative_time_any_epochs", ROWS,
           'return stream_key(row), spec_of(row).get("epochs"), device_of(row)',
           "return stream_key(row), device_of(row)", A,
           "relative time's finetune reference ignores epochs: shows only when a sweep mixes "
           "epoch counts"),
    Mutant("blind.analysis.auc_unsorted", AUC,
           "pts = sorted(zip(xs, ys))",
           "pts = list(zip(xs, ys))", A,
           "trapezoid over budgets in the given order: wrong when budgets are not listed "
           "increasing"),
    # --- analysis: evaluation ----------------------------------------------------------------
    Mutant("blind.analysis.taw_width_of_first_task", EVAL,
           "lo, hi = offsets[j], offsets[j] + len(task.classes)",
           "lo, hi = offsets[j], offsets[j] + len(tasks[0].classes)", A,
           "TAW slices every task as wide as task 0: wrong when tasks differ in size (B50Inc10)"),
    Mutant("blind.analysis.seen_is_task_mean", EVAL,
           '"seen": correct / total if total else None}',
           '"seen": sum(tag) / len(tag) if tag else None}', A,
           "seen-class accuracy as the mean over tasks, not sample-weighted: differs only when "
           "test sets differ in size"),
    Mutant("blind.analysis.mask_unseen_off_by_one", CLASSIFIER,
           'out[:, seen:] = float("-inf")',
           'out[:, seen + 1:] = float("-inf")', A,
           "the first unseen class escapes the mask in task-agnostic evaluation"),

    # --- loop --------------------------------------------------------------------------------
    Mutant("blind.loop.milestones_truncated", LOOP,
           "milestones = tuple(sorted({max(1, round(m * scale)) for m in self.milestones}))",
           "milestones = tuple(sorted({max(1, int(m * scale)) for m in self.milestones}))", L,
           "with_epochs truncates scaled milestones: differs when a scaled milestone's "
           "fraction is >= .5 (e.g. 120 x 5/170 = 3.53 -> 3)"),
    Mutant("blind.loop.sgd_momentum_fixed", LOOP,
           "momentum=cfg.momentum,",
           "momentum=0.9,", L,
           "SGD momentum always 0.9: only Mammoth recipes (momentum 0) change"),
    Mutant("blind.loop.multistep_default_gamma", LOOP,
           "MultiStepLR(opt, list(cfg.milestones), gamma=cfg.gamma)",
           "MultiStepLR(opt, list(cfg.milestones))", L,
           "MultiStepLR ignores the recipe's gamma (0.1 default): only MIND's 0.5 recipes change"),
    Mutant("blind.loop.crop_offset_short", LOOP,
           "dy = torch.randint(0, 2 * p + 1, (b,), generator=generator)",
           "dy = torch.randint(0, 2 * p, (b,), generator=generator)", L,
           "vertical crop offset never reaches 2*pad: crops biased upward"),
    Mutant("blind.loop.brightness_rounds", LOOP,
           "return scaled.clamp_(0, 255).floor_().to(torch.uint8)",
           "return scaled.clamp_(0, 255).round_().to(torch.uint8)", L,
           "brightness jitter rounds instead of truncating as PIL's blend"),
    Mutant("blind.loop.fingerprint_ignores_normalization", "clbudget/train/recipe.py",
           'for k in ("precision", "phases", "augmentation",\n'
           '                                             "normalization")},',
           'for k in ("precision", "phases", "augmentation")},', L,
           "recipes differing only in normalisation share a fingerprint"),
    Mutant("blind.loop.pycil_first_milestone_160", BOOK,
           "PYCIL_FIRST = LoopConfig(epochs=200, lr=0.1, milestones=(60, 120, 170), "
           "weight_decay=5e-4)",
           "PYCIL_FIRST = LoopConfig(epochs=200, lr=0.1, milestones=(60, 120, 160), "
           "weight_decay=5e-4)", L,
           "PyCIL's first-task last milestone 160 (LwF's) instead of 170"),
    Mutant("blind.loop.mind_distill_milestone_copy", BOOK,
           "weight_decay=0.0, milestones=(40,), gamma=0.5)",
           "weight_decay=0.0, milestones=(35,), gamma=0.5)", L,
           "MIND distillation phase copies the teacher's milestone 35 (reference: 40)"),

    # --- losses ------------------------------------------------------------------------------
    Mutant("blind.losses.mind_distill_at_temperature", MIND,
           "return ce(logits, yb) + beta * symmetric_kl(target, logits)",
           "return ce(logits, yb) + beta * symmetric_kl(target, logits, "
           "self.config.temperature)", X,
           "MIND's L_SD softened at the inference temperature 6.5 instead of T=1"),
    Mutant("blind.losses.mind_teacher_ce_all_seen", MIND,
           "return ce(teacher(xb)[:, rows], yb)\n            teach = self.trainer.fit(teacher."
           "parameters(), task.x, task.y, teacher_step,",
           "return F.cross_entropy(teacher(xb)[:, :rows.stop], yb)\n            teach = "
           "self.trainer.fit(teacher.parameters(), task.x, task.y, teacher_step,", X,
           "the fresh teacher's CE over every class seen so far, not the task's: from task 1 on"),
    Mutant("blind.losses.clr_l2_squared", CLR,
           "loss = loss + lam * sum(torch.linalg.vector_norm(p) for p in params)",
           "loss = loss + lam * sum(p.pow(2).sum() for p in params)", X,
           "CLR's L2 penalty on the squared norm (weight decay) instead of the norm"),
    Mutant("blind.losses.memo_aux_first_new_is_old", EXPANDING,
           "aux_y = torch.where(yb >= old, yb - old + 1, torch.zeros_like(yb))",
           "aux_y = torch.where(yb > old, yb - old + 1, torch.zeros_like(yb))", X,
           "DER/MEMO auxiliary labels lump the first new class with the old ones"),
    Mutant("blind.losses.expanding_ce_all_classes", EXPANDING,
           "loss = F.cross_entropy(net.head(f)[:, :seen], yb)",
           "loss = F.cross_entropy(net.head(f), yb)", X,
           "DER/MEMO cross-entropy over the full-width head, unseen classes included"),
    Mutant("blind.losses.memo_aux_on_first_branch", EXPANDING,
           "F.cross_entropy(aux(f[:, -D:]), aux_y)",
           "F.cross_entropy(aux(f[:, :D]), aux_y)", X,
           "the auxiliary head reads the first (frozen) branch's features, not the new one's"),
    Mutant("blind.losses.align_with_unseen_rows", LOSSES,
           "gamma = norms[:old].mean() / norms[old:seen].mean()",
           "gamma = norms[:old].mean() / head_weight[old:].norm(dim=1).mean()", X,
           "weight aligning's new-class norm averages every row past the old ones, unseen "
           "classes included (only while seen < K)"),
]
