"""Mutants of what the GPU session relies on: the precision switch of a run
(experiment/run.py) and bench.gpu_check's own mechanisms (bench/gpu_check.py,
bench/throughput.py).  None of their tests needs a GPU or the CIFAR-10 files."""
from bench.mutant_catalog import Mutant

T = "tests/test_gpu_check.py"

MUTANTS = [
    Mutant("gpu.precision_ignored", "clbudget/experiment/run.py",
           'amp=recipe.precision == "bf16")',
           "amp=False)",
           (f"{T}::test_precision_sets_the_loops_autocast",),
           "RunSpec.precision bf16 trains in fp32 anyway"),
    Mutant("gpu.pil_crop_transposed", "bench/throughput.py",
           "img = img.crop((left, top, left + w, top + h))",
           "img = img.crop((top, left, top + w, left + h))",
           (f"{T}::test_pil_transform_equals_tensor_crop_flip_and_jitters_brightness",),
           "the PyCIL-style loop crops another window than the tensor loop"),
    Mutant("gpu.extrapolation_drops_overhead", "bench/gpu_check.py",
           "train_s = [o + n * e for o, n, e in zip(overhead_s, ref_epochs, epoch_s)]",
           "train_s = [n * e for o, n, e in zip(overhead_s, ref_epochs, epoch_s)]",
           (f"{T}::test_extrapolation_is_overhead_plus_reference_epochs_times_epoch_time",),
           "the per-task overhead (herding, class means) is left out of the extrapolation"),
    Mutant("gpu.lost_cuda_context_unnoticed", "bench/gpu_check.py",
           '    return isinstance(e, RuntimeError) and ("CUDA error" in text',
           '    return False and ("CUDA error" in text',
           (f"{T}::test_a_lost_cuda_context_is_told_apart_from_an_ordinary_error",),
           "a CUDA error that poisons the process does not relaunch the smoke for the rest"),
]
