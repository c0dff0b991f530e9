"""Blind mutants, third round (issue 23). Written blind on 2026-12-05 from the code at commit
d8f53c33136742a53fe334a2ac1580dc8fe4565d, by a helper that read clbudget/, README.md, DESIGN.md
and the catalogue's format only: no test file, no other catalogue module.

Each mutant is a one-statement bug a careless but competent engineer could write: a dropped
dtype or size factor, floor vs round, an off-by-one, a one-sided test, a swapped ratio, a missing
`abs`, a wrong slice of logits.  None was checked against the tests before the lead ran them;
each was checked only to apply once, to import, and to change behaviour on the input its
mechanism line names.  A first draft of 141 candidates was screened only by the overlap check
(which prints the names of this module's mutants whose (file, text) an earlier round already
uses, never the earlier mutants): the 68 it named were dropped, and at most two mutants were
kept per function.
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.blind2 import AREA_TESTS as SECOND_ROUND

# test files per area, the lead's choice, made before reading this module: the second round's
# files plus the end-to-end files that run methods and rows (test_ray, test_gpu_check,
# test_faults and test_sweep left out: one to eight minutes each)
EXTRA_TESTS = {
    "budget": ("tests/test_run.py", "tests/test_methods.py"),
    "storage": ("tests/test_features.py", "tests/test_run.py", "tests/test_methods.py"),
    "analysis": ("tests/test_audit.py", "tests/test_eval_batch.py", "tests/test_run.py"),
    "loop": ("tests/test_distillation_methods.py", "tests/test_paper_methods.py",
             "tests/test_features.py", "tests/test_streams.py", "tests/test_methods.py"),
    "losses": ("tests/test_distillation_methods.py", "tests/test_parity.py",
               "tests/test_features.py", "tests/test_methods.py"),
}
AREA_TESTS = {area: tests + tuple(t for t in EXTRA_TESTS.get(area, ()) if t not in tests)
              for area, tests in SECOND_ROUND.items()}

_B, _S, _A, _L, _O = (AREA_TESTS[k] for k in ("budget", "storage", "analysis", "loop", "losses"))

ACC = "clbudget/budget/accountant.py"
COSTS = "clbudget/budget/costs.py"
ALLOC = "clbudget/budget/allocator.py"
STORED = "clbudget/nets/stored.py"
STORAGE = "clbudget/budget/storage.py"
SCODECS = "clbudget/streams/codecs.py"
MCODECS = "clbudget/methods/codecs.py"
STATS = "clbudget/analysis/stats.py"
PARETO = "clbudget/analysis/pareto.py"
METRICS = "clbudget/experiment/metrics.py"
EVAL = "clbudget/experiment/evaluate.py"
ROWS = "clbudget/analysis/rows.py"
AUC = "clbudget/analysis/auc.py"
LOOP = "clbudget/train/loop.py"
RECIPES = "clbudget/train/recipes.py"
BOOK = "clbudget/train/recipe_book.py"
LOSSES = "clbudget/methods/losses.py"

MUTANTS = [
    # ---------------------------------------------------------------- budget (15)
    Mutant("blind3.budget.bn_counter_int32", COSTS,
           "dtype_bytes(torch.int64) * s.bn_layers", "dtype_bytes(torch.int32) * s.bn_layers",
           _B,
           "one BN set's num_batches_tracked priced at 4 bytes, not 8: CLR/MIND per-task BN "
           "items short by 4 bytes per BN layer (strict)"),
    Mutant("blind3.budget.clr_bn_sets_t_minus_one", COSTS,
           '("clr.bn", "per_task", T * bn_set_bytes(s))',
           '("clr.bn", "per_task", (T - 1) * bn_set_bytes(s))', _B,
           "CLR's per-task BN sets priced as T-1 (as if task 0 used the backbone's): one BN "
           "set short (strict)"),
    Mutant("blind3.budget.ladder_smallest_first", ALLOC,
           "for bb in reversed(ladder):", "for bb in ladder:", _B,
           "the ladder takes the smallest rung that keeps the reserve instead of the largest: "
           "expanding methods without a backbone named, whenever two rungs fit"),
    Mutant("blind3.budget.memo_auc_six_points", ALLOC,
           "for bb in ladder[1:]]", "for bb in ladder]", _B,
           "memo-auc also adds DER's cost at the smallest rung: six budget points instead of "
           "five"),
    Mutant("blind3.budget.format_exact_unit_one_below", ACC,
           "if abs(n_bytes) >= size:", "if abs(n_bytes) > size:", _B,
           "exactly 1 MiB (1 GiB, 1 KiB) printed one unit down ('1024.00 KiB'): only at the "
           "exact unit sizes"),
    Mutant("blind3.budget.exemplars_to_model_truncates", ACC,
           "return round(n_exemplars * image_bytes(image_shape))",
           "return int(n_exemplars * image_bytes(image_shape))", _B,
           "a fractional exemplar count converts to bytes truncated, not rounded: when the "
           "fractional byte part is >= 0.5"),
    Mutant("blind3.budget.model_to_exemplars_floored", ACC,
           "return model_bytes / image_bytes(image_shape)",
           "return model_bytes // image_bytes(image_shape)", _B,
           "model bytes converted to a whole number of exemplars (floor division) instead of "
           "the exact ratio: whenever the model is not a multiple of one image's bytes"),
    Mutant("blind3.budget.module_bytes_float_buffers_only", ACC,
           "tensors_bytes(module.buffers()))",
           "tensors_bytes(b for b in module.buffers() if b.is_floating_point()))", _B,
           "a module's buffer bytes skip BN's int64 num_batches_tracked: 8 bytes short per BN "
           "layer in every held ledger"),
    Mutant("blind3.budget.icarl_means_without_float_bytes", COSTS,
           "st.num_classes * s.out_dim * FLOAT_BYTES)])",
           "st.num_classes * s.out_dim)])", _B,
           "iCaRL's class means priced at one byte per value, not 4 (strict)"),
    Mutant("blind3.budget.bmc_features_without_float_bytes", COSTS,
           "n * s.out_dim * FLOAT_BYTES)]", "n * s.out_dim)]", _B,
           "BMC's per-exemplar expert features priced at one byte per value, not 4 "
           "(both conventions, n > 0)"),
    Mutant("blind3.budget.mind_memo_bn_with_statistics", COSTS,
           '("bn_per_task", "per_task",\n                                       T * 2 * FLOAT_BYTES',
           '("bn_per_task", "per_task",\n                                       T * 4 * FLOAT_BYTES',
           _B,
           "MIND's memo-convention per-task BN counts running statistics too (4 floats per "
           "channel, not the affine 2): memo convention only"),
    Mutant("blind3.budget.mind_head_mask_with_bias", COSTS,
           "(s.out_dim * st.num_classes if st.domain_incremental else 0)",
           "((s.out_dim + 1) * st.num_classes if st.domain_incremental else 0)", _B,
           "MIND's domain-incremental head mask also counts a byte per bias: domain-"
           "incremental streams only"),
    Mutant("blind3.budget.old_model_without_buffers", COSTS,
           "return [(prefix, kind, s.state_bytes + head)]",
           "return [(prefix, kind, s.params_bytes + head)]", _B,
           "a kept old model (LwF/iCaRL/WA teacher) priced without its BN buffers (strict)"),
    Mutant("blind3.budget.per_task_not_expansion", COSTS,
           "return stream.num_tasks if (self.expanding or self.per_task) else 1",
           "return stream.num_tasks if self.expanding else 1", _B,
           "CLR and MIND allocations report expansion 1 instead of T (and their BudgetError "
           "names a single backbone)"),
    Mutant("blind3.budget.minimum_bytes_one_exemplar_per_class_total", ALLOC,
           "n = config.min_per_class * stream.num_classes if model.uses_exemplars else 0",
           "n = config.min_per_class if model.uses_exemplars else 0", _B,
           "minimum_bytes prices min_per_class exemplars in all, not per class: the minimum "
           "named in errors too low for exemplar methods"),

    # --------------------------------------------------------------- storage (16)
    Mutant("blind3.storage.int8_scale_without_abs", STORED,
           "amax = w.abs().flatten(1).amax(1)", "amax = w.flatten(1).amax(1)", _S,
           "int8 scale from the channel's signed max, not max|w|: a channel whose largest "
           "magnitude is negative saturates (all-negative channels: scale = tiny)"),
    Mutant("blind3.storage.int8_codes_truncated", STORED,
           "codes = torch.round(w / scale).clamp_(", "codes = (w / scale).clamp_(", _S,
           "int8 codes truncated toward zero by .to(int8) instead of rounded: error up to s, "
           "not s/2, on every non-integral code"),
    Mutant("blind3.storage.fp16_casts_integer_buffers", STORED,
           "if t is None or not t.is_floating_point():", "if t is None:", _S,
           "fp16/bf16 also recast BN's int64 num_batches_tracked to 2 bytes: buffers 6 bytes "
           "short per BN layer"),
    Mutant("blind3.storage.teacher_buffers_not_repriced", STORAGE,
           "prefix: k * (sum(low) - sum(fp32))}", "prefix: k * (low[0] - fp32[0])}", _S,
           "the old_model item keeps fp32 BN buffer bytes under fp16/bf16: LwF/iCaRL/WA "
           "teacher over-priced by half its float buffers"),
    Mutant("blind3.storage.codec_count_ignores_slot_arrays", STORAGE,
           "n = max(0, int((budget_bytes - fixed) // (slot + per_image)))",
           "n = max(0, int((budget_bytes - fixed) // per_image))", _S,
           "codec exemplar count ignores each slot's label/offset/length bytes: more slots, "
           "a smaller byte buffer than the allocation should give"),
    Mutant("blind3.storage.rebalance_old_classes_unquoted", MCODECS,
           "pos = (old_y == c).nonzero().flatten()[:quota].tolist()",
           "pos = (old_y == c).nonzero().flatten().tolist()", _S,
           "old classes are not trimmed to the new quota before packing: when capacity is not "
           "a multiple of the classes, leftover slots go to old classes' extra exemplars"),
    Mutant("blind3.storage.pack_skips_instead_of_stopping", MCODECS,
           "open_[j] = False", "pass   # try the class's next exemplar", _S,
           "a class whose next code does not fit keeps trying later (smaller) ones: not a "
           "prefix of its herding order, with variable-size codecs near the byte limit"),
    Mutant("blind3.storage.buffers_fp32_priced_at_4_bytes", STORAGE,
           "sum(b.numel() * b.element_size() for b in module.buffers()))",
           "sum(b.numel() * 4 for b in module.buffers()))", _S,
           "the fp32 side of a frozen part prices int64 num_batches_tracked at 4 bytes: "
           "delta off by 4 bytes per BN layer and copy (store dtype != fp32)"),
    Mutant("blind3.storage.memo2_priced_as_memo", STORAGE,
           '"memo2": ("specialized", "specialized:2", lambda T: T - 1),',
           '"memo2": ("specialized", "specialized:1", lambda T: T - 1),', _S,
           "MEMO-2's frozen part priced as MEMO's one-stage block: under-saved at store dtype "
           "!= fp32"),
    Mutant("blind3.storage.clr_backbone_copies_t", STORAGE,
           '"clr": ("backbone", "backbone", lambda T: 1)}',
           '"clr": ("backbone", "backbone", lambda T: T)}', _S,
           "CLR's one frozen backbone repriced T times (as if per task): its saving counted "
           "T-fold, T > 1"),
    Mutant("blind3.storage.codec_slots_in_memo_convention", STORAGE,
           'if ledger.convention == "strict":', "if True:", _S,
           "codec offsets/lengths also charged under the memo convention (which counts pixels "
           "only)"),
    Mutant("blind3.storage.codec_minimum_total_not_per_class", STORAGE,
           "need = config.min_per_class * stream.num_classes",
           "need = config.min_per_class", _S,
           "a codec budget is refused only below min_per_class exemplars in all, not per "
           "class: budgets too small for one exemplar per class accepted"),
    Mutant("blind3.storage.down_upsample_align_corners", SCODECS,
           'mode="bilinear", align_corners=False)', 'mode="bilinear", align_corners=True)', _S,
           "down:S decodes with align_corners=True: different replayed pixels for every S < H"),
    Mutant("blind3.storage.default_bytes_nearest_without_abs", SCODECS,
           "else abs(q - codec.param))", "else q - codec.param)", _S,
           "the nearest tabulated JPEG quality picked without abs: always the lowest (q25) "
           "for any quality above it"),
    Mutant("blind3.storage.len_counts_emptied_slots", MCODECS,
           "return self.count - self.n_empty", "return self.count", _S,
           "a codec memory's length includes slots emptied for bytes: reservoir near the byte "
           "limit"),
    Mutant("blind3.storage.held_slots_include_empty", MCODECS,
           "return (self.lengths[:self.count] > 0).nonzero().flatten()",
           "return (self.lengths[:self.count] >= 0).nonzero().flatten()", _S,
           "held_slots lists emptied slots (length 0, label -1) too: data()/sample once a "
           "slot was evicted"),

    # -------------------------------------------------------------- analysis (13)
    Mutant("blind3.analysis.p_value_one_sided", STATS,
           "return float(2 * sps.t.sf(abs(t), df))", "return float(sps.t.sf(abs(t), df))", _A,
           "p-values of both tests halved (one-sided): whenever the difference is not exact"),
    Mutant("blind3.analysis.clean_keeps_nan", STATS,
           "return a[np.isfinite(a)]", "return a", _A,
           "NaN/inf seed values are no longer dropped: mean/std/CI become NaN when one seed "
           "has a non-finite value"),
    Mutant("blind3.analysis.chaudhry_includes_last_row", METRICS,
           "for t in range(j, T - 1))", "for t in range(j, T))", _A,
           "Chaudhry forgetting's max includes the final row: equals the clipped definition, "
           "never negative (differs on backward transfer)"),
    Mutant("blind3.analysis.clipped_averages_last_task", METRICS,
           "range(j, T)) - A[T - 1][j] for j in range(T - 1)]",
           "range(j, T)) - A[T - 1][j] for j in range(T)]", _A,
           "clipped forgetting also averages the last task's 0: mean diluted by (T-1)/T "
           "whenever any task forgot"),
    Mutant("blind3.analysis.taw_argmax_not_offset", EVAL,
           "taw.append(float(((s[:, lo:hi].argmax(1) + lo) == y).float().mean()))",
           "taw.append(float((s[:, lo:hi].argmax(1) == y).float().mean()))", _A,
           "task-aware argmax within task j's slice compared to global labels without the "
           "offset: wrong for every task j > 0"),
    Mutant("blind3.analysis.breakdown_per_task_is_other", ROWS,
           'BREAKDOWN = {"model": ("params", "buffers", "per_task"),',
           'BREAKDOWN = {"model": ("params", "buffers"),', _A,
           "per-task modules (CLR kernels/BN, MIND BN sets) move from the model bar to "
           "'other' in the breakdown"),
    Mutant("blind3.analysis.auc_budget_in_mb", AUC,
           "pts = [(b / MIB, a) for b, a", "pts = [(b / 1e6, a) for b, a", _A,
           "AUC's budget axis in decimal MB instead of MiB: every area 4.9% too large"),
    Mutant("blind3.analysis.unpaired_diff_sign_flipped", STATS,
           "return welch_test(list(a.values()), list(b.values()), confidence)",
           "return welch_test(list(b.values()), list(a.values()), confidence)", _A,
           "compare_seeds on unmatched seeds reports b - a: the sign of diff and CI flips "
           "(Welch path only)"),
    Mutant("blind3.analysis.pareto_only_previous_group_binds", PARETO,
           "best_y = max(best_y, group_best)", "best_y = group_best", _A,
           "a point is compared only with the next-cheaper cost group, not all cheaper ones: "
           "dominated points on the front when accuracy dips then recovers"),
    Mutant("blind3.analysis.forgetting_key_clipped", METRICS,
           '"forgetting": forgetting_chaudhry(A),', '"forgetting": forgetting_clipped(A),', _A,
           "the old 'forgetting' key holds the clipped definition: differs when some task has "
           "negative Chaudhry forgetting"),
    Mutant("blind3.analysis.held_bytes_always_strict", ROWS,
           'return ledger_bytes(row, spec_of(row).get("convention", "strict"))',
           "return ledger_bytes(row)", _A,
           "held bytes of a memo-convention run read from the strict ledger"),
    Mutant("blind3.analysis.critical_path_replaces_wall", ROWS,
           'return wall - sum(row.get("task_wall_s") or []) + critical',
           "return critical", _A,
           "a BMC row's timed wall is its critical path alone, evaluation and the rest "
           "dropped: BMC relative time too small"),
    Mutant("blind3.analysis.trapezoid_right_endpoint", AUC,
           "(x1 - x0) * (y0 + y1) / 2", "(x1 - x0) * y1", _A,
           "AUC by right-endpoint rectangles instead of trapezoids: differs whenever accuracy "
           "changes between budgets"),

    # ------------------------------------------------------------------- loop (14)
    Mutant("blind3.loop.mixup_second_target_idx_unpermuted", LOOP,
           "loss_of(y[mix.perm], idx[mix.perm])", "loss_of(y[mix.perm], idx)", _L,
           "mixup's second loss reads the un-permuted sample positions: stored per-sample "
           "targets (BMC features) mismatched with their labels"),
    Mutant("blind3.loop.adamw_is_adam", LOOP,
           "return torch.optim.AdamW(params", "return torch.optim.Adam(params", _L,
           "optimizer 'adamw' builds Adam (L2 in the gradient, not decoupled decay): differs "
           "whenever weight_decay > 0 (BMC consolidation)"),
    Mutant("blind3.loop.plateau_mode_max", LOOP,
           'opt, "min", factor=cfg.gamma', 'opt, "max", factor=cfg.gamma', _L,
           "ReduceLROnPlateau watches for a loss increase: lr decays while the loss keeps "
           "falling (schedule plateau only)"),
    Mutant("blind3.loop.plateau_steps_on_training_loss", LOOP,
           "sched.step(val_history[-1] if n_val else mean_loss)", "sched.step(mean_loss)", _L,
           "the plateau steps on the training loss even when a validation split exists"),
    Mutant("blind3.loop.validation_loss_unweighted_batches", LOOP,
           "total += float(step(self.pipeline(x[idx]), y[idx], idx)) * len(idx)",
           "total += float(step(self.pipeline(x[idx]), y[idx], idx))", _L,
           "validation loss sums batch means then divides by samples: off by ~batch_size "
           "(any validation > 0)"),
    Mutant("blind3.loop.mammoth_keeps_momentum", BOOK,
           "MAMMOTH = LoopConfig(epochs=50, batch_size=32, lr=0.03, momentum=0.0, weight_decay=0.0,",
           "MAMMOTH = LoopConfig(epochs=50, batch_size=32, lr=0.03, weight_decay=0.0,", _L,
           "Mammoth seq-cifar10 recipes get LoopConfig's default momentum 0.9 instead of 0"),
    Mutant("blind3.loop.run_epochs_on_every_phase", RECIPES,
           "        if phase not in task_phases:\n            continue\n        cfg = cfg.with_epochs(epochs)",
           "        cfg = cfg.with_epochs(epochs)", _L,
           "--epochs/--batch-size/--lr also rewrite non-task phases (BMC consolidation, CLR "
           "pretrain, MIND teacher)"),
    Mutant("blind3.loop.balanced_weights_not_inverted", LOOP,
           "weights = (1.0 / counts.double())[inverse].cpu()",
           "weights = counts.double()[inverse].cpu()", _L,
           "the balanced sampler weights samples by their group's size, not its inverse: large "
           "groups drawn even more (unequal groups only)"),
    Mutant("blind3.loop.lwf_first_milestones", BOOK,
           "first=LoopConfig(epochs=200, lr=0.1, milestones=(60, 120, 160), weight_decay=5e-4))",
           "first=LoopConfig(epochs=200, lr=0.1, milestones=(60, 120, 170), weight_decay=5e-4))",
           _L,
           "pycil-lwf's first task decays at 170 (the other methods') instead of PyCIL lwf's 160"),
    Mutant("blind3.loop.mammoth_c100_ewc_gamma", BOOK,
           "MAMMOTH_C100_EWC = replace(MAMMOTH_C100, gamma=0.1, lr=0.1)",
           "MAMMOTH_C100_EWC = replace(MAMMOTH_C100, lr=0.1)", _L,
           "mammoth-seq-cifar100-ewc_on decays by derpp's 0.2 instead of 0.1"),
    Mutant("blind3.loop.bmc_consolidation_shuffled", BOOK,
           'sampler="balanced", augment=False)', "augment=False)", _L,
           "BMC's consolidation samples every sample once per epoch instead of balanced by "
           "buffer"),
    Mutant("blind3.loop.mind_distill_lr_copied", BOOK,
           "weight_decay=0.0, milestones=(35,), gamma=0.5)),\n     (\"distill\", LoopConfig(epochs=50, batch_size=256, optimizer=\"adam\", lr=0.035,",
           "weight_decay=0.0, milestones=(35,), gamma=0.5)),\n     (\"distill\", LoopConfig(epochs=50, batch_size=256, optimizer=\"adam\", lr=0.005,",
           _L,
           "MIND's distillation phase copies the teacher's lr 0.005 instead of 0.035"),
    Mutant("blind3.loop.imposed_recipe_task_phase_from_own", RECIPES,
           "if source not in base.phase_names and phase not in task_phases:",
           "if source not in base.phase_names:", _L,
           "a task phase missing from an imposed recipe comes from the method's own reference, "
           "not its phase_fallbacks (CLR's task under a pycil recipe)"),
    Mutant("blind3.loop.normalization_not_compared", RECIPES,
           'for key in ("precision", "augmentation", "normalization"):',
           'for key in ("precision", "augmentation"):', _L,
           "recipes differing only in normalisation are reported as training alike"),

    # ---------------------------------------------------------------- losses (12)
    Mutant("blind3.losses.memo_trunk_frozen_from_task0", "clbudget/methods/memo.py",
           "return self.task == 0 or self.config.train_generalized",
           "return self.config.train_generalized", _O,
           "with train_generalized=False the generalized blocks are frozen from task 0 (never "
           "trained) instead of after it"),
    Mutant("blind3.losses.bmc_expert_ce_all_classes", "clbudget/methods/bmc.py",
           "loss = F.cross_entropy(expert.head(feats[-1])[:, lo:hi], yb - lo)",
           "loss = F.cross_entropy(expert.head(feats[-1])[:, :hi], yb)", _O,
           "a BMC expert's CE over classes [0, hi) instead of its task's: differs for every "
           "expert with lo > 0"),
    Mutant("blind3.losses.mind_subnet_excludes_own_task", "clbudget/methods/mind.py",
           "return [m <= j for m in self.masks]", "return [m < j for m in self.masks]", _O,
           "with weight sharing, task j's subnetwork at inference leaves out its own weights "
           "(training still uses them): every task's scores (task 0: no conv weight at all)"),
    Mutant("blind3.losses.mind_prune_share_of_free", "clbudget/methods/mind.py",
           "n = min(w.numel() // T, int(free.sum()))", "n = int(free.sum()) // T", _O,
           "each task gets 1/T of the still-free weights instead of numel // T: tasks > 0 get "
           "fewer weights"),
    Mutant("blind3.losses.kd_mean_over_classes", LOSSES,
           "return -(q * log_p).sum(1).mean()", "return -(q * log_p).mean()", _O,
           "KD averaged over classes as well as the batch: scaled by 1/K_old"),
    Mutant("blind3.losses.js_mean_not_batchmean", LOSSES,
           'F.kl_div(m.log(), p, reduction="batchmean")', 'F.kl_div(m.log(), p, reduction="mean")',
           _O,
           "JS divergence's first KL averaged over classes too: scaled by 1/K on that half"),
    Mutant("blind3.losses.icarl_nme_unnormalized_features", "clbudget/methods/icarl.py",
           "f = normalize(features.float())", "f = features.float()", _O,
           "NME compares raw features with unit-norm means: different nearest means unless "
           "every feature has unit norm"),
    Mutant("blind3.losses.bmc_l2_squared", "clbudget/methods/bmc.py",
           "return torch.linalg.vector_norm(diff, dim=1)", "return diff.pow(2).sum(1)", _O,
           "L_bd's 'l2' distance squared: differs whenever a layer's distance is not 0 or 1"),
    Mutant("blind3.losses.bmc_consolidation_ce_unmasked", "clbudget/methods/bmc.py",
           "logits = self.base.head(feats)[:, :seen]", "logits = self.base.head(feats)", _O,
           "consolidation CE over all K classes, unseen included: before the last task"),
    Mutant("blind3.losses.clr_stored_fraction_affine_only", "clbudget/methods/clr.py",
           "stored = kernels + 4 * bn ", "stored = kernels + 2 * bn ", _O,
           "CLR's stored-per-task fraction omits BN running statistics"),
    Mutant("blind3.losses.clr_reprograms_1x1", "clbudget/methods/clr.py",
           "all_convs or max(m.kernel_size) > 1", "all_convs or max(m.kernel_size) >= 1", _O,
           "CLR reprograms 1x1 convs too by default: more kernels on backbones with 1x1 "
           "convs (ResNet-18 downsample)"),
    Mutant("blind3.losses.symmetric_kl_wrong_weight", LOSSES,
           "kl_qp = (log_q.exp() * (log_q - log_p)).sum(1)",
           "kl_qp = (log_p.exp() * (log_q - log_p)).sum(1)", _O,
           "the reverse KL weighted by p instead of q: it cancels the forward KL and L_SD is 0"),
]
