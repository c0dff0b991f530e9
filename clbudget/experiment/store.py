"""The results store: an embedded SQLite database, one row per run.

WAL mode, one transaction per row: a row is either wholly there or absent, even
if the process is killed mid-write.  Runs are keyed by their spec (`run_key`); a
finished row is never duplicated or overwritten, a failed one is replaced when
the run later succeeds.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

SCHEMA_VERSION = 1
APP = "clbudget"


class StoreError(ValueError):
    """The file is not a clbudget store, or is from a newer clbudget."""


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
        """Store a run's row; False if a finished row with this key is already there."""
        blob = json.dumps(row, default=_jsonable)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            cur = self.db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?) ON CONFLICT(run_key) DO UPDATE SET "
                "status=excluded.status, created=excluded.created, row=excluded.row "
                "WHERE runs.status != 'finished'",
                (row["run_key"], row.get("status", "finished"), row.get("method"), time.time(),
                 blob))
            return cur.rowcount > 0

    def status(self, run_key: str) -> str | None:
        r = self.db.execute("SELECT status FROM runs WHERE run_key=?", (run_key,)).fetchone()
        return r[0] if r else None

    def rows(self, status: str | None = None) -> list[dict]:
        q = "SELECT row FROM runs" + (" WHERE status=?" if status else "") + " ORDER BY created"
        return [json.loads(r[0]) for r in self.db.execute(q, (status,) if status else ())]

    def dataframe(self, status: str | None = "finished"):
        """One row per run with flat columns (method, budget_bytes, seed, last, ...)."""
        import pandas as pd
        records = []
        for row in self.rows(status):
            acc = row.get("accuracy") or {}
            spec = row.get("spec", {})
            records.append({
                "run_key": row["run_key"], "status": row.get("status"), "method": row.get("method"),
                "dataset": spec.get("dataset"), "budget": spec.get("budget"),
                "budget_bytes": row.get("budget_bytes"), "seed": spec.get("seed"),
                "total_bytes": (row.get("ledger") or {}).get("total_bytes"),
                "n_exemplars": (row.get("allocation") or {}).get("n_exemplars"),
                "backbone": (row.get("allocation") or {}).get("backbone"),
                "last": acc.get("last"), "average_incremental": acc.get("average_incremental"),
                "forgetting": acc.get("forgetting"), "wall_s": row.get("wall_s"),
                "reason": row.get("reason")})
        return pd.DataFrame.from_records(records)

    def close(self):
        self.db.close()


def _jsonable(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
