"""Mutants of the byte units and the accountant (budget/accountant.py: parsing '7.63MiB', '2000ex',
printing, dtype sizes, model equivalents) and of the parameter counts it reads off the backbones
(nets/backbones.py).

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only budget.units
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import (
    ORACLE, BLIND1, BLIND2, BLIND3, BLIND1_TESTS, BLIND2_TESTS, BLIND3_TESTS)

AREA = "budget.units"
ACCOUNTANT = "clbudget/budget/accountant.py"
BACKBONES = "clbudget/nets/backbones.py"
T_ORACLE_BYTES = "tests/test_oracle_bytes.py"

MUTANTS = [
    # --- clbudget/budget/accountant.py -----------------------------------------------------------
    Mutant("budget.units.kib_is_1000", ACCOUNTANT,
           '"kib": 2**10',
           '"kib": 10**3',
           (f"{T_ORACLE_BYTES}::test_every_unit_parses_to_its_documented_value",),
           "KiB parsed as kB", origin=ORACLE),
    Mutant("budget.units.mb_is_mebibyte", ACCOUNTANT,
           '"mb": 10**6',
           '"mb": 2**20',
           (f"{T_ORACLE_BYTES}::test_every_unit_parses_to_its_documented_value",),
           "MB parsed as MiB", origin=ORACLE),
    Mutant("budget.units.units_round_half_up", ACCOUNTANT,
           "        return int((_decimal(m.group(1)) * unit).to_integral_value(ROUND_FLOOR))\n",
           "        return int((_decimal(m.group(1)) * unit).to_integral_value())\n",
           (f"{T_ORACLE_BYTES}::test_every_unit_parses_to_its_documented_value",),
           "a unit's fraction of a byte rounded to nearest, not down", origin=ORACLE),
    Mutant("budget.units.lowercase_b_refused", ACCOUNTANT,
           r'"\s*([kKmMgG]i?[bB]|[bB])?"',
           r'"\s*([kKmMgG]i?B|[bB])?"',
           (f"{T_ORACLE_BYTES}::test_every_unit_parses_to_its_documented_value",),
           "'3Mb', '2kb', '2kib' refused", origin=ORACLE),
    Mutant("budget.units.ex_is_cifar_sized", ACCOUNTANT,
           "        return int((n * image_bytes(image_shape)).to_integral_value(ROUND_FLOOR))\n",
           "        return int((n * 3072).to_integral_value(ROUND_FLOOR))\n",
           (f"{T_ORACLE_BYTES}::test_exemplar_units_use_the_streams_image_shape",),
           "Nex priced at CIFAR's 3,072 B whatever the stream's images", origin=ORACLE),
    Mutant("budget.units.zero_budget_accepted", ACCOUNTANT,
           "    if value <= 0:\n",
           "    if value < 0:\n",
           (f"{T_ORACLE_BYTES}::test_refusals_name_what_was_wrong",),
           "a budget of 0 bytes (or one rounding down to 0) accepted", origin=ORACLE),
    Mutant("budget.units.mib_is_decimal", ACCOUNTANT,
           '"mib": 2**20',
           '"mib": 10**6',
           BLIND1_TESTS["budget"],
           "MiB parsed as 10^6 bytes: every '...MiB' budget 4.9% too small", origin=BLIND1),
    Mutant("budget.units.logits_at_pixel_dtype", ACCOUNTANT,
           "per += logits_dim * dtype_bytes(logit_dtype)",
           "per += logits_dim * dtype_bytes(dtype)",
           BLIND1_TESTS["budget"],
           "exemplar_bytes prices kept logits at the pixel dtype (1 B for uint8) instead of "
           "logit_dtype; only when logits_dim > 0", origin=BLIND1),
    Mutant("budget.units.mask_bits_floor", ACCOUNTANT,
           "return math.ceil(n_weights * bits / 8)",
           "return n_weights * bits // 8",
           BLIND1_TESTS["budget"],
           "bit-packed mask bytes rounded down; only when n_weights * bits is not a multiple of 8",
           origin=BLIND1),
    Mutant("budget.units.logit_bytes_always_float32", ACCOUNTANT,
           "per += logits_dim * dtype_bytes(logit_dtype)",
           "per += logits_dim * 4",
           BLIND2_TESTS["budget"],
           "exemplar_bytes prices stored logits at 4 bytes whatever logit_dtype: only fp16/bf16 logits differ",
           origin=BLIND2),
    Mutant("budget.units.mask_bits_floor_log2", ACCOUNTANT,
           "bits = max(1, math.ceil(math.log2(max(n_tasks, 2))))",
           "bits = max(1, int(math.log2(max(n_tasks, 2))))",
           BLIND2_TESTS["budget"],
           "packed mask bits per weight floor(log2 T) not ceil: too few bits when T is not a power of 2 (T=3,5,6,10)",
           origin=BLIND2),
    Mutant("budget.units.parse_rounds_half_even", ACCOUNTANT,
           "return int((_decimal(m.group(1)) * unit).to_integral_value(ROUND_FLOOR))",
           "return int((_decimal(m.group(1)) * unit).to_integral_value())",
           BLIND2_TESTS["budget"],
           "unit budgets rounded to nearest instead of down: '7.63MiB' gives 8000635 B not 8000634 (fractional results only)",
           origin=BLIND2),
    Mutant("budget.units.parse_ex_ignores_feature_dtype", ACCOUNTANT,
           "image_shape = (image_bytes(image_shape, dtype),)",
           "image_shape = (image_bytes(image_shape),)",
           BLIND2_TESTS["budget"],
           "'2000ex' on a float32/float16 feature stream priced at 1 byte per value: only non-uint8 streams",
           origin=BLIND2),
    Mutant("budget.units.format_exact_unit_one_below", ACCOUNTANT,
           "if abs(n_bytes) >= size:",
           "if abs(n_bytes) > size:",
           BLIND3_TESTS["budget"],
           "exactly 1 MiB (1 GiB, 1 KiB) printed one unit down ('1024.00 KiB'): only at the "
           "exact unit sizes", origin=BLIND3),
    Mutant("budget.units.exemplars_to_model_truncates", ACCOUNTANT,
           "return round(n_exemplars * image_bytes(image_shape))",
           "return int(n_exemplars * image_bytes(image_shape))",
           BLIND3_TESTS["budget"],
           "a fractional exemplar count converts to bytes truncated, not rounded: when the "
           "fractional byte part is >= 0.5", origin=BLIND3),
    Mutant("budget.units.model_to_exemplars_floored", ACCOUNTANT,
           "return model_bytes / image_bytes(image_shape)",
           "return model_bytes // image_bytes(image_shape)",
           BLIND3_TESTS["budget"],
           "model bytes converted to a whole number of exemplars (floor division) instead of "
           "the exact ratio: whenever the model is not a multiple of one image's bytes",
           origin=BLIND3),
    Mutant("budget.units.module_bytes_float_buffers_only", ACCOUNTANT,
           "tensors_bytes(module.buffers()))",
           "tensors_bytes(b for b in module.buffers() if b.is_floating_point()))",
           BLIND3_TESTS["budget"],
           "a module's buffer bytes skip BN's int64 num_batches_tracked: 8 bytes short per BN "
           "layer in every held ledger", origin=BLIND3),
    # --- clbudget/nets/backbones.py --------------------------------------------------------------
    Mutant("budget.units.conv_weights_with_bias", BACKBONES,
           "        conv_weights=sum(m.weight.numel() for m in net.modules() if isinstance(m, nn.Conv2d)))",
           "        conv_weights=sum(sum(p.numel() for p in m.parameters()) for m in net.modules() "
           "if isinstance(m, nn.Conv2d)))",
           (f"{T_ORACLE_BYTES}::test_backbone_stats_match_the_layer_list_count",),
           "MIND's masks cover conv biases too", origin=ORACLE),
    Mutant("budget.units.conv2_without_bias", BACKBONES,
           "    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1),\n",
           "    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),\n",
           (f"{T_ORACLE_BYTES}::test_backbone_stats_match_the_layer_list_count",),
           "conv2's convs lose their biases (MEMO's conv2 has them)", origin=ORACLE),
]
