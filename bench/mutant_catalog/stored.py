"""Mutants of frozen networks held at a lower dtype (nets/stored.py, budget/storage.py and their
wiring in methods/expanding.py, clr.py, finetune.py, base.py, state.py)."""
from bench.mutant_catalog import Mutant

T = "tests/test_stored.py"
HELD = f"{T}::test_frozen_parts_are_held_lower_and_the_ledger_is_the_allocation"

MUTANTS = [
    Mutant("stored.int8_per_tensor_scale", "clbudget/nets/stored.py",
           "        amax = w.abs().flatten(1).amax(1).clamp_min(torch.finfo(torch.float32).tiny)\n",
           "        amax = w.abs().amax().clamp_min(torch.finfo(torch.float32).tiny)"
           ".expand(w.shape[0])\n",
           (f"{T}::test_int8_scales_are_per_output_channel",),
           "int8 with one scale per tensor: quiet channels lose their precision"),
    Mutant("stored.new_branch_copied_after_rounding", "clbudget/methods/expanding.py",
           "        new = copy.deepcopy(self.branches[-1]).train()\n"
           "        for p in new.parameters():\n            p.requires_grad_(True)\n"
           "        for branch in self.branches:\n            freeze(branch, store_dtype)\n",
           "        for branch in self.branches:\n            freeze(branch, store_dtype)\n"
           "        from clbudget.nets.stored import unstored_copy\n"
           "        new = unstored_copy(self.branches[-1]).train()\n"
           "        for p in new.parameters():\n            p.requires_grad_(True)\n",
           (f"{T}::test_the_new_branch_is_copied_at_fp32_and_old_branches_never_change",),
           "the new branch starts from the stored (rounded) values of the last one"),
    Mutant("stored.old_branches_kept_fp32", "clbudget/methods/expanding.py",
           "            self.net.grow(self.old, self.ctx.allocation.store_dtype)\n",
           "            self.net.grow(self.old)\n",
           (f"{HELD}[der-fp16]", f"{HELD}[memo-int8]"),
           "DER/MEMO keep old branches at fp32 while the allocation priced them lower"),
    Mutant("stored.clr_backbone_kept_fp32", "clbudget/methods/clr.py",
           "        self.store_backbone()        # after pre-training (and its SHA-256); idempotent\n",
           "",
           (f"{HELD}[clr-int8]",),
           "CLR's backbone stays fp32 while the allocation priced it lower"),
    Mutant("stored.clr_task_bn_stored", "clbudget/methods/clr.py",
           "            if is_stored(m):      # the task's own BN: float32 values of the stored "
           "backbone's\n",
           "            if False:\n",
           (f"{HELD}[clr-fp16]",),
           "a task's own BN is a stored copy instead of trainable float32"),
    Mutant("stored.teacher_kept_fp32", "clbudget/methods/finetune.py",
           "        self.old_net = store_as(frozen_copy(self.net), self.ctx.allocation.store_dtype)\n",
           "        self.old_net = frozen_copy(self.net)\n",
           (f"{HELD}[icarl-int8]", f"{HELD}[lwf-bf16]"),
           "the teacher stays fp32 while the allocation priced it lower"),
    Mutant("stored.old_copies_not_priced", "clbudget/budget/storage.py",
           '                "der": ("backbones", "backbone", lambda T: T - 1),\n',
           '                "der": ("backbones", "backbone", lambda T: 0),\n',
           (f"{HELD}[der-fp16]",
            f"{T}::test_stored_dtypes_buy_more_exemplars_and_fit_where_fp32_does_not"),
           "the allocator prices DER's old backbones at fp32"),
    Mutant("stored.rung_and_fit_at_fp32_prices", "clbudget/budget/storage.py",
           '                        policy=policy, reprice=reprice if store_dtype != "fp32" else None)\n',
           "                        policy=policy, reprice=None)\n",
           (f"{T}::test_stored_dtypes_buy_more_exemplars_and_fit_where_fp32_does_not",),
           "the backbone and the fit are decided at fp32 prices: a stored DER that fits is refused"),
    Mutant("stored.memo_convention_counts_4_bytes", "clbudget/methods/base.py",
           "                p.numel() * p.element_size() for m in self.feature_modules()\n",
           "                p.numel() * 4 for m in self.feature_modules()\n",
           (f"{HELD}[der-fp16]",),
           "the memo convention counts stored parameters at 4 bytes"),
    Mutant("stored.checkpoint_loses_parametrization", "clbudget/methods/state.py",
           '        if data.get("parametrized"):\n            _reparametrize(obj, data["parametrized"])\n',
           "",
           (f"{T}::test_resume_with_stored_networks_equals_uninterrupted",),
           "a resumed stored network comes back without its parametrized tensors"),
]
