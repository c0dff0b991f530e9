"""Mutants of the pieces several baselines share: the SimpleLinear head rows, herding and the
reservoir (methods/memory.py), the teacher, the CIFAR conv init, PyCIL's brightness augmentation
and normalisation.

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only shared
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import MECHANISM

AREA = "shared"
CLASSIFIER = "clbudget/nets/classifier.py"
MEMORY = "clbudget/methods/memory.py"
FINETUNE = "clbudget/methods/finetune.py"
BACKBONES = "clbudget/nets/backbones.py"
LOOP = "clbudget/train/loop.py"
RECIPES = "clbudget/train/recipes.py"
RECIPE_BOOK = "clbudget/train/recipe_book.py"
T_DISTILLATION_METHODS = "tests/test_distillation_methods.py"
T_PARITY = "tests/test_parity.py"
HEAD_TESTS = (f"{T_PARITY}::test_pycil_heads_initialise_arriving_rows_as_simple_linear[finetune]",
              f"{T_PARITY}::test_pycil_heads_initialise_arriving_rows_as_simple_linear[replay]",
              f"{T_PARITY}::test_pycil_heads_initialise_arriving_rows_as_simple_linear[joint]",
              f"{T_PARITY}::test_pycil_heads_initialise_arriving_rows_as_simple_linear[icarl]",
              f"{T_PARITY}::test_pycil_heads_initialise_arriving_rows_as_simple_linear[wa]",
              f"{T_PARITY}::test_pycil_heads_initialise_arriving_rows_as_simple_linear[lwf]")

MUTANTS = [
    # --- clbudget/nets/classifier.py -------------------------------------------------------------
    Mutant("shared.head_rows_reinit_old", CLASSIFIER,
           "simple_linear_init_(self.head.weight[lo:hi], self.head.bias[lo:hi])",
           "simple_linear_init_(self.head.weight[:hi], self.head.bias[:hi])",
           HEAD_TESTS,
           "old classes' rows re-initialised when a task begins", origin=MECHANISM),
    Mutant("shared.head_init_torch_default", CLASSIFIER,
           'nn.init.kaiming_uniform_(cpu, nonlinearity="linear")',
           "nn.init.kaiming_uniform_(cpu, a=5 ** 0.5)",
           HEAD_TESTS,
           "nn.Linear's default bound 1/sqrt(D) instead of SimpleLinear's sqrt(3/D)",
           origin=MECHANISM),
    Mutant("shared.head_bias_random", CLASSIFIER,
           "        nn.init.zeros_(bias)\n",
           "        nn.init.uniform_(bias, -0.1, 0.1)\n",
           HEAD_TESTS,
           "SimpleLinear's zero bias replaced by a random one", origin=MECHANISM),
    # --- clbudget/methods/memory.py --------------------------------------------------------------
    Mutant("shared.herding_to_nearest_mean", MEMORY,
           "cand = (mu - (running + features) / k).norm(dim=1)",
           "cand = (mu - features).norm(dim=1)",
           (f"{T_PARITY}::test_herding_order_matches_the_reference_formula",),
           "herding replaced by nearest-to-mean ranking", origin=MECHANISM),
    Mutant("shared.herding_to_random", MEMORY,
           "pick = pos[herding(f, quota)]",
           "pick = pos[torch.randperm(len(pos), generator=generator)[:quota].to(pos.device)]",
           (f"{T_PARITY}::test_class_balanced_memory_herds_new_classes_and_keeps_old_prefixes",),
           "new classes selected at random in the class-balanced memory", origin=MECHANISM),
    Mutant("shared.old_classes_keep_suffix", MEMORY,
           "pos = (old_y == c).nonzero().flatten()[:quota]",
           "pos = (old_y == c).nonzero().flatten()[-quota:]",
           (f"{T_PARITY}::test_class_balanced_memory_herds_new_classes_and_keeps_old_prefixes",),
           "old classes keep the end of their herding order, not its prefix", origin=MECHANISM),
    Mutant("shared.reservoir_to_fifo", MEMORY,
           "slot = r if r < self.capacity else -1",
           "slot = self.offered % self.capacity",
           (f"{T_PARITY}::test_reservoir_keeps_every_offered_example_with_equal_probability",),
           "reservoir sampling replaced by a FIFO ring", origin=MECHANISM),
    # --- clbudget/methods/finetune.py ------------------------------------------------------------
    Mutant("shared.teacher_not_frozen", FINETUNE,
           "self.old_net = store_as(frozen_copy(self.net),",
           "self.old_net = (lambda net, dtype: net)(self.net,",
           (f"{T_DISTILLATION_METHODS}::test_distilling_methods_keep_a_frozen_copy_of_the_last_network",),
           "the teacher is the live network, not a frozen copy", origin=MECHANISM),
    # --- clbudget/nets/backbones.py --------------------------------------------------------------
    Mutant("shared.cifar_conv_init_default", BACKBONES,
           'return pycil_cifar_init(Backbone(f"resnet{depth}", generalized, specialized, 64))',
           'return Backbone(f"resnet{depth}", generalized, specialized, 64)',
           (f"{T_PARITY}::test_cifar_resnet_init_is_pycils_and_conv2_keeps_pytorchs",),
           "CIFAR ResNets keep PyTorch's conv init instead of PyCIL's", origin=MECHANISM),
    # --- clbudget/train/loop.py ------------------------------------------------------------------
    Mutant("shared.brightness_off", LOOP,
           "        if draws.factors is not None:\n",
           "        if False:\n",
           (f"{T_PARITY}::test_brightness_jitter_equals_pil_image_enhance",),
           "ColorJitter brightness never applied", origin=MECHANISM),
    Mutant("shared.brightness_no_clamp", LOOP,
           "return scaled.clamp_(0, 255).floor_().to(torch.uint8)",
           "return scaled.floor_().to(torch.uint8)",
           (f"{T_PARITY}::test_brightness_jitter_equals_pil_image_enhance",),
           "brightened pixels wrap around instead of saturating at 255", origin=MECHANISM),
    Mutant("shared.brightness_range", LOOP,
           "lo, hi = max(0.0, 1.0 - self.brightness), 1.0 + self.brightness",
           "lo, hi = 1.0, 1.0 + self.brightness",
           (f"{T_PARITY}::test_brightness_jitter_equals_pil_image_enhance",),
           "brightness factors only above 1", origin=MECHANISM),
    Mutant("shared.normalisation_first_images", LOOP,
           "for b in range(0, len(x), 4096):",
           "for b in range(0, min(len(x), 4096), 4096):",
           (f"{T_PARITY}::test_normalisation_uses_the_references_constants_or_the_whole_training_set",),
           "mean/std of the first images only, not the whole training set", origin=MECHANISM),
    # --- clbudget/train/recipes.py ---------------------------------------------------------------
    Mutant("shared.normalisation_from_data", RECIPES,
           "        if constants is not None and len(constants[0]) == channels:\n",
           "        if False:\n",
           (f"{T_PARITY}::test_normalisation_uses_the_references_constants_or_the_whole_training_set",),
           "the reference's published constants ignored", origin=MECHANISM),
    # --- clbudget/train/recipe_book.py -----------------------------------------------------------
    Mutant("shared.pycil_recipe_no_brightness", RECIPE_BOOK,
           'augmentation="crop-flip-brightness63", normalization="pycil"',
           'augmentation="crop-flip", normalization="pycil"',
           (f"{T_PARITY}::test_baselines_train_with_their_reference_recipes",),
           "PyCIL recipes without ColorJitter brightness", origin=MECHANISM),
]
