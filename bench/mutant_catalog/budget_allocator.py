"""Mutants of the allocator (budget/allocator.py): fit, the backbone ladder and its reserve, the
minimum, MEMO's fair and AUC protocols.

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only budget.allocator
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import (
    ORACLE, BLIND1, BLIND2, BLIND3, BLIND1_TESTS, BLIND2_TESTS, BLIND3_TESTS)

AREA = "budget.allocator"
ALLOCATOR = "clbudget/budget/allocator.py"
T_ALLOCATOR_PROPERTIES = "tests/test_allocator_properties.py"
T_ORACLE_BYTES = "tests/test_oracle_bytes.py"
LADDER_HAND_ON = (f"{T_ALLOCATOR_PROPERTIES}::test_the_ladder_by_hand_on_eight_classes",
                  f"{T_ALLOCATOR_PROPERTIES}::test_the_ladder_takes_the_largest_rung_that_keeps_the_reserve")
RAW_ALLOCATION_HAND = (f"{T_ORACLE_BYTES}::test_raw_allocation_by_hand_on_fashion_mnist",
                       f"{T_ALLOCATOR_PROPERTIES}::test_the_ladder_by_hand_on_eight_classes",
                       f"{T_ALLOCATOR_PROPERTIES}::test_fit_is_within_budget_full_and_refuses_only_below_the_minimum")

MUTANTS = [
    # --- clbudget/budget/allocator.py ------------------------------------------------------------
    Mutant("budget.allocator.reserve_cifar100", ALLOCATOR,
           "            reserve = config.reserve_per_class * stream.num_classes\n",
           "            reserve = config.reserve_per_class * 100\n",
           LADDER_HAND_ON,
           "the ladder's reserve sized for CIFAR-100's 100 classes", origin=ORACLE),
    Mutant("budget.allocator.ladder_smallest_first", ALLOCATOR,
           "        for bb in reversed(ladder):  # largest rung",
           "        for bb in ladder:  # largest rung",
           LADDER_HAND_ON,
           "the ladder takes the smallest rung that keeps the reserve", origin=ORACLE),
    Mutant("budget.allocator.fallback_largest_first", ALLOCATOR,
           "        for bb in ladder:            # else the smallest",
           "        for bb in reversed(ladder):  # else the smallest",
           LADDER_HAND_ON,
           "when no rung keeps the reserve, the largest one meeting the minimum is taken",
           origin=ORACLE),
    Mutant("budget.allocator.minimum_strict_inequality", ALLOCATOR,
           "        if n < config.min_per_class * stream.num_classes:\n            return None\n",
           "        if n <= config.min_per_class * stream.num_classes:\n            return None\n",
           RAW_ALLOCATION_HAND,
           "a budget of exactly the minimum refused", origin=ORACLE),
    Mutant("budget.allocator.minimum_named_at_reserve", ALLOCATOR,
           "    n = config.min_per_class * stream.num_classes if model.uses_exemplars else 0\n",
           "    n = config.reserve_per_class * stream.num_classes if model.uses_exemplars else 0\n",
           RAW_ALLOCATION_HAND,
           "the refusal names the reserve's cost as the minimum", origin=ORACLE),
    Mutant("budget.allocator.quota_per_task", ALLOCATOR,
           "                      n // stream.num_classes, _cost(",
           "                      n // stream.num_tasks, _cost(",
           (f"{T_ORACLE_BYTES}::test_raw_allocation_by_hand_on_fashion_mnist",
            f"{T_ALLOCATOR_PROPERTIES}::test_fit_is_within_budget_full_and_refuses_only_below_the_minimum"),
           "per-class quota divided by tasks", origin=ORACLE),
    Mutant("budget.allocator.fair_base_hardcoded", ALLOCATOR,
           "        points = [(cost_model(\"der\").cost(stream, ladder[-1], config.base_exemplars,\n",
           "        points = [(cost_model(\"der\").cost(stream, ladder[-1], 2000,\n",
           (f"{T_ALLOCATOR_PROPERTIES}::test_memo_fair_anchors_cifar100_by_hand",
            f"{T_ALLOCATOR_PROPERTIES}::test_memo_fair_gives_every_method_ders_cost"),
           "memo-fair ignores base_exemplars", origin=ORACLE),
    Mutant("budget.allocator.auc_point0_smallest_rung", ALLOCATOR,
           '    single = cost_model("replay").cost(stream, default_backbone(stream.image_shape), base,\n',
           '    single = cost_model("replay").cost(stream, ladder[0], base,\n',
           (f"{T_ALLOCATOR_PROPERTIES}::test_memo_auc_anchors_cifar100_by_hand",
            f"{T_ALLOCATOR_PROPERTIES}::test_memo_auc_points_and_rungs"),
           "memo-auc's first point priced at conv2, not one default backbone", origin=ORACLE),
    Mutant("budget.allocator.minimum_is_exclusive", ALLOCATOR,
           "if n < config.min_per_class * stream.num_classes:\n            return None",
           "if n <= config.min_per_class * stream.num_classes:\n            return None",
           BLIND1_TESTS["budget"],
           "a budget that buys exactly the minimum exemplars is refused (boundary only)",
           origin=BLIND1),
    # the same slip as budget.allocator.ladder_smallest_first, written again by another round
    Mutant("budget.allocator.ladder_smallest_first_2", ALLOCATOR,
           "for bb in reversed(ladder):  # largest rung that keeps the reserve",
           "for bb in ladder:  # largest rung that keeps the reserve",
           BLIND1_TESTS["budget"],
           "expanding methods climb the ladder from the bottom: smallest rung that keeps the "
           "reserve instead of the largest", origin=BLIND1),
    Mutant("budget.allocator.reserve_is_minimum", ALLOCATOR,
           "reserve = config.reserve_per_class * stream.num_classes",
           "reserve = config.min_per_class * stream.num_classes",
           BLIND1_TESTS["budget"],
           "ladder keeps min_per_class, not reserve_per_class: larger rungs, fewer exemplars",
           origin=BLIND1),
    Mutant("budget.allocator.auc_point0_icarl", ALLOCATOR,
           'single = cost_model("replay")',
           'single = cost_model("icarl")',
           BLIND1_TESTS["budget"],
           "memo-auc point 0 priced as iCaRL (teacher + class means) under strict; memo "
           "convention unchanged", origin=BLIND1),
    Mutant("budget.allocator.memo_fair_always_strict", ALLOCATOR,
           "config.convention).total_bytes, ladder[-1])]",
           '"strict").total_bytes, ladder[-1])]',
           BLIND1_TESTS["budget"],
           "memo-fair's budget is DER's strict cost even under the memo convention",
           origin=BLIND1),
    Mutant("budget.allocator.fill_rounds_exemplars", ALLOCATOR,
           "n = (budget_bytes - fixed) // per",
           "n = round((budget_bytes - fixed) / per)",
           BLIND2_TESTS["budget"],
           "exemplar count rounded to nearest: one exemplar over budget when the remainder is >= half an exemplar",
           origin=BLIND2),
    Mutant("budget.allocator.min_exemplars_not_per_class", ALLOCATOR,
           "if n < config.min_per_class * stream.num_classes:",
           "if n < config.min_per_class:",
           BLIND2_TESTS["budget"],
           "the minimum is min_per_class exemplars in all, not per class: budgets just under the "
           "minimum are accepted (shows only near the minimum)", origin=BLIND2),
    Mutant("budget.allocator.ladder_ignores_reprice", ALLOCATOR,
           "if minimum_with(model, stream, bb, reserve, config, reprice) <= budget_bytes:",
           "if minimum_with(model, stream, bb, reserve, config) <= budget_bytes:",
           BLIND2_TESTS["budget"],
           "ladder rung chosen at fp32 prices even under a lower store dtype: DER/MEMO without a "
           "backbone and --store-dtype fp16/bf16/int8 may get a smaller rung than they can afford",
           origin=BLIND2),
    Mutant("budget.allocator.memo_fair_smallest_rung", ALLOCATOR,
           'points = [(cost_model("der").cost(stream, ladder[-1], config.base_exemplars,',
           'points = [(cost_model("der").cost(stream, ladder[0], config.base_exemplars,',
           BLIND2_TESTS["budget"],
           "memo-fair budget = DER with T x the smallest rung, not the full backbone: memo-fair only",
           origin=BLIND2),
    # the same slip as budget.allocator.ladder_smallest_first, written again by another round
    Mutant("budget.allocator.ladder_smallest_first_3", ALLOCATOR,
           "for bb in reversed(ladder):",
           "for bb in ladder:",
           BLIND3_TESTS["budget"],
           "the ladder takes the smallest rung that keeps the reserve instead of the largest: "
           "expanding methods without a backbone named, whenever two rungs fit",
           origin=BLIND3),
    Mutant("budget.allocator.memo_auc_six_points", ALLOCATOR,
           "for bb in ladder[1:]]",
           "for bb in ladder]",
           BLIND3_TESTS["budget"],
           "memo-auc also adds DER's cost at the smallest rung: six budget points instead of "
           "five", origin=BLIND3),
    Mutant("budget.allocator.minimum_bytes_one_exemplar_per_class_total", ALLOCATOR,
           "n = config.min_per_class * stream.num_classes if model.uses_exemplars else 0",
           "n = config.min_per_class if model.uses_exemplars else 0",
           BLIND3_TESTS["budget"],
           "minimum_bytes prices min_per_class exemplars in all, not per class: the minimum "
           "named in errors too low for exemplar methods", origin=BLIND3),
]
