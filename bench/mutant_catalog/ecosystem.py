"""Mutants of the ecosystem around the runs: downloads (streams/download.py), `clbudget
check-method` (conformance.py), external methods' keys, FLOPs (train/flops.py).

The name says what each mutant breaks, its origin field which round wrote it
(bench/mutant_catalog/origins.py tells how each round was written).

    python -m bench.mutants --only ecosystem
"""
from bench.mutant_catalog import Mutant
from bench.mutant_catalog.origins import MECHANISM

AREA = "ecosystem"
DOWNLOAD = "clbudget/streams/download.py"
CONFORMANCE = "clbudget/conformance.py"
RUN = "clbudget/experiment/run.py"
FLOPS = "clbudget/train/flops.py"
T_DOWNLOAD = "tests/test_download.py"
T_EXTERNAL_METHODS = "tests/test_external_methods.py"
T_FLOPS = "tests/test_flops.py"

MUTANTS = [
    # --- clbudget/streams/download.py ------------------------------------------------------------
    Mutant("ecosystem.download_checksum_skipped", DOWNLOAD,
           "        if found != archive.md5:\n",
           "        if False:\n",
           (f"{T_DOWNLOAD}::test_checksum_mismatch_deletes_and_extracts_nothing",),
           "the archive is extracted without checking its MD5", origin=MECHANISM),
    Mutant("ecosystem.download_member_check_removed", DOWNLOAD,
           "    check_members(archive, root)\n",
           "    pass\n",
           (f"{T_DOWNLOAD}::test_member_escaping_the_root_is_refused_before_anything_is_written",),
           "members are extracted without the path/link check", origin=MECHANISM),
    Mutant("ecosystem.download_link_check_removed", DOWNLOAD,
           "                if PurePosixPath(m.linkname).is_absolute() or not _inside(root, link):\n",
           "                if False:\n",
           (f"{T_DOWNLOAD}::test_member_escaping_the_root_is_refused_before_anything_is_written",),
           "symlinks pointing outside the root are extracted", origin=MECHANISM),
    Mutant("ecosystem.download_no_resume", DOWNLOAD,
           '    have = part.stat().st_size if part.is_file() else 0\n',
           '    have = 0\n',
           (f"{T_DOWNLOAD}::test_truncated_download_is_kept_and_resumed_with_a_range_request",),
           "a partial download is fetched again from the start", origin=MECHANISM),
    Mutant("ecosystem.download_truncation_unnoticed", DOWNLOAD,
           "    if expected is not None and got < expected:\n",
           "    if False:\n",
           (f"{T_DOWNLOAD}::test_truncated_download_is_kept_and_resumed_with_a_range_request",),
           "a body shorter than its Content-Length passes as complete", origin=MECHANISM),
    # --- clbudget/conformance.py -----------------------------------------------------------------
    Mutant("ecosystem.check_method_ledger_check_disabled", CONFORMANCE,
           "            if ledger.total_bytes != held:\n",
           "            if False:\n",
           (f"{T_EXTERNAL_METHODS}::test_dishonest_method_fails_the_ledger_check",),
           "check-method no longer compares the ledger with the bytes held", origin=MECHANISM),
    Mutant("ecosystem.check_method_resume_not_compared", CONFORMANCE,
           "    elif _comparable(resumed) == _comparable(first):\n",
           "    elif True:\n",
           (f"{T_EXTERNAL_METHODS}::test_state_outside_the_attributes_fails_the_resume_check",),
           "a resumed run passes whatever its result", origin=MECHANISM),
    # --- clbudget/experiment/run.py --------------------------------------------------------------
    Mutant("ecosystem.external_no_file_hash_in_key", RUN,
           '            d["method_sha256"] = src["sha256"]\n',
           '            pass\n',
           (f"{T_EXTERNAL_METHODS}::test_the_run_key_follows_the_method_file",),
           "a sweep reuses cells of a method whose file changed", origin=MECHANISM),
    Mutant("ecosystem.flops_lost_on_resume", RUN,
           '            tally.restore(done.pop("flops", None))\n',
           '            done.pop("flops", None)\n',
           (f"{T_FLOPS}::test_resumed_run_keeps_the_flops_of_its_finished_tasks",),
           "a resumed run forgets the FLOPs of the tasks before its checkpoint", origin=MECHANISM),
    # --- clbudget/train/flops.py -----------------------------------------------------------------
    Mutant("ecosystem.flops_multiplier_dropped", FLOPS,
           '"flops_per_step": self.first, "flops": self.epochs * per_epoch})',
           '"flops_per_step": self.first, "flops": self.first})',
           (f"{T_FLOPS}::test_run_row_carries_training_and_inference_flops",),
           "training FLOPs count one step instead of every step of every epoch", origin=MECHANISM),
    Mutant("ecosystem.flops_partial_batch_as_full", FLOPS,
           "            per_epoch = self.first * (self.steps - 1) + self.last\n",
           "            per_epoch = self.first * self.steps\n",
           (f"{T_FLOPS}::test_run_row_carries_training_and_inference_flops",),
           "the last, smaller batch is counted as a full one", origin=MECHANISM),
]
