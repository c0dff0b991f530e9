"""Mutants of byte accounting and allocation (issue 23, part A), guarded by the hand-counted
oracles (tests/test_oracle_bytes.py, tests/oracle_counts.py) and the allocator's properties
(tests/test_allocator_properties.py).  Each is a realistic one-line slip: a unit's size, a
rounding, a stream shape assumed (CIFAR-100's 100 classes, 3x32x32), a convention's item, a
stored dtype's bytes, the ladder's direction or reserve."""
from bench.mutant_catalog import Mutant

O = "tests/test_oracle_bytes.py"
P = "tests/test_allocator_properties.py"
ITEMS = f"{O}::test_cost_model_items_equal_the_hand_count"
STATS = f"{O}::test_backbone_stats_match_the_layer_list_count"
UNITS = f"{O}::test_every_unit_parses_to_its_documented_value"
REFUSE = f"{O}::test_refusals_name_what_was_wrong"
STORED = f"{O}::test_stored_ledgers_equal_the_hand_count"
FIT = f"{P}::test_fit_is_within_budget_full_and_refuses_only_below_the_minimum"
LADDER = f"{P}::test_the_ladder_takes_the_largest_rung_that_keeps_the_reserve"
BY_HAND = f"{P}::test_the_ladder_by_hand_on_eight_classes"
RAW = f"{O}::test_raw_allocation_by_hand_on_fashion_mnist"
BOOK = f"{O}::test_codec_allocation_bookkeeping_by_hand"
ANCHORS = f"{P}::test_memo_fair_anchors_cifar100_by_hand"
CODEC = f"{P}::test_codec_allocation_never_over_and_the_next_slot_would_not_fit"
ACC, COSTS = "clbudget/budget/accountant.py", "clbudget/budget/costs.py"
ALLOC, STORAGE = "clbudget/budget/allocator.py", "clbudget/budget/storage.py"


def m(name, path, old, new, tests, mechanism):
    return Mutant(f"oracle.budget.{name}", path, old, new, tuple(tests), mechanism)


MUTANTS = [
    # --- units -------------------------------------------------------------------------------
    m("kib_is_1000", ACC, '"kib": 2**10', '"kib": 10**3', (UNITS,), "KiB parsed as kB"),
    m("mb_is_mebibyte", ACC, '"mb": 10**6', '"mb": 2**20', (UNITS,), "MB parsed as MiB"),
    m("units_round_half_up", ACC,
      "        return int((_decimal(m.group(1)) * unit).to_integral_value(ROUND_FLOOR))\n",
      "        return int((_decimal(m.group(1)) * unit).to_integral_value())\n",
      (UNITS,), "a unit's fraction of a byte rounded to nearest, not down"),
    m("lowercase_b_refused", ACC, r'"\s*([kKmMgG]i?[bB]|[bB])?"', r'"\s*([kKmMgG]i?B|[bB])?"',
      (UNITS,), "'3Mb', '2kb', '2kib' refused"),
    m("ex_is_cifar_sized", ACC,
      "        return int((n * image_bytes(image_shape)).to_integral_value(ROUND_FLOOR))\n",
      "        return int((n * 3072).to_integral_value(ROUND_FLOOR))\n",
      (f"{O}::test_exemplar_units_use_the_streams_image_shape",),
      "Nex priced at CIFAR's 3,072 B whatever the stream's images"),
    m("zero_budget_accepted", ACC, "    if value <= 0:\n", "    if value < 0:\n", (REFUSE,),
      "a budget of 0 bytes (or one rounding down to 0) accepted"),
    # --- cost models ---------------------------------------------------------------------------
    m("labels_int32", COSTS, "LABEL_DTYPE = torch.int16", "LABEL_DTYPE = torch.int32",
      (ITEMS,), "labels priced (and held) at 4 bytes, not the documented int16"),
    m("head_without_bias", COSTS,
      "    return FLOAT_BYTES * (in_features * num_classes + num_classes)\n",
      "    return FLOAT_BYTES * in_features * num_classes\n", (ITEMS,), "heads' biases not counted"),
    m("bn_set_affine_only", COSTS,
      "    return 4 * FLOAT_BYTES * s.bn_channels + dtype_bytes(torch.int64) * s.bn_layers\n",
      "    return 2 * FLOAT_BYTES * s.bn_channels + dtype_bytes(torch.int64) * s.bn_layers\n",
      (ITEMS,), "per-task BN sets (CLR, MIND) without running statistics"),
    m("der_head_one_backbone_wide", COSTS,
      '                 ("head", "params", head_bytes(T * s.out_dim, st.num_classes))]\n'
      '    return items + exemplar_items(st, n, c)\n\n\ndef _memo(',
      '                 ("head", "params", head_bytes(s.out_dim, st.num_classes))]\n'
      '    return items + exemplar_items(st, n, c)\n\n\ndef _memo(',
      (ITEMS,), "DER's head priced over one backbone's features, not T"),
    m("logits_per_task", COSTS, "                          n * stream.num_classes * FLOAT_BYTES))",
      "                          n * stream.num_tasks * FLOAT_BYTES))", (ITEMS,),
      "DER++ logits priced per task, not per class"),
    m("class_means_per_task", COSTS,
      '[("class_means", "class_stats", st.num_classes * s.out_dim * FLOAT_BYTES)]',
      '[("class_means", "class_stats", st.num_tasks * s.out_dim * FLOAT_BYTES)]', (ITEMS,),
      "iCaRL's class means counted per task"),
    m("memo_specialized_t_minus_1", COSTS,
      '("specialized.feature_params", "params", T * FLOAT_BYTES * s.specialized_params)',
      '("specialized.feature_params", "params", (T - 1) * FLOAT_BYTES * s.specialized_params)',
      (ITEMS, f"{P}::test_memo_fair_anchors_cifar100_by_hand"),
      "memo convention: MEMO's specialized blocks counted T-1 times"),
    m("mind_memo_bn_with_stats", COSTS, "                                      T * 2 * FLOAT_BYTES * s.bn_channels)]",
      "                                      T * 4 * FLOAT_BYTES * s.bn_channels)]", (ITEMS,),
      "memo convention: MIND's per-task BN counted with running statistics"),
    m("bmc_features_strict_only", COSTS,
      '    return net_items(st, s, c) + exemplar_items(st, n, c) + [\n'
      '        ("memory.features", "exemplar_aux", n * s.out_dim * FLOAT_BYTES)]\n',
      '    return net_items(st, s, c) + exemplar_items(st, n, c) + _strict(c, [\n'
      '        ("memory.features", "exemplar_aux", n * s.out_dim * FLOAT_BYTES)])\n', (ITEMS,),
      "BMC's distillation targets dropped under the memo convention"),
    m("tasks_assume_equal_first", COSTS, "    return 1 + rest // inc\n",
      "    return num_classes // inc\n",
      (f"{O}::test_streams_count_their_tasks_from_the_protocol",),
      "tasks counted as if the first task had inc classes"),
    # --- backbones' counts ---------------------------------------------------------------------
    m("conv_weights_with_bias", "clbudget/nets/backbones.py",
      "        conv_weights=sum(m.weight.numel() for m in net.modules() if isinstance(m, nn.Conv2d)))",
      "        conv_weights=sum(sum(p.numel() for p in m.parameters()) for m in net.modules() "
      "if isinstance(m, nn.Conv2d)))", (STATS,), "MIND's masks cover conv biases too"),
    m("conv2_without_bias", "clbudget/nets/backbones.py",
      "    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1),\n",
      "    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),\n",
      (STATS,), "conv2's convs lose their biases (MEMO's conv2 has them)"),
    # --- allocator -----------------------------------------------------------------------------
    m("reserve_cifar100", ALLOC, "            reserve = config.reserve_per_class * stream.num_classes\n",
      "            reserve = config.reserve_per_class * 100\n", (BY_HAND, LADDER),
      "the ladder's reserve sized for CIFAR-100's 100 classes"),
    m("ladder_smallest_first", ALLOC, "        for bb in reversed(ladder):  # largest rung",
      "        for bb in ladder:  # largest rung", (BY_HAND, LADDER),
      "the ladder takes the smallest rung that keeps the reserve"),
    m("fallback_largest_first", ALLOC, "        for bb in ladder:            # else the smallest",
      "        for bb in reversed(ladder):  # else the smallest", (BY_HAND, LADDER),
      "when no rung keeps the reserve, the largest one meeting the minimum is taken"),
    m("minimum_strict_inequality", ALLOC,
      "        if n < config.min_per_class * stream.num_classes:\n            return None\n",
      "        if n <= config.min_per_class * stream.num_classes:\n            return None\n",
      (RAW, BY_HAND, FIT), "a budget of exactly the minimum refused"),
    m("minimum_named_at_reserve", ALLOC,
      "    n = config.min_per_class * stream.num_classes if model.uses_exemplars else 0\n",
      "    n = config.reserve_per_class * stream.num_classes if model.uses_exemplars else 0\n",
      (RAW, BY_HAND, FIT), "the refusal names the reserve's cost as the minimum"),
    m("quota_per_task", ALLOC, "                      n // stream.num_classes, _cost(",
      "                      n // stream.num_tasks, _cost(", (RAW, FIT),
      "per-class quota divided by tasks"),
    m("fair_base_hardcoded", ALLOC,
      "        points = [(cost_model(\"der\").cost(stream, ladder[-1], config.base_exemplars,\n",
      "        points = [(cost_model(\"der\").cost(stream, ladder[-1], 2000,\n",
      (ANCHORS, f"{P}::test_memo_fair_gives_every_method_ders_cost"),
      "memo-fair ignores base_exemplars"),
    m("auc_point0_smallest_rung", ALLOC,
      '    single = cost_model("replay").cost(stream, default_backbone(stream.image_shape), base,\n',
      '    single = cost_model("replay").cost(stream, ladder[0], base,\n',
      (f"{P}::test_memo_auc_anchors_cifar100_by_hand", f"{P}::test_memo_auc_points_and_rungs"),
      "memo-auc's first point priced at conv2, not one default backbone"),
    # --- storage: codecs and stored dtypes -----------------------------------------------------
    m("offsets_int32", STORAGE, "OFFSET_BYTES, LENGTH_BYTES = 8, 4",
      "OFFSET_BYTES, LENGTH_BYTES = 4, 4", (BOOK, CODEC),
      "slot offsets priced at 4 bytes while held as int64"),
    m("slot_arrays_in_memo", STORAGE, '            if ledger.convention == "strict":\n',
      "            if True:\n", (BOOK, CODEC),
      "memo convention charged for offsets and lengths"),
    m("buffer_only_sized_images", STORAGE,
      "        buffer = max(0, budget_bytes - fixed - n * slot) if n else 0\n",
      "        buffer = int(n * per_image)\n", (BOOK, CODEC),
      "the byte buffer keeps only n x the estimate: the budget's rest left unspent"),
    m("stored_buffers_not_repriced", STORAGE,
      '             f"{prefix}.buffers": k * (low[1] - fp32[1]),\n',
      '             f"{prefix}.buffers": 0,\n', (STORED,),
      "fp16 BN statistics of a frozen part priced at fp32"),
    m("memo_all_blocks_stored", STORAGE,
      '                "memo": ("specialized", "specialized:1", lambda T: T - 1),\n',
      '                "memo": ("specialized", "specialized:1", lambda T: T),\n', (STORED,),
      "MEMO's live specialized block priced at the stored dtype"),
    m("counter_cast_to_fp16", "clbudget/nets/stored.py",
      "            if t is None or not t.is_floating_point():\n",
      "            if t is None or (name == \"int8\" and not t.is_floating_point()):\n",
      (f"{O}::test_stored_bn_and_linear_bytes_by_hand",),
      "BN's int64 num_batches_tracked stored at 2 bytes"),
    m("down_without_channels", "clbudget/streams/codecs.py",
      "        return c * h * w if self.name == \"raw\" else c * self.param * self.param\n",
      "        return c * h * w if self.name == \"raw\" else self.param * self.param\n",
      (f"{O}::test_default_bytes_per_image_by_hand",),
      "down:S sized without its channels"),
    m("default_bytes_unscaled", "clbudget/streams/codecs.py",
      "    return DEFAULT_BYTES_32x32x3[key] * (c * h * w) / (3 * 32 * 32)\n",
      "    return float(DEFAULT_BYTES_32x32x3[key])\n",
      (f"{O}::test_default_bytes_per_image_by_hand",),
      "CIFAR's jpeg/png sizes used for any image shape"),
    m("offset_dtype_int32", "clbudget/methods/codecs.py", "OFFSET_DTYPE = torch.int64",
      "OFFSET_DTYPE = torch.int32",
      (f"{O}::test_codec_memory_holds_its_capacity_in_slot_arrays_by_hand",),
      "the memory holds int32 offsets while the allocator prices int64"),
]
