"""The results store: an embedded SQLite database, one row per run.

WAL mode, one transaction per row: a row is either wholly there or absent, even
if the process is killed mid-write.  Runs are keyed by their spec (`run_key`); a
finished row is never duplicated or overwritten, a failed one is replaced when
the run later succeeds.

Several processes may write one store at once (two sweeps of the same cells): SQLite
serialises the transactions, the primary key keeps one row per run, and `claim(run_key)`
(an advisory lock file per run, released by the kernel even when its holder is killed)
lets a sweep skip a cell another process is training.  A failed write (disk full) rolls
back, so the store keeps every earlier row and no partial one; it raises StoreWriteError.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path

SCHEMA_VERSION = 1
APP = "clbudget"


class StoreError(ValueError):
    """The file is not a clbudget store, or is from a newer clbudget."""


class StoreWriteError(RuntimeError):
    """A row could not be written (disk full, locked too long); the store is unchanged."""


class ResultStore:
    def __init__(self, path):
        self.path = Path(path)
        # a folder (existing, or a new path without a file suffix) holds results.sqlite
        if self.path.is_dir() or (not self.path.exists() and not self.path.suffix):
            self.path = self.path / "results.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._init_schema()
        except sqlite3.OperationalError as e:   # cannot open / create / lock: not a format issue
            raise StoreError(f"cannot open the results store {self.path}: {e}") from None
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path} is not a clbudget results store ({e}); "
                             f"give a new file name or a folder") from None

    def _init_schema(self):
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
                self.db.execute("CREATE TABLE IF NOT EXISTS runs (run_key TEXT PRIMARY KEY, "
                                "status TEXT NOT NULL, method TEXT, created REAL, row TEXT NOT NULL)")
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('app', ?), ('schema', ?)",
                                (APP, str(SCHEMA_VERSION)))
            return
        meta = dict(self.db.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
        if meta.get("app") != APP:
            raise StoreError(f"{self.path} is an SQLite file but not a clbudget results store")
        if int(meta.get("schema", 0)) > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema {meta['schema']}, newer than this clbudget's "
                             f"{SCHEMA_VERSION}; upgrade clbudget to read it")

    def add(self, row: dict) -> bool:
        """Store a run's row; False if a finished row with this key is already there.

        One transaction: on any error (e.g. "database or disk is full") it is rolled back,
        the store keeps its earlier rows and no part of this one, and StoreWriteError says so.
        """
        if getattr(self, "command", None) and "command" not in row:   # provenance (CLI)
            row = {**row, "command": self.command}
        blob = json.dumps(row, default=_jsonable)
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                cur = self.db.execute(
                    "INSERT INTO runs VALUES (?, ?, ?, ?, ?) ON CONFLICT(run_key) DO UPDATE SET "
                    "status=excluded.status, created=excluded.created, row=excluded.row "
                    "WHERE runs.status != 'finished'",
                    (row["run_key"], row.get("status", "finished"), row.get("method"),
                     time.time(), blob))
                changed = cur.rowcount > 0
                self.db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    if self.db.in_transaction:
                        self.db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as e:
            raise StoreWriteError(
                f"cannot write run {row['run_key']} to {self.path}: {e}; the store keeps its "
                f"earlier rows and none of this one; fix the cause (free disk space) and rerun "
                f"the same command") from None
        return changed

    @contextlib.contextmanager
    def claim(self, run_key: str):
        """Yield True while this process holds run_key's lock, False if another process does.

        A lock file per run beside the store, locked with flock (LOCK_NB): the kernel releases
        it when its holder exits or is killed, so a dead sweep never blocks a cell.  Where
        flock is missing (Windows) every claim succeeds: rows are still never duplicated."""
        try:
            import fcntl
        except ImportError:
            yield True
            return
        folder = self.path.with_name(self.path.name + ".claims")
        lock = folder / f"{run_key}.lock"
        while True:
            folder.mkdir(exist_ok=True)
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:   # another process removed the empty folder just now
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                yield False
                return
            except OSError:   # a file system without locks (some NFS): no claims
                os.close(fd)
                yield True
                return
            try:   # the holder before us may have unlinked the file: lock the current one
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
            yield True
        finally:
            with contextlib.suppress(OSError):
                os.unlink(lock)
            os.close(fd)
            with contextlib.suppress(OSError):
                folder.rmdir()   # only when no other claim is held

    def status(self, run_key: str) -> str | None:
        r = self.db.execute("SELECT status FROM runs WHERE run_key=?", (run_key,)).fetchone()
        return r[0] if r else None

    def rows(self, status: str | None = None) -> list[dict]:
        q = "SELECT row FROM runs" + (" WHERE status=?" if status else "") + " ORDER BY created"
        return [json.loads(r[0]) for r in self.db.execute(q, (status,) if status else ())]

    def dataframe(self, status: str | None = "finished"):
        """One row per run: the columns of `clbudget.load_results` (`flat_record`) and the
        short names this method had first (dataset, budget, seed, total_bytes)."""
        import pandas as pd
        records = []
        for row in self.rows(status):
            rec = flat_record(row)
            records.append({**rec, "status": row.get("status"), "dataset": rec.get("spec_dataset"),
                            "budget": rec.get("spec_budget"), "seed": rec.get("spec_seed"),
                            "total_bytes": rec["ledger_strict_bytes"]})
        return pd.DataFrame.from_records(records)

    def close(self):
        self.db.close()


def flat_record(row: dict) -> dict:
    """One result row as a flat record: the columns `clbudget.load_results` documents
    (clbudget/results.py)."""
    acc = row.get("accuracy") or {}
    taw = acc.get("task_aware") or {}
    alloc = row.get("allocation") or {}
    env = row.get("environment") or {}
    source = row.get("method_source") or {}
    rec = {"run_key": row.get("run_key"), "status": row.get("status", "finished"),
           "method": row.get("method"), "method_import_path": source.get("import_path"),
           "reason": row.get("reason")}
    for key, value in (row.get("spec") or {}).items():
        rec[f"spec_{key}"] = (json.dumps(value, sort_keys=True)
                              if isinstance(value, (dict, list)) else value)
    rec.update({
        "budget_bytes": row.get("budget_bytes"), "budgeted": row.get("budgeted"),
        "backbone": alloc.get("backbone"), "expansion": alloc.get("expansion"),
        "n_exemplars": alloc.get("n_exemplars"), "num_tasks": row.get("num_tasks"),
        "ledger_strict_bytes": (row.get("ledger") or {}).get("total_bytes"),
        "ledger_memo_bytes": (row.get("ledger_memo") or {}).get("total_bytes"),
        "communication_bytes": (row.get("cost_figures") or {}).get("communication_bytes"),
        "last": acc.get("last"), "average_incremental": acc.get("average_incremental"),
        "forgetting": acc.get("forgetting"), "bwt": acc.get("bwt"),
        "last_task_aware": taw.get("last"),
        "train_flops": row.get("train_flops"), "train_images": row.get("train_images"),
        "inference_flops_per_image": row.get("inference_flops_per_image"),
        "phase_epochs": json.dumps(row.get("phase_epochs"), sort_keys=True)
        if row.get("phase_epochs") else None,
        "wall_s": row.get("wall_s"), "peak_memory_bytes": row.get("peak_memory_bytes"),
        "git_revision": env.get("git_revision"), "device": env.get("device"),
        "device_name": env.get("device_name"), "torch": env.get("torch"),
        "date_utc": env.get("date_utc"), "command": row.get("command")})
    return rec


def _jsonable(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
