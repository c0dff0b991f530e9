"""Mutants of stored precision (nets/stored.py: fp16/bf16/int8 copies) and of the methods that keep
their old networks stored.

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only storage.precision
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import (
    MECHANISM, ORACLE, BLIND1, BLIND2, BLIND3, BLIND1_TESTS, BLIND2_TESTS, BLIND3_TESTS)

AREA = "storage.precision"
STORED = "clbudget/nets/stored.py"
EXPANDING = "clbudget/methods/expanding.py"
CLR = "clbudget/methods/clr.py"
FINETUNE = "clbudget/methods/finetune.py"
STORAGE = "clbudget/budget/storage.py"
BASE = "clbudget/methods/base.py"
STATE = "clbudget/methods/state.py"
T_ORACLE_BYTES = "tests/test_oracle_bytes.py"
T_STORED = "tests/test_stored.py"

MUTANTS = [
    # --- clbudget/nets/stored.py -----------------------------------------------------------------
    Mutant("storage.precision.int8_per_tensor_scale", STORED,
           "        amax = w.abs().flatten(1).amax(1).clamp_min(torch.finfo(torch.float32).tiny)\n",
           "        amax = w.abs().amax().clamp_min(torch.finfo(torch.float32).tiny)"
           ".expand(w.shape[0])\n",
           (f"{T_STORED}::test_int8_scales_are_per_output_channel",),
           "int8 with one scale per tensor: quiet channels lose their precision",
           origin=MECHANISM),
    Mutant("storage.precision.counter_cast_to_fp16", STORED,
           "            if t is None or not t.is_floating_point():\n",
           "            if t is None or (name == \"int8\" and not t.is_floating_point()):\n",
           (f"{T_ORACLE_BYTES}::test_stored_bn_and_linear_bytes_by_hand",),
           "BN's int64 num_batches_tracked stored at 2 bytes", origin=ORACLE),
    Mutant("storage.precision.int8_scale_128", STORED,
           "scale = (amax / INT8_MAX)",
           "scale = (amax / 128)",
           BLIND1_TESTS["storage"],
           "int8 scale max|w|/128: the largest weight of each channel no longer maps to +-127",
           origin=BLIND1),
    Mutant("storage.precision.int8_skips_linear", STORED,
           "if t.dim() >= 2:",
           "if t.dim() > 2:",
           BLIND1_TESTS["storage"],
           "int8 quantizes conv weights only: a teacher's linear head stays float32 (bytes)",
           origin=BLIND1),
    Mutant("storage.precision.unstored_copy_keeps_held_dtype", STORED,
           "value = getattr(m, tname).detach().clone()",
           "value = rules.original0.detach().clone()",
           BLIND1_TESTS["storage"],
           "an unstored copy keeps the held 16-bit tensors instead of their float32 values "
           "(CLR's per-task BN under fp16/bf16)", origin=BLIND1),
    # the same slip as storage.precision.int8_per_tensor_scale, written again by another round
    Mutant("storage.precision.int8_per_tensor_scale_2", STORED,
           "amax = w.abs().flatten(1).amax(1).clamp_min(",
           "amax = w.abs().amax().expand(w.shape[0]).clamp_min(",
           BLIND2_TESTS["storage"],
           "int8 scale per tensor (one max over all channels) though still stored per channel: bytes "
           "unchanged, error grows on channels of small range", origin=BLIND2),
    Mutant("storage.precision.int8_truncates", STORED,
           "codes = torch.round(w / scale)",
           "codes = torch.trunc(w / scale)",
           BLIND2_TESTS["storage"],
           "int8 codes truncated toward 0: error up to s instead of s/2 (values only, bytes unchanged)",
           origin=BLIND2),
    # the same slip as storage.precision.int8_skips_linear, written again by another round
    Mutant("storage.precision.int8_skips_linear_2", STORED,
           "if t.dim() >= 2:",
           "if t.dim() > 2:",
           BLIND2_TESTS["storage"],
           "int8 quantises conv weights only; linear (head) weights stay float32: a classifier "
           "teacher's bytes differ, a backbone without linear layers does not",
           origin=BLIND2),
    Mutant("storage.precision.bf16_keeps_buffers_fp32", STORED,
           'if name != "int8":\n            tensors += list(leaf.named_buffers(recurse=False))',
           'if name == "fp16":\n            tensors += list(leaf.named_buffers(recurse=False))',
           BLIND2_TESTS["storage"],
           "bf16 leaves BN running statistics at float32 (fp16 halves them): bf16 only",
           origin=BLIND2),
    Mutant("storage.precision.logical_numel_counts_scales", STORED,
           'n.endswith("original1")',
           'n.endswith("original0")',
           BLIND2_TESTS["storage"],
           "logical parameter count of an int8 module counts its scales instead of its codes",
           origin=BLIND2),
    Mutant("storage.precision.unstored_upcast_params_as_buffers", STORED,
           'if "original0" in rules._parameters:',
           'if "original1" in rules._parameters:',
           BLIND2_TESTS["storage"],
           "unstored copy of an fp16/bf16 module turns its parameters into buffers (int8 weights "
           "unaffected): params/buffers split of CLR's per-task BN copies",
           origin=BLIND2),
    Mutant("storage.precision.int8_scale_without_abs", STORED,
           "amax = w.abs().flatten(1).amax(1)",
           "amax = w.flatten(1).amax(1)",
           BLIND3_TESTS["storage"],
           "int8 scale from the channel's signed max, not max|w|: a channel whose largest "
           "magnitude is negative saturates (all-negative channels: scale = tiny)",
           origin=BLIND3),
    Mutant("storage.precision.int8_codes_truncated", STORED,
           "codes = torch.round(w / scale).clamp_(",
           "codes = (w / scale).clamp_(",
           BLIND3_TESTS["storage"],
           "int8 codes truncated toward zero by .to(int8) instead of rounded: error up to s, "
           "not s/2, on every non-integral code", origin=BLIND3),
    Mutant("storage.precision.fp16_casts_integer_buffers", STORED,
           "if t is None or not t.is_floating_point():",
           "if t is None:",
           BLIND3_TESTS["storage"],
           "fp16/bf16 also recast BN's int64 num_batches_tracked to 2 bytes: buffers 6 bytes "
           "short per BN layer", origin=BLIND3),
    # --- clbudget/methods/expanding.py -----------------------------------------------------------
    Mutant("storage.precision.new_branch_copied_after_rounding", EXPANDING,
           "        new = copy.deepcopy(self.branches[-1]).train()\n"
           "        for p in new.parameters():\n            p.requires_grad_(True)\n"
           "        for branch in self.branches:\n            freeze(branch, store_dtype)\n",
           "        for branch in self.branches:\n            freeze(branch, store_dtype)\n"
           "        from clbudget.nets.stored import unstored_copy\n"
           "        new = unstored_copy(self.branches[-1]).train()\n"
           "        for p in new.parameters():\n            p.requires_grad_(True)\n",
           (f"{T_STORED}::test_the_new_branch_is_copied_at_fp32_and_old_branches_never_change",),
           "the new branch starts from the stored (rounded) values of the last one",
           origin=MECHANISM),
    Mutant("storage.precision.old_branches_kept_fp32", EXPANDING,
           "            self.net.grow(self.old, self.ctx.allocation.store_dtype)\n",
           "            self.net.grow(self.old)\n",
           (f"{T_STORED}::test_frozen_parts_are_held_lower_and_the_ledger_is_the_allocation[der-fp16]",
            f"{T_STORED}::test_frozen_parts_are_held_lower_and_the_ledger_is_the_allocation[memo-int8]"),
           "DER/MEMO keep old branches at fp32 while the allocation priced them lower",
           origin=MECHANISM),
    # --- clbudget/methods/clr.py -----------------------------------------------------------------
    Mutant("storage.precision.clr_backbone_kept_fp32", CLR,
           "        self.store_backbone()        # after pre-training (and its SHA-256); idempotent\n",
           "",
           (f"{T_STORED}::test_frozen_parts_are_held_lower_and_the_ledger_is_the_allocation[clr-int8]",),
           "CLR's backbone stays fp32 while the allocation priced it lower", origin=MECHANISM),
    Mutant("storage.precision.clr_task_bn_stored", CLR,
           "            if is_stored(m):      # the task's own BN: float32 values of the stored "
           "backbone's\n",
           "            if False:\n",
           (f"{T_STORED}::test_frozen_parts_are_held_lower_and_the_ledger_is_the_allocation[clr-fp16]",),
           "a task's own BN is a stored copy instead of trainable float32", origin=MECHANISM),
    # --- clbudget/methods/finetune.py ------------------------------------------------------------
    Mutant("storage.precision.teacher_kept_fp32", FINETUNE,
           "        self.old_net = store_as(frozen_copy(self.net), self.ctx.allocation.store_dtype)\n",
           "        self.old_net = frozen_copy(self.net)\n",
           (f"{T_STORED}::test_frozen_parts_are_held_lower_and_the_ledger_is_the_allocation[icarl-int8]",
            f"{T_STORED}::test_frozen_parts_are_held_lower_and_the_ledger_is_the_allocation[lwf-bf16]"),
           "the teacher stays fp32 while the allocation priced it lower", origin=MECHANISM),
    # --- clbudget/budget/storage.py --------------------------------------------------------------
    Mutant("storage.precision.old_copies_not_priced", STORAGE,
           '                "der": ("backbones", "backbone", lambda T: T - 1),\n',
           '                "der": ("backbones", "backbone", lambda T: 0),\n',
           (f"{T_STORED}::test_frozen_parts_are_held_lower_and_the_ledger_is_the_allocation[der-fp16]",
            f"{T_STORED}::test_stored_dtypes_buy_more_exemplars_and_fit_where_fp32_does_not"),
           "the allocator prices DER's old backbones at fp32", origin=MECHANISM),
    Mutant("storage.precision.rung_and_fit_at_fp32_prices", STORAGE,
           '                        policy=policy, reprice=reprice if store_dtype != "fp32" else None)\n',
           "                        policy=policy, reprice=None)\n",
           (f"{T_STORED}::test_stored_dtypes_buy_more_exemplars_and_fit_where_fp32_does_not",),
           "the backbone and the fit are decided at fp32 prices: a stored DER that fits is refused",
           origin=MECHANISM),
    # --- clbudget/methods/base.py ----------------------------------------------------------------
    Mutant("storage.precision.memo_convention_counts_4_bytes", BASE,
           "                p.numel() * p.element_size() for m in self.feature_modules()\n",
           "                p.numel() * 4 for m in self.feature_modules()\n",
           (f"{T_STORED}::test_frozen_parts_are_held_lower_and_the_ledger_is_the_allocation[der-fp16]",),
           "the memo convention counts stored parameters at 4 bytes", origin=MECHANISM),
    # --- clbudget/methods/state.py ---------------------------------------------------------------
    Mutant("storage.precision.checkpoint_loses_parametrization", STATE,
           '        if data.get("parametrized"):\n            _reparametrize(obj, data["parametrized"])\n',
           "",
           (f"{T_STORED}::test_resume_with_stored_networks_equals_uninterrupted",),
           "a resumed stored network comes back without its parametrized tensors",
           origin=MECHANISM),
]
