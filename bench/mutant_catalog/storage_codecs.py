"""Mutants of exemplar codecs: the codecs themselves (streams/codecs.py), the class-balanced and
reservoir memories that pack codes into a byte buffer (methods/codecs.py), and codecs in runs, keys
and reports.

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only storage.codecs
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import (
    MECHANISM, ORACLE, BLIND1, BLIND2, BLIND3, BLIND1_TESTS, BLIND2_TESTS, BLIND3_TESTS)

AREA = "storage.codecs"
METHODS_CODECS = "clbudget/methods/codecs.py"
BASE = "clbudget/methods/base.py"
STREAMS_CODECS = "clbudget/streams/codecs.py"
STORAGE = "clbudget/budget/storage.py"
RUN = "clbudget/experiment/run.py"
SUMMARY = "clbudget/analysis/summary.py"
BMC = "clbudget/methods/bmc.py"
ANALYSIS_CODECS = "clbudget/analysis/codecs.py"
T_CODECS = "tests/test_codecs.py"
T_CODECS_RESERVOIR = "tests/test_codecs_reservoir.py"
T_ORACLE_BYTES = "tests/test_oracle_bytes.py"

MUTANTS = [
    # --- clbudget/methods/codecs.py --------------------------------------------------------------
    Mutant("storage.codecs.pack_past_the_buffer", METHODS_CODECS,
           "                if used + len(codes[rank]) > budget:\n",
           "                if False:\n",
           (f"{T_CODECS}::test_adversarial_images_never_exceed_the_buffer_and_classes_keep_herding_prefixes",),
           "greedy fill does not stop at the byte buffer", origin=MECHANISM),
    Mutant("storage.codecs.skip_instead_of_stop", METHODS_CODECS,
           "                    open_[j] = False\n                    continue\n",
           "                    continue\n",
           (f"{T_CODECS}::test_greedy_pack_stops_a_class_at_its_first_misfit",),
           "a class skips an exemplar that does not fit and takes later ones (no prefix)",
           origin=MECHANISM),
    Mutant("storage.codecs.reencode_old_classes", METHODS_CODECS,
           "            per_class.append((c, [old_codes[i] for i in pos],\n",
           "            per_class.append((c, self.codec.encode(self.codec.decode([old_codes[i] for i "
           "in pos], self.image_shape, self.codes.device)),\n",
           (f"{T_CODECS}::test_adversarial_images_never_exceed_the_buffer_and_classes_keep_herding_prefixes",),
           "old exemplars decoded and re-encoded every task (generation loss)", origin=MECHANISM),
    Mutant("storage.codecs.offsets_undeclared", METHODS_CODECS,
           '                 ("memory.offsets", "exemplar_aux", self.offsets),\n',
           "",
           (f"{T_CODECS}::test_encoded_ledger_equals_bytes_held_and_the_allocation",),
           "the slot offsets are held but not in the ledger", origin=MECHANISM),
    # the encoded reservoir (DER++ under a codec) and BMC's encoded memory
    Mutant("storage.codecs.reservoir_over_the_buffer", METHODS_CODECS,
           "            while budget - used < need:                       # evict held slots at random\n",
           "            while False:\n",
           (f"{T_CODECS_RESERVOIR}::test_reservoir_never_exceeds_its_bytes_and_each_slot_holds_what_was_offered",
            f"{T_CODECS_RESERVOIR}::test_an_image_that_does_not_fit_evicts_held_slots_uniformly_at_random"),
           "a new code that does not fit evicts nothing: the reservoir writes past its bytes",
           origin=MECHANISM),
    Mutant("storage.codecs.reservoir_evicts_the_first_held", METHODS_CODECS,
           "                j = int(torch.randint(0, len(held), (1,), generator=generator))\n",
           "                j = 0\n",
           (f"{T_CODECS_RESERVOIR}::test_an_image_that_does_not_fit_evicts_held_slots_uniformly_at_random",),
           "evictions for bytes always hit the lowest held slot instead of a uniform draw",
           origin=MECHANISM),
    Mutant("storage.codecs.reservoir_samples_empty_slots", METHODS_CODECS,
           "        if self.n_empty == 0:\n            return super().sample(batch_size, generator)\n",
           "        if True:\n            return super().sample(batch_size, generator)\n",
           (f"{T_CODECS_RESERVOIR}::test_an_image_that_does_not_fit_evicts_held_slots_uniformly_at_random",),
           "replay samples slots emptied by evictions (stale or empty codes)", origin=MECHANISM),
    Mutant("storage.codecs.reservoir_compaction_keeps_old_offsets", METHODS_CODECS,
           "            off[order] = front\n",
           "",
           (f"{T_CODECS_RESERVOIR}::test_reservoir_never_exceeds_its_bytes_and_each_slot_holds_what_was_offered",),
           "compaction moves the codes but not their offsets: slots decode other bytes",
           origin=MECHANISM),
    Mutant("storage.codecs.offset_dtype_int32", METHODS_CODECS,
           "OFFSET_DTYPE = torch.int64",
           "OFFSET_DTYPE = torch.int32",
           (f"{T_ORACLE_BYTES}::test_codec_memory_holds_its_capacity_in_slot_arrays_by_hand",),
           "the memory holds int32 offsets while the allocator prices int64", origin=ORACLE),
    Mutant("storage.codecs.pack_refuses_exact_fit", METHODS_CODECS,
           "if used + len(codes[rank]) > budget:",
           "if used + len(codes[rank]) >= budget:",
           BLIND1_TESTS["storage"],
           "a code that exactly fills the buffer is refused (boundary only)", origin=BLIND1),
    Mutant("storage.codecs.pack_class_keeps_going", METHODS_CODECS,
           "open_[j] = False\n                    continue",
           "continue",
           BLIND1_TESTS["storage"],
           "a class that misses one exemplar keeps packing later, smaller codes: its held set "
           "is no longer a prefix of its herding order (variable-size codecs only)",
           origin=BLIND1),
    Mutant("storage.codecs.decoded_bytes_capacity", METHODS_CODECS,
           "return len(self) * c * h * w",
           "return self.capacity * c * h * w",
           BLIND1_TESTS["storage"],
           "decoded bytes of a class-balanced codec memory counted at capacity, not held "
           "exemplars (differs when not full)", origin=BLIND1),
    Mutant("storage.codecs.reservoir_replaced_not_freed", METHODS_CODECS,
           "used = self.used_bytes - int(ln[slots].sum())",
           "used = self.used_bytes",
           BLIND1_TESTS["storage"],
           "replaced reservoir codes still count as used: extra evictions, used_bytes drifts up",
           origin=BLIND1),
    Mutant("storage.codecs.pack_leaves_last_byte", METHODS_CODECS,
           "if used + len(codes[rank]) > budget:",
           "if used + len(codes[rank]) >= budget:",
           BLIND2_TESTS["storage"],
           "greedy pack refuses a code that exactly fills the buffer: one exemplar fewer, exact fit only",
           origin=BLIND2),
    Mutant("storage.codecs.pack_skips_not_stops", METHODS_CODECS,
           "if not open_[j] or rank >= len(codes) or len(chosen) >= self.capacity:",
           "if rank >= len(codes) or len(chosen) >= self.capacity:",
           BLIND2_TESTS["storage"],
           "a class whose code did not fit keeps taking later (smaller) codes: no longer a prefix of "
           "its herding order (variable-size codecs near the byte limit)",
           origin=BLIND2),
    Mutant("storage.codecs.codec_quota_ceil", METHODS_CODECS,
           "quota = self.capacity // seen_classes",
           "quota = -(-self.capacity // seen_classes)",
           BLIND2_TESTS["storage"],
           "codec memory's per-class quota rounded up: early classes take the slots, later ones are "
           "cut by the capacity (capacity not divisible by the classes seen)",
           origin=BLIND2),
    Mutant("storage.codecs.rebalance_old_classes_unquoted", METHODS_CODECS,
           "pos = (old_y == c).nonzero().flatten()[:quota].tolist()",
           "pos = (old_y == c).nonzero().flatten().tolist()",
           BLIND3_TESTS["storage"],
           "old classes are not trimmed to the new quota before packing: when capacity is not "
           "a multiple of the classes, leftover slots go to old classes' extra exemplars",
           origin=BLIND3),
    Mutant("storage.codecs.pack_skips_instead_of_stopping", METHODS_CODECS,
           "open_[j] = False",
           "pass   # try the class's next exemplar",
           BLIND3_TESTS["storage"],
           "a class whose next code does not fit keeps trying later (smaller) ones: not a "
           "prefix of its herding order, with variable-size codecs near the byte limit",
           origin=BLIND3),
    Mutant("storage.codecs.len_counts_emptied_slots", METHODS_CODECS,
           "return self.count - self.n_empty",
           "return self.count",
           BLIND3_TESTS["storage"],
           "a codec memory's length includes slots emptied for bytes: reservoir near the byte "
           "limit", origin=BLIND3),
    Mutant("storage.codecs.held_slots_include_empty", METHODS_CODECS,
           "return (self.lengths[:self.count] > 0).nonzero().flatten()",
           "return (self.lengths[:self.count] >= 0).nonzero().flatten()",
           BLIND3_TESTS["storage"],
           "held_slots lists emptied slots (length 0, label -1) too: data()/sample once a "
           "slot was evicted", origin=BLIND3),
    # --- clbudget/methods/base.py ----------------------------------------------------------------
    Mutant("storage.codecs.memory_always_raw", BASE,
           '        if a.codec != "raw":   # encoded exemplars (methods/codecs.py)\n',
           "        if False:\n",
           (f"{T_CODECS}::test_encoded_ledger_equals_bytes_held_and_the_allocation",),
           "the run allocates for a codec but keeps raw pixels", origin=MECHANISM),
    # --- clbudget/streams/codecs.py --------------------------------------------------------------
    Mutant("storage.codecs.down_decode_skips_upsampling", STREAMS_CODECS,
           '            up = F.interpolate(small.float(), size=(h, w), mode="bilinear", '
           'align_corners=False)\n',
           '            up = F.interpolate(small.float(), size=(h, w), mode="nearest")\n',
           (f"{T_CODECS}::test_down_upsamples_bilinearly",),
           "down:S replays blocky nearest-neighbour images instead of bilinear", origin=MECHANISM),
    Mutant("storage.codecs.down_without_channels", STREAMS_CODECS,
           "        return c * h * w if self.name == \"raw\" else c * self.param * self.param\n",
           "        return c * h * w if self.name == \"raw\" else self.param * self.param\n",
           (f"{T_ORACLE_BYTES}::test_default_bytes_per_image_by_hand",),
           "down:S sized without its channels", origin=ORACLE),
    Mutant("storage.codecs.default_bytes_unscaled", STREAMS_CODECS,
           "    return DEFAULT_BYTES_32x32x3[key] * (c * h * w) / (3 * 32 * 32)\n",
           "    return float(DEFAULT_BYTES_32x32x3[key])\n",
           (f"{T_ORACLE_BYTES}::test_default_bytes_per_image_by_hand",),
           "CIFAR's jpeg/png sizes used for any image shape", origin=ORACLE),
    Mutant("storage.codecs.down_bytes_one_channel", STREAMS_CODECS,
           "return c * h * w if self.name == \"raw\" else c * self.param * self.param",
           "return c * h * w if self.name == \"raw\" else self.param * self.param",
           BLIND1_TESTS["storage"],
           "down:S priced at S*S bytes, not C*S*S (3-channel streams only)", origin=BLIND1),
    Mutant("storage.codecs.default_bytes_ignore_channels", STREAMS_CODECS,
           "return DEFAULT_BYTES_32x32x3[key] * (c * h * w) / (3 * 32 * 32)",
           "return DEFAULT_BYTES_32x32x3[key] * (h * w) / (32 * 32)",
           BLIND1_TESTS["storage"],
           "default jpeg/png bytes scaled by pixels only: 3x too large for 1-channel streams",
           origin=BLIND1),
    Mutant("storage.codecs.estimate_first_images", STREAMS_CODECS,
           "pick = torch.randperm(len(x), generator=g)[:ESTIMATE_SAMPLE]",
           "pick = torch.arange(len(x))[:ESTIMATE_SAMPLE]",
           BLIND1_TESTS["storage"],
           "the bytes estimate takes the first 256 images, not a seeded sample: differs only "
           "with more than 256 images (and ignores the seed)", origin=BLIND1),
    # the same slip as storage.codecs.down_bytes_one_channel, written again by another round
    Mutant("storage.codecs.down_bytes_one_channel_2", STREAMS_CODECS,
           'return c * h * w if self.name == "raw" else c * self.param * self.param',
           'return c * h * w if self.name == "raw" else self.param * self.param',
           BLIND2_TESTS["storage"],
           "down:S priced at S*S bytes, forgetting the channels: RGB only (grayscale identical)",
           origin=BLIND2),
    Mutant("storage.codecs.default_jpeg_scale_ignores_channels", STREAMS_CODECS,
           "return DEFAULT_BYTES_32x32x3[key] * (c * h * w) / (3 * 32 * 32)",
           "return DEFAULT_BYTES_32x32x3[key] * (h * w) / (32 * 32)",
           BLIND2_TESTS["storage"],
           "default jpeg/png bytes per image scaled by pixels only: grayscale streams priced as RGB",
           origin=BLIND2),
    # the same slip as storage.codecs.estimate_first_images, written again by another round
    Mutant("storage.codecs.estimate_first_images_2", STREAMS_CODECS,
           "pick = torch.randperm(len(x), generator=g)[:ESTIMATE_SAMPLE]",
           "pick = torch.arange(len(x))[:ESTIMATE_SAMPLE]",
           BLIND2_TESTS["storage"],
           "bytes-per-image estimate from the first 256 images, not a seeded random sample: "
           "shows with more than 256 images that differ in compressibility (e.g. sorted by class)",
           origin=BLIND2),
    Mutant("storage.codecs.down_upsample_align_corners", STREAMS_CODECS,
           'mode="bilinear", align_corners=False)',
           'mode="bilinear", align_corners=True)',
           BLIND3_TESTS["storage"],
           "down:S decodes with align_corners=True: different replayed pixels for every S < H",
           origin=BLIND3),
    Mutant("storage.codecs.default_bytes_nearest_without_abs", STREAMS_CODECS,
           "else abs(q - codec.param))",
           "else q - codec.param)",
           BLIND3_TESTS["storage"],
           "the nearest tabulated JPEG quality picked without abs: always the lowest (q25) "
           "for any quality above it", origin=BLIND3),
    # --- clbudget/budget/storage.py --------------------------------------------------------------
    Mutant("storage.codecs.buffer_ignores_slot_arrays", STORAGE,
           "        buffer = max(0, budget_bytes - fixed - n * slot) if n else 0\n",
           "        buffer = max(0, budget_bytes - fixed) if n else 0\n",
           (f"{T_CODECS}::test_codec_and_store_dtype_buy_more_exemplars_at_the_same_bytes",),
           "the byte buffer takes the bytes the labels and slot arrays need: over budget",
           origin=MECHANISM),
    # --- clbudget/experiment/run.py --------------------------------------------------------------
    Mutant("storage.codecs.estimate_from_raw_size", RUN,
           "                                 codec=codec.spec, bytes_per_image=per_image,\n",
           "                                 codec=codec.spec, bytes_per_image=per_image and 256,\n",
           (f"{T_CODECS}::test_encoded_ledger_equals_bytes_held_and_the_allocation",),
           "the count ignores the codec's measured bytes per image", origin=MECHANISM),
    Mutant("storage.codecs.codec_not_in_run_key", RUN,
           "            if d[name] == default:   # keys of runs from before these choices stay "
           "the same\n",
           "            if True:\n",
           (f"{T_CODECS}::test_default_choices_keep_run_keys_and_sweeps_expand_where_they_apply",),
           "two runs differing only in codec share one key (the store would skip one)",
           origin=MECHANISM),
    # --- clbudget/analysis/summary.py ------------------------------------------------------------
    Mutant("storage.codecs.report_merges_codecs", SUMMARY,
           "            + storage + R.evaluation_suffix(r),\n",
           "            + R.evaluation_suffix(r),\n",
           (f"{T_CODECS}::test_report_separates_codecs_and_shows_exemplar_counts",),
           "the report averages a method's codecs into one series", origin=MECHANISM),
    # --- clbudget/methods/bmc.py -----------------------------------------------------------------
    Mutant("storage.codecs.bmc_features_named_logits", BMC,
           '                + self.memory.retained(logits_name="memory.features"))\n',
           "                + self.memory.retained())\n",
           (f"{T_CODECS}::test_encoded_ledger_equals_bytes_held_and_the_allocation",),
           "BMC's expert features leave the ledger under another name than its cost model's",
           origin=MECHANISM),
    # --- clbudget/analysis/codecs.py -------------------------------------------------------------
    Mutant("storage.codecs.report_unpaired_comparison", ANALYSIS_CODECS,
           "            cmp = compare_seeds(seeds[i], seeds[j])\n",
           "            cmp = compare_seeds({k: v for k, v in seeds[i].items() if k}, seeds[j])\n",
           (f"{T_CODECS}::test_storage_choices_are_compared_with_raw_fp32_paired_by_seed",),
           "storage choices compared with raw/fp32 without pairing the seeds", origin=MECHANISM),
]
