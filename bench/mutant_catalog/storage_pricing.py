"""Mutants of the pricing of stored precision and of codec buffers (budget/storage.py).

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only storage.pricing
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import (
    ORACLE, BLIND1, BLIND2, BLIND3, BLIND1_TESTS, BLIND2_TESTS, BLIND3_TESTS)

AREA = "storage.pricing"
STORAGE = "clbudget/budget/storage.py"
T_ALLOCATOR_PROPERTIES = "tests/test_allocator_properties.py"
T_ORACLE_BYTES = "tests/test_oracle_bytes.py"
CODEC_ALLOCATION_BOOKKEEPING = (f"{T_ORACLE_BYTES}::test_codec_allocation_bookkeeping_by_hand",
                                f"{T_ALLOCATOR_PROPERTIES}::test_codec_allocation_never_over_and_the_next_slot_would_not_fit")

MUTANTS = [
    # --- clbudget/budget/storage.py --------------------------------------------------------------
    Mutant("storage.pricing.offsets_int32", STORAGE,
           "OFFSET_BYTES, LENGTH_BYTES = 8, 4",
           "OFFSET_BYTES, LENGTH_BYTES = 4, 4",
           CODEC_ALLOCATION_BOOKKEEPING,
           "slot offsets priced at 4 bytes while held as int64", origin=ORACLE),
    Mutant("storage.pricing.slot_arrays_in_memo", STORAGE,
           '            if ledger.convention == "strict":\n',
           "            if True:\n",
           CODEC_ALLOCATION_BOOKKEEPING,
           "memo convention charged for offsets and lengths", origin=ORACLE),
    Mutant("storage.pricing.buffer_only_sized_images", STORAGE,
           "        buffer = max(0, budget_bytes - fixed - n * slot) if n else 0\n",
           "        buffer = int(n * per_image)\n",
           CODEC_ALLOCATION_BOOKKEEPING,
           "the byte buffer keeps only n x the estimate: the budget's rest left unspent",
           origin=ORACLE),
    Mutant("storage.pricing.stored_buffers_not_repriced", STORAGE,
           '             f"{prefix}.buffers": k * (low[1] - fp32[1]),\n',
           '             f"{prefix}.buffers": 0,\n',
           (f"{T_ORACLE_BYTES}::test_stored_ledgers_equal_the_hand_count",),
           "fp16 BN statistics of a frozen part priced at fp32", origin=ORACLE),
    Mutant("storage.pricing.memo_all_blocks_stored", STORAGE,
           '                "memo": ("specialized", "specialized:1", lambda T: T - 1),\n',
           '                "memo": ("specialized", "specialized:1", lambda T: T),\n',
           (f"{T_ORACLE_BYTES}::test_stored_ledgers_equal_the_hand_count",),
           "MEMO's live specialized block priced at the stored dtype", origin=ORACLE),
    Mutant("storage.pricing.der_newest_backbone_stored", STORAGE,
           '"der": ("backbones", "backbone", lambda T: T - 1),',
           '"der": ("backbones", "backbone", lambda T: T),',
           BLIND1_TESTS["budget"],
           "DER's store dtype reprices all T backbones, the training one included (fp16/bf16/int8)",
           origin=BLIND1),
    Mutant("storage.pricing.memo_conv_stored_buffers", STORAGE,
           'f"{prefix}.feature_params": k * (low[0] - fp32[0]),',
           'f"{prefix}.feature_params": k * (sum(low) - sum(fp32)),',
           BLIND1_TESTS["budget"],
           "memo-convention repricing also subtracts the BN buffers' savings (fp16/bf16, memo only)",
           origin=BLIND1),
    Mutant("storage.pricing.codec_buffer_exact", STORAGE,
           "buffer = max(0, budget_bytes - fixed - n * slot)",
           "buffer = max(0, int(n * per_image))",
           BLIND1_TESTS["budget"],
           "the codec byte buffer is n x the expected size; the leftover slack goes unspent",
           origin=BLIND1),
    Mutant("storage.pricing.store_dtype_teachers_only", STORAGE,
           'and (store_dtype == "fp32" or method in STORED_PARTS))',
           'and (store_dtype == "fp32" or method in TEACHER_METHODS))',
           BLIND1_TESTS["budget"],
           "sweeps expand store dtypes only for LwF/iCaRL/WA: DER, MEMO, CLR lose their cells",
           origin=BLIND1),
    Mutant("storage.pricing.stored_der_all_backbones", STORAGE,
           '"der": ("backbones", "backbone", lambda T: T - 1),',
           '"der": ("backbones", "backbone", lambda T: T),',
           BLIND2_TESTS["budget"],
           "DER's newest (training, fp32) backbone repriced at the store dtype too: DER with store dtype != fp32",
           origin=BLIND2),
    Mutant("storage.pricing.stored_memo_convention_buffers", STORAGE,
           'f"{prefix}.feature_params": k * (low[0] - fp32[0]),',
           'f"{prefix}.feature_params": k * (sum(low) - sum(fp32)),',
           BLIND2_TESTS["budget"],
           "memo convention's feature_params repriced with the buffers' savings too: memo convention, "
           "fp16/bf16 (buffers shrink) only", origin=BLIND2),
    Mutant("storage.pricing.codec_buffer_sized_to_estimate", STORAGE,
           "buffer = max(0, budget_bytes - fixed - n * slot) if n else 0",
           "buffer = int(n * per_image) if n else 0",
           BLIND2_TESTS["budget"],
           "codec byte buffer sized to n x the estimate instead of every byte the model and slots "
           "leave: the slack of the floor division is lost (codec allocations)",
           origin=BLIND2),
    Mutant("storage.pricing.teacher_buffers_not_repriced", STORAGE,
           "prefix: k * (sum(low) - sum(fp32))}",
           "prefix: k * (low[0] - fp32[0])}",
           BLIND3_TESTS["storage"],
           "the old_model item keeps fp32 BN buffer bytes under fp16/bf16: LwF/iCaRL/WA "
           "teacher over-priced by half its float buffers", origin=BLIND3),
    Mutant("storage.pricing.codec_count_ignores_slot_arrays", STORAGE,
           "n = max(0, int((budget_bytes - fixed) // (slot + per_image)))",
           "n = max(0, int((budget_bytes - fixed) // per_image))",
           BLIND3_TESTS["storage"],
           "codec exemplar count ignores each slot's label/offset/length bytes: more slots, "
           "a smaller byte buffer than the allocation should give", origin=BLIND3),
    Mutant("storage.pricing.buffers_fp32_priced_at_4_bytes", STORAGE,
           "sum(b.numel() * b.element_size() for b in module.buffers()))",
           "sum(b.numel() * 4 for b in module.buffers()))",
           BLIND3_TESTS["storage"],
           "the fp32 side of a frozen part prices int64 num_batches_tracked at 4 bytes: "
           "delta off by 4 bytes per BN layer and copy (store dtype != fp32)",
           origin=BLIND3),
    Mutant("storage.pricing.memo2_priced_as_memo", STORAGE,
           '"memo2": ("specialized", "specialized:2", lambda T: T - 1),',
           '"memo2": ("specialized", "specialized:1", lambda T: T - 1),',
           BLIND3_TESTS["storage"],
           "MEMO-2's frozen part priced as MEMO's one-stage block: under-saved at store dtype "
           "!= fp32", origin=BLIND3),
    Mutant("storage.pricing.clr_backbone_copies_t", STORAGE,
           '"clr": ("backbone", "backbone", lambda T: 1)}',
           '"clr": ("backbone", "backbone", lambda T: T)}',
           BLIND3_TESTS["storage"],
           "CLR's one frozen backbone repriced T times (as if per task): its saving counted "
           "T-fold, T > 1", origin=BLIND3),
    Mutant("storage.pricing.codec_slots_in_memo_convention", STORAGE,
           'if ledger.convention == "strict":',
           "if True:",
           BLIND3_TESTS["storage"],
           "codec offsets/lengths also charged under the memo convention (which counts pixels "
           "only)", origin=BLIND3),
    Mutant("storage.pricing.codec_minimum_total_not_per_class", STORAGE,
           "need = config.min_per_class * stream.num_classes",
           "need = config.min_per_class",
           BLIND3_TESTS["storage"],
           "a codec budget is refused only below min_per_class exemplars in all, not per "
           "class: budgets too small for one exemplar per class accepted",
           origin=BLIND3),
]
