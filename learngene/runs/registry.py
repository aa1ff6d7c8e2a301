"""The run registry: one SQLite database (``runs.db``) in the runs root, shared by every process that looks at runs.

SQLite is the embedded default because it needs no server and gives us real cross-process transactions: the app, a
second browser session and the command line may all schedule, reconcile or stop runs at once. Every state change goes
through :meth:`Registry.transaction`, which opens ``BEGIN IMMEDIATE`` so that the write lock is taken *before* the
rows are read; two processes can therefore never both see the same run as ``queued`` and both launch it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from learngene.errors import LearngeneError

DB_NAME = "runs.db"

QUEUED, RUNNING, SUCCEEDED, FAILED, STOPPED = "queued", "running", "succeeded", "failed", "stopped"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, STOPPED)
FINAL_STATES = (SUCCEEDED, FAILED, STOPPED)

# Columns of the ``runs`` table, in order. Timestamps are float seconds since the epoch (sortable, timezone-free).
COLUMNS = (
    "run_id",  # sortable unique id, e.g. 20261127-053012-ab12cd
    "name",  # human label (defaults to the run id)
    "state",  # one of STATES
    "created",
    "queued_at",  # when it last entered the queue (a resume re-queues): the queue's order
    "started",  # last launch time (a resume launches again)
    "ended",
    "pid",  # local process (worker, torchrun or submitit controller); None for a remote SLURM job
    "pgid",  # process group the stop signal goes to
    "proc_start",  # the pid's start time as the kernel reports it: guards against pid reuse
    "job_id",  # SLURM / submitit job id
    "launcher",  # local | torchrun | slurm
    "launcher_options",  # JSON object of the launcher's keyword arguments
    "host",  # machine the process runs on (pids only mean something there)
    "gpus",  # CUDA_VISIBLE_DEVICES given to the run ("0,1"), None when not assigned
    "exit_code",
    "error_tail",  # failure message plus the last lines of stderr
    "run_dir",
    "config_json",  # the TrainConfig as JSON
    "parent_run_id",  # the run this one was cloned from
    "resume",  # 1 when the next launch continues from checkpoints/last.pt
    "stop_requested",  # time a stop was asked for, so a run killed while stopping reads as stopped
    "attempts",  # number of launches
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    name TEXT,
    state TEXT NOT NULL CHECK (state IN ({", ".join(repr(s) for s in STATES)})),
    created REAL NOT NULL,
    queued_at REAL,
    started REAL,
    ended REAL,
    pid INTEGER,
    pgid INTEGER,
    proc_start TEXT,
    job_id TEXT,
    launcher TEXT NOT NULL DEFAULT 'local',
    launcher_options TEXT NOT NULL DEFAULT '{{}}',
    host TEXT,
    gpus TEXT,
    exit_code INTEGER,
    error_tail TEXT,
    run_dir TEXT NOT NULL,
    config_json TEXT NOT NULL,
    parent_run_id TEXT,
    resume INTEGER NOT NULL DEFAULT 0,
    stop_requested REAL,
    attempts INTEGER NOT NULL DEFAULT 0
);
"""
_INDEX = "CREATE INDEX IF NOT EXISTS runs_state ON runs (state, queued_at)"


def new_run_id(now: float | None = None) -> str:
    """A run id that sorts by creation time and is unique across processes: ``YYYYmmdd-HHMMSS-xxxxxx``."""
    stamp = datetime.fromtimestamp(now if now is not None else time.time(), tz=timezone.utc)
    return f"{stamp:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


class Registry:
    """Thin access layer over ``runs.db``; rows come back as plain dicts keyed by :data:`COLUMNS`.

    A fresh connection is opened per operation: connections must not be shared across threads (Streamlit reruns
    scripts on different threads) and opening one costs well under a millisecond.

    Args:
        root: The runs root directory (created if missing).
        timeout_s: How long a writer waits for another process's lock before giving up.
    """

    def __init__(self, root: str | os.PathLike, timeout_s: float = 30.0) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / DB_NAME
        self.timeout_s = timeout_s
        with self._connect() as conn:
            # WAL lets readers (the app polling every second) proceed while a writer holds the lock.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            self._migrate(conn)
            conn.execute(_INDEX)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        # Databases made by an older version lack newer columns: add them (all are nullable or defaulted).
        have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
        for line in _SCHEMA.splitlines():
            parts = line.strip().rstrip(",").split(None, 1)
            if len(parts) == 2 and parts[0] in COLUMNS and parts[0] not in have and "PRIMARY" not in parts[1]:
                try:
                    conn.execute(
                        f"ALTER TABLE runs ADD COLUMN {parts[0]} {parts[1].replace('NOT NULL ', '')}"
                    )
                except sqlite3.OperationalError as error:
                    if "duplicate column" not in str(error):  # another process migrated it just now
                        raise

    def _connect(self) -> contextlib.closing[sqlite3.Connection]:
        try:
            # isolation_level=None: we issue BEGIN ourselves so that it can be BEGIN IMMEDIATE.
            conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        except sqlite3.Error as error:
            raise LearngeneError(f"cannot open the run registry {self.path}: {error}") from error
        conn.row_factory = sqlite3.Row
        return contextlib.closing(conn)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An exclusive-write transaction: commit on success, roll back on any exception."""
        with self._connect() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                raise LearngeneError(
                    f"the run registry {self.path} is locked by another process ({error}); try again"
                ) from error
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- reads -------------------------------------------------------------------------------------------------

    def get(self, run_id: str, conn: sqlite3.Connection | None = None) -> dict[str, Any] | None:
        """The row of ``run_id``, or None."""
        if conn is not None:
            row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            return dict(row) if row else None
        with self._connect() as own:
            return self.get(run_id, own)

    def all(
        self, states: tuple[str, ...] | None = None, conn: sqlite3.Connection | None = None
    ) -> list[dict]:
        """Rows (optionally only those in ``states``) in queue order: oldest ``queued_at`` first."""
        sql, params = "SELECT * FROM runs", ()
        if states:
            sql += f" WHERE state IN ({', '.join('?' * len(states))})"
            params = tuple(states)
        sql += " ORDER BY COALESCE(queued_at, created), run_id"
        if conn is not None:
            return [dict(row) for row in conn.execute(sql, params).fetchall()]
        with self._connect() as own:
            return self.all(states, own)

    def resolve(self, ref: str) -> str:
        """Turn a run id, a unique id prefix or a unique run name into a run id; LearngeneError otherwise."""
        with self._connect() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (ref,)).fetchone():
                return ref
            hits = [row[0] for row in conn.execute("SELECT run_id FROM runs WHERE name = ?", (ref,))]
            if not hits:
                escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                hits = [
                    row[0]
                    for row in conn.execute(
                        "SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\'", (escaped + "%",)
                    )
                ]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise LearngeneError(f"no run {ref!r} in {self.root} (see `learngene runs list`)")
        raise LearngeneError(
            f"{ref!r} matches {len(hits)} runs ({', '.join(hits[:5])}); give the full run id"
        )

    # -- writes ------------------------------------------------------------------------------------------------

    def insert(self, row: dict[str, Any], conn: sqlite3.Connection | None = None) -> None:
        """Add a run row (missing columns take their defaults)."""
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown registry columns: {sorted(unknown)}")
        names = list(row)
        sql = f"INSERT INTO runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        if conn is not None:
            conn.execute(sql, [row[n] for n in names])
            return
        with self.transaction() as own:
            own.execute(sql, [row[n] for n in names])

    @staticmethod
    def update(
        conn: sqlite3.Connection, run_id: str, where: dict[str, Any] | None = None, **fields: Any
    ) -> bool:
        """Set ``fields`` on ``run_id`` inside ``conn``'s transaction, only if the row still matches ``where``.

        The ``where`` guard makes updates compare-and-set: a reconcile that decided from a stale read (another
        process already finished or relaunched the run) changes nothing. Returns whether a row changed.
        """
        unknown = (set(fields) | set(where or {})) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown registry columns: {sorted(unknown)}")
        sets = ", ".join(f"{name} = ?" for name in fields)
        params: list[Any] = list(fields.values()) + [run_id]
        sql = f"UPDATE runs SET {sets} WHERE run_id = ?"
        for name, value in (where or {}).items():
            if value is None:
                sql += f" AND {name} IS NULL"
            else:
                sql += f" AND {name} = ?"
                params.append(value)
        return conn.execute(sql, params).rowcount > 0


def dumps(value: Any) -> str:
    """JSON for the registry's text columns (stable key order so equal configs compare equal)."""
    return json.dumps(value, sort_keys=True, default=str)
