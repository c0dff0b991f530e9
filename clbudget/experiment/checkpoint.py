"""Per-task checkpoints: a run killed at any point resumes from its last finished task.

After every finished task a run saves, atomically (write a temporary file, fsync, rename):
- the method's state, `Method.state_dict()`: every module, tensor, memory, counter and list
  of them the method holds, encoded by `encode` below;
- the run's random number generators: its torch.Generator (batches, augmentation, herding,
  reservoir) and torch's global RNG (weight init of modules created later), CUDA's too;
- the results of the finished tasks: accuracy rows, losses, wall times.
A rerun of the same spec loads it with `torch.load(..., weights_only=True)` (tensors and plain
containers, never code), refuses it if its spec differs from the command's (naming the
fields), restores it and goes on with the next task.  Same seed, same result as a run that
was never interrupted (tests/test_reliability.py compares every method's accuracy matrices
and losses).  The caller deletes a run's checkpoint once its row is stored, unless kept.

Layout: ROOT/<run_key>/checkpoint.pt.  ROOT defaults to `checkpoints/` beside the results
store when there is one, else $CLBUDGET_CACHE/checkpoints (~/.cache/clbudget/checkpoints).
A ROOT that itself holds checkpoint.pt (a run's own folder) is used as that run's file.

The state codec (`encode`, `decode`) is in methods/state.py: `Method.state_dict()` uses it.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch

from clbudget.methods.state import (CLASS_PREFIXES, TAG, CheckpointError,  # noqa: F401
                                    decode, encode)   # re-exported: the codec moved (issue 15)

FORMAT = 1
FILE = "checkpoint.pt"


class CheckpointMismatch(CheckpointError):
    """The checkpoint's spec differs from the command's; the message names the fields."""


# ------------------------------------------------------------------------------ the files

def default_root(store_path=None) -> Path:
    """checkpoints/ beside the results store, else $CLBUDGET_CACHE/checkpoints."""
    if store_path is not None:
        return Path(store_path).parent / "checkpoints"
    cache = os.environ.get("CLBUDGET_CACHE")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache" / "clbudget"
    return base / "checkpoints"


def spec_fields(spec) -> dict:
    """The spec as the checkpoint stores it (JSON values: tuples become lists)."""
    return json.loads(json.dumps(spec.to_dict(), sort_keys=True, default=str))


class Checkpoints:
    """The checkpoints of runs under one folder, one subfolder per run key."""

    def __init__(self, root, keep: bool = False):
        self.root = Path(root).expanduser()
        self.keep = keep
        self._warned = False

    def path(self, run_key: str) -> Path:
        direct = self.root / FILE
        return direct if direct.is_file() else self.root / run_key / FILE

    def save(self, spec, payload: dict) -> Path | None:
        """Write the checkpoint atomically; a failed write (disk full) warns, the run goes on."""
        path = self.path(spec.key)
        tmp = path.with_name(f"{FILE}.tmp-{os.getpid()}")
        payload = {"format": FORMAT, "run_key": spec.key,
                   "spec": json.dumps(spec_fields(spec), sort_keys=True),
                   "saved_at": time.time(), "torch": str(torch.__version__), **payload}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                torch.save(payload, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            if not self._warned:
                print(f"clbudget: warning: cannot write checkpoint {path} ({e}); the run goes "
                      f"on without checkpoints", file=sys.stderr)
                self._warned = True
            return None
        return path

    def load(self, spec, device=None) -> dict | None:
        """The run's checkpoint, or None; refused (CheckpointError) if unusable or another run's."""
        path = self.path(spec.key)
        if not path.is_file():
            return None
        try:
            data = torch.load(path, map_location=device, weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file gets the same advice
            lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()] or [""]
            first = next((ln for ln in lines if "error:" in ln), lines[0])[:200]
            raise CheckpointError(f"checkpoint {path} cannot be read ({type(e).__name__}: "
                                  f"{first}); delete it to start this run over") from None
        if not isinstance(data, dict) or not isinstance(data.get("format"), int):
            raise CheckpointError(f"{path} is not a clbudget checkpoint; delete it or give "
                                  f"another --checkpoint-dir")
        if data["format"] > FORMAT:
            raise CheckpointError(f"checkpoint {path} has format {data['format']}, newer than "
                                  f"this clbudget's {FORMAT}; upgrade clbudget or delete it")
        saved, given = json.loads(data["spec"]), spec_fields(spec)
        diff = [k for k in sorted(set(saved) | set(given)) if saved.get(k) != given.get(k)]
        if diff:
            shown = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, command {given.get(k)!r}"
                              for k in diff)
            raise CheckpointMismatch(
                f"checkpoint {path} is of another run ({len(diff)} field"
                f"{'s' if len(diff) > 1 else ''} differ: {shown}); give another "
                f"--checkpoint-dir or delete it")
        return data

    def discard(self, *run_keys: str) -> None:
        """Delete these runs' checkpoints (once their row is stored), unless kept."""
        if self.keep:
            return
        for key in run_keys:
            if not key:
                continue
            shutil.rmtree(self.root / key, ignore_errors=True)
            if self.root.name == key:   # the root is the run's own folder: its file only
                (self.root / FILE).unlink(missing_ok=True)
                try:
                    self.root.rmdir()
                except OSError:
                    pass


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------ RNG state

def rng_state(generator: torch.Generator, device) -> dict:
    cuda = (torch.cuda.get_rng_state_all()
            if torch.device(device).type == "cuda" and torch.cuda.is_available() else [])
    return {"generator": generator.get_state(), "torch": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict, generator: torch.Generator) -> None:
    generator.set_state(state["generator"].cpu())
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
