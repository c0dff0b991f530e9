"""Mutants of feature streams (issue 25 C): the reader (streams/features.py), exemplars counted
and held at their float dtype (budget/, methods/memory.py), the feature input path
(train/features.py, experiment/run.py), the ResMLP (nets/mlp.py) and `clbudget encode`."""
from bench.mutant_catalog import Mutant

T = "tests/test_features.py"
BAD = f"{T}::test_each_bad_key_shape_or_dtype_is_a_clear_error"
BYTES = f"{T}::test_feature_exemplars_are_counted_at_their_dtype_by_hand"
RUN = f"{T}::test_a_cli_run_on_a_feature_stream_holds_its_ledger"
INPUTS = f"{T}::test_feature_inputs_are_never_augmented_and_standardised_as_recorded"
FORWARD = f"{T}::test_resmlp_forward_is_the_references_and_its_init_xavier"
COUNT = f"{T}::test_resmlp_parameters_counted_by_hand_from_the_layer_shapes"

MUTANTS = [
    # --- the reader ------------------------------------------------------------------------
    Mutant("features.reader_any_class_set", "clbudget/streams/features.py",
           "    if absent:\n        raise DataError(",
           "    if False:\n        raise DataError(", (BAD,),
           "a training split missing a class is accepted (its task would be empty)"),
    Mutant("features.reader_mixed_dtypes", "clbudget/streams/features.py",
           "    if tx.dtype != vx.dtype:\n", "    if False:\n", (BAD,),
           "train and test vectors at different dtypes are accepted"),
    Mutant("features.reader_float64_accepted", "clbudget/streams/base.py",
           "FEATURE_DTYPES = (np.float32, np.float16)\n",
           "FEATURE_DTYPES = (np.float32, np.float16, np.float64)\n", (BAD,),
           "float64 vectors are held at 8 bytes a value where the user chose to store float32"),
    Mutant("features.write_overwrites", "clbudget/streams/features.py",
           "    if path.exists() and not force:\n        raise ValueError(f\"{path} exists",
           "    if False:\n        raise ValueError(f\"{path} exists",
           (f"{T}::test_write_features_refuses_to_overwrite_without_force_and_round_trips",),
           "an existing feature file is overwritten without --force"),
    # --- bytes at the stored dtype -----------------------------------------------------------
    Mutant("features.exemplars_priced_as_uint8", "clbudget/budget/costs.py",
           "              n * image_bytes(stream.image_shape, stream.exemplar_dtype))]",
           "              n * image_bytes(stream.image_shape))]", (BYTES, RUN),
           "a float32 feature exemplar priced at 1 byte a value: the memory holds 4x the ledger"),
    Mutant("features.budget_ex_as_uint8", "clbudget/budget/accountant.py",
           "    if image_shape is not None and dtype != torch.uint8:   # one exemplar's bytes, as uint8\n",
           "    if False:\n", (BYTES, RUN),
           "'2000ex' of a feature stream priced at uint8: a quarter of the bytes of 2000 vectors"),
    Mutant("features.memory_held_as_uint8", "clbudget/methods/base.py",
           "                              dtype=self.ctx.stream.exemplar_dtype)",
           "                              dtype=torch.uint8)", (RUN,),
           "the memory stores feature vectors as uint8 (truncated values, a quarter of the bytes)"),
    Mutant("features.shape_without_dtype", "clbudget/experiment/run.py",
           "    shape = StreamShape(stream.num_tasks, tuple(stream.image_shape), stream.num_classes,\n"
           "                        stream.input_dtype)\n",
           "    shape = StreamShape(stream.num_tasks, tuple(stream.image_shape), stream.num_classes)\n",
           (RUN, INPUTS),
           "the run does not tell the allocator the stream is float vectors"),
    Mutant("features.sweep_range_at_uint8", "clbudget/cli.py",
           "                                          dtype=shape.exemplar_dtype)\n",
           "                                          )\n",
           (f"{T}::test_a_sweep_prices_exemplar_budgets_of_a_feature_stream_at_float32",),
           "a sweep's budget range in exemplars of a feature stream priced at uint8"),
    Mutant("features.conv_methods_on_mlp", "clbudget/experiment/run.py",
           '    if allocation.backbone == "resmlp" and spec.method in CONV_METHODS:\n',
           "    if False:\n", (f"{T}::test_convolution_methods_are_refused_on_the_mlp",),
           "clr / mind run on the MLP (clr crashes, mind holds 0-byte masks)"),
    # --- the input path ----------------------------------------------------------------------
    Mutant("features.no_standardisation", "clbudget/train/features.py",
           "            out = (out - mean) / std\n", "            out = out\n", (INPUTS,),
           "train-set standardisation recorded but not applied"),
    Mutant("features.recipe_records_augmentation", "clbudget/train/features.py",
           "    return replace(recipe, phases=tuple((name, replace(cfg, augment=False))",
           "    return replace(recipe, phases=tuple((name, cfg)", (INPUTS, RUN),
           "the row records augmented phases the feature path never augmented"),
    Mutant("features.image_pipeline_on_vectors", "clbudget/experiment/run.py",
           "    if features:   # vectors: no augmentation, standardised per dimension or not at all\n",
           "    if False:\n", (INPUTS, RUN),
           "feature vectors go through the image pipeline (crop/flip, /255, per-channel stats)"),
    Mutant("features.bmc_image_recipe", "clbudget/methods/bmc.py",
           '    dataset_recipes = {"features": "bmc-features"}', "    dataset_recipes = {}",
           (f"{T}::test_bmc_on_features_trains_with_the_references_expert_recipe",),
           "BMC on features trains its experts with the CNN recipe, not the reference's MLP one"),
    # --- the ResMLP ----------------------------------------------------------------------------
    Mutant("features.mlp_relu_after_projection", "clbudget/nets/mlp.py",
           "nn.Linear(d, HIDDEN), block1,", "nn.Linear(d, HIDDEN), nn.ReLU(), block1,", (FORWARD,),
           "an activation after the input projection, which the reference has not"),
    Mutant("features.mlp_identity_shortcut", "clbudget/nets/mlp.py",
           "        return F.relu(out + self.shortcut(x))\n",
           "        return F.relu(out + self.shortcut(x) * 0)\n", (FORWARD,),
           "the residual blocks lose their projection shortcut"),
    Mutant("features.mlp_no_expansion", "clbudget/nets/mlp.py",
           "EXPANSION = 2     # MLP.py ResMLP: expansion = 2\n",
           "EXPANSION = 1     # MLP.py ResMLP: expansion = 2\n", (COUNT, FORWARD),
           "blocks 128 wide at the output instead of the reference's 256"),
    Mutant("features.mlp_dropout_p", "clbudget/nets/mlp.py",
           "DROPOUT = 0.3     # MLP.py ResMLP: nn.Dropout(p=0.3)\n",
           "DROPOUT = 0.5     # MLP.py ResMLP: nn.Dropout(p=0.3)\n", (FORWARD,),
           "dropout other than the reference's 0.3"),
    Mutant("features.mlp_default_init", "clbudget/nets/mlp.py",
           "            nn.init.xavier_normal_(m.weight)\n", "            pass\n", (FORWARD,),
           "PyTorch's default Linear initialisation instead of the reference's Xavier-normal"),
    Mutant("features.mlp_one_sample_batch_raises", "clbudget/nets/mlp.py",
           "        if self.training and x.shape[0] == 1:\n", "        if False:\n",
           (f"{T}::test_resmlp_trains_on_a_one_sample_batch",),
           "a last batch of one sample crashes BatchNorm1d in training"),
    # --- encode --------------------------------------------------------------------------------
    Mutant("features.encode_unnormalised", "clbudget/experiment/encode.py",
           "        f = encoder((xb.float() / 255 - m) / s).flatten(1)\n",
           "        f = encoder(xb.float() / 255).flatten(1)\n",
           (f"{T}::test_encode_a_tiny_random_backbone_over_glyphs_then_stream_its_file",),
           "the encoder sees images without the normalisation the file records"),
    Mutant("features.encode_overwrites", "clbudget/experiment/encode.py",
           "    if out.exists() and not spec.force:\n        raise ValueError",
           "    if False:\n        raise ValueError",
           (f"{T}::test_encode_a_tiny_random_backbone_over_glyphs_then_stream_its_file",),
           "encode reads the whole data set before refusing to overwrite (or, with the writer's "
           "check gone too, overwrites)"),
]
