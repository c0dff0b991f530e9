"""Mutants of the GPU path and its benchmarks (bench/throughput.py, bench/gpu_check.py).

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only gpu
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import MECHANISM

AREA = "gpu"
RUN = "clbudget/experiment/run.py"
BENCH_THROUGHPUT = "bench/throughput.py"
BENCH_GPU_CHECK = "bench/gpu_check.py"
T_GPU_CHECK = "tests/test_gpu_check.py"

MUTANTS = [
    # --- clbudget/experiment/run.py --------------------------------------------------------------
    Mutant("gpu.precision_ignored", RUN,
           'amp=recipe.precision == "bf16")',
           "amp=False)",
           (f"{T_GPU_CHECK}::test_precision_sets_the_loops_autocast",),
           "RunSpec.precision bf16 trains in fp32 anyway", origin=MECHANISM),
    # --- bench/throughput.py ---------------------------------------------------------------------
    Mutant("gpu.pil_crop_transposed", BENCH_THROUGHPUT,
           "img = img.crop((left, top, left + w, top + h))",
           "img = img.crop((top, left, top + w, left + h))",
           (f"{T_GPU_CHECK}::test_pil_transform_equals_tensor_crop_flip_and_jitters_brightness",),
           "the PyCIL-style loop crops another window than the tensor loop", origin=MECHANISM),
    # --- bench/gpu_check.py ----------------------------------------------------------------------
    Mutant("gpu.extrapolation_drops_overhead", BENCH_GPU_CHECK,
           "train_s = [o + n * e for o, n, e in zip(overhead_s, ref_epochs, epoch_s)]",
           "train_s = [n * e for o, n, e in zip(overhead_s, ref_epochs, epoch_s)]",
           (f"{T_GPU_CHECK}::test_extrapolation_is_overhead_plus_reference_epochs_times_epoch_time",),
           "the per-task overhead (herding, class means) is left out of the extrapolation",
           origin=MECHANISM),
    Mutant("gpu.lost_cuda_context_unnoticed", BENCH_GPU_CHECK,
           '    return isinstance(e, RuntimeError) and ("CUDA error" in text',
           '    return False and ("CUDA error" in text',
           (f"{T_GPU_CHECK}::test_a_lost_cuda_context_is_told_apart_from_an_ordinary_error",),
           "a CUDA error that poisons the process does not relaunch the smoke for the rest",
           origin=MECHANISM),
]
