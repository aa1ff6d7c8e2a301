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
ACTIVE_STATES = (QUEUED, RUNNING)  # a run in one of these still needs the scheduler

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

# Bumped whenever the schema changes; PRAGMA user_version holds it, so an older learngene refuses a newer file.
SCHEMA_VERSION = 2
_SETTINGS_SCHEMA = "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT)"
# Settings kept per runs root (not per process), so the app, the command line and the scheduler agree.
SETTINGS = (
    "slots",  # runs allowed at once on this machine; unset: one per GPU, else 1
)
_SQLITE_MAGIC = b"SQLite format 3\x00"


def rebuild_hint(path: Path) -> str:
    """The fix for a damaged registry at ``path``, as a command to paste."""
    import shlex

    return (f"rebuild the index from the run directories with "
            f"`learngene runs rebuild-registry --runs-dir {shlex.quote(str(path.parent))}`")  # fmt: skip


def apply_schema(conn: sqlite3.Connection) -> None:
    """Create missing tables, columns and indexes, then stamp :data:`SCHEMA_VERSION` (inside a transaction)."""
    conn.execute(_SCHEMA)
    conn.execute(_SETTINGS_SCHEMA)
    # Databases made by an older version lack newer columns: add them (all are nullable or defaulted).
    have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    for line in _SCHEMA.splitlines():
        parts = line.strip().rstrip(",").split(None, 1)
        if len(parts) == 2 and parts[0] in COLUMNS and parts[0] not in have and "PRIMARY" not in parts[1]:
            conn.execute(f"ALTER TABLE runs ADD COLUMN {parts[0]} {parts[1].replace('NOT NULL ', '')}")
    conn.execute(_INDEX)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def create_database(path: Path) -> None:
    """Create an empty registry at ``path`` atomically: built beside it, then linked into place.

    A database that SQLite creates in place is 0 bytes for a moment; building it elsewhere means a 0-byte
    ``runs.db`` is never ours and can be reported as damage. A process that loses the race keeps the winner's.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            # WAL lets readers (the app polling every second) proceed while a writer holds the lock.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            apply_schema(conn)
            conn.execute("COMMIT")
        finally:
            conn.close()
        try:
            os.link(tmp, path)  # fails if another process created it meanwhile: keep theirs
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: a rename, which could only lose a just-made twin
            if not path.exists():
                os.replace(tmp, path)
    except (OSError, sqlite3.Error) as error:
        raise LearngeneError(
            f"cannot create the run registry {path}: {getattr(error, 'strerror', None) or error}; "
            "choose a writable --runs-dir"
        ) from None
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            with contextlib.suppress(OSError):
                leftover.unlink()


def check_database(path: Path) -> None:
    """Refuse a damaged ``runs.db`` with one line and the fix: empty, not SQLite, or failing SQLite's check."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(_SQLITE_MAGIC))
    except OSError as error:
        raise LearngeneError(f"cannot read the run registry {path}: {error.strerror or error}") from None
    if not head:
        raise LearngeneError(f"the run registry {path} is empty (0 bytes), so no run can be found; {rebuild_hint(path)}")
    if head != _SQLITE_MAGIC:
        raise LearngeneError(f"the run registry {path} is not an SQLite database (damaged?); {rebuild_hint(path)}")
    try:
        conn = sqlite3.connect(path, timeout=30.0)
        try:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.Error as error:
        raise database_error(path, error) from None
    if verdict != "ok":
        raise LearngeneError(f"the run registry {path} is damaged ({verdict}); {rebuild_hint(path)}")
    if "runs" not in tables:
        raise LearngeneError(f"the run registry {path} has no runs table; {rebuild_hint(path)}")


def database_error(path: Path, error: sqlite3.Error) -> LearngeneError:
    """One line for an SQLite failure: a lock to wait for, a folder to fix, or a damaged file to rebuild."""
    text = str(error)
    if "locked" in text or "busy" in text:
        return LearngeneError(f"the run registry {path} is locked by another process ({text}); try again")
    if "unable to open" in text or "readonly" in text or "read-only" in text:
        return LearngeneError(f"cannot open the run registry {path} ({text}); check that the folder is writable")
    return LearngeneError(f"the run registry {path} is damaged ({text}); {rebuild_hint(path)}")



def new_run_id(now: float | None = None) -> str:
    """A run id that sorts by creation time and is unique across processes: ``YYYYmmdd-HHMMSS-xxxxxx``."""
    stamp = datetime.fromtimestamp(now if now is not None else time.time(), tz=timezone.utc)
    return f"{stamp:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


class Registry:
    """Thin access layer over ``runs.db``; rows come back as plain dicts keyed by :data:`COLUMNS`.

    A fresh connection is opened per operation: connections must not be shared across threads (Streamlit reruns
    scripts on different threads) and opening one costs well under a millisecond.

    Opening checks the file first (:func:`check_database`): an empty, truncated or foreign ``runs.db`` is reported
    as one :class:`LearngeneError` naming ``learngene runs rebuild-registry`` instead of silently showing no runs,
    and every later SQLite failure becomes one line too.

    Args:
        root: The runs root directory (created if missing).
        timeout_s: How long a writer waits for another process's lock before giving up.
    """

    def __init__(self, root: str | os.PathLike, timeout_s: float = 30.0) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise LearngeneError(
                f"cannot create the runs root {self.root}: {error.strerror or error}; choose a writable --runs-dir"
            ) from None
        self.path = self.root / DB_NAME
        self.timeout_s = timeout_s
        if not self.path.exists():
            create_database(self.path)
        check_database(self.path)
        with self._connect() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise LearngeneError(
                    f"the run registry {self.path} was written by a newer learngene (schema {version}; this one "
                    f"reads {SCHEMA_VERSION}): upgrade learngene"
                )
            if version < SCHEMA_VERSION:
                with self.transaction_on(conn):
                    apply_schema(conn)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            # isolation_level=None: we issue BEGIN ourselves so that it can be BEGIN IMMEDIATE.
            conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        except sqlite3.Error as error:
            raise database_error(self.path, error) from None
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        except sqlite3.DatabaseError as error:
            if isinstance(error, (sqlite3.IntegrityError, sqlite3.ProgrammingError)):
                raise  # our own mistake, not the file's: keep the traceback
            raise database_error(self.path, error) from None
        finally:
            conn.close()

    @contextlib.contextmanager
    def transaction_on(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` on an open connection: commit on success, roll back on any exception."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise LearngeneError(
                f"the run registry {self.path} is locked by another process ({error}); try again"
            ) from None
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An exclusive-write transaction: commit on success, roll back on any exception."""
        with self._connect() as conn, self.transaction_on(conn):
            yield conn

    # -- settings: one value per runs root, shared by the app, the command line and the scheduler ---------------

    def setting(self, key: str) -> str | None:
        """A stored setting (one of :data:`SETTINGS`), or None when it was never set."""
        if key not in SETTINGS:
            raise ValueError(f"unknown registry setting {key!r}")
        with self._connect() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_setting(self, key: str, value: Any) -> None:
        """Store a setting (None forgets it)."""
        if key not in SETTINGS:
            raise ValueError(f"unknown registry setting {key!r}")
        with self.transaction() as conn:
            if value is None:
                conn.execute("DELETE FROM settings WHERE key = ?", (key,))
            else:
                conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, str(value)))

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
            # A name and an id prefix are looked up together: a run named like the start of another run's id
            # (e.g. "20261201") is ambiguous, not silently the named one.
            hits = [row[0] for row in conn.execute("SELECT run_id FROM runs WHERE name = ?", (ref,))]
            escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            hits += [
                row[0]
                for row in conn.execute("SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\'", (escaped + "%",))
                if row[0] not in hits
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


RECOVERED_MESSAGE = "recovered by rebuild-registry without a final result (the run was interrupted)"


def _recovered_row(run_dir: Path) -> dict[str, Any] | None:
    """A registry row rebuilt from one run directory, or None when the folder is not a run."""
    import yaml

    from learngene.runs import rundir

    try:
        config = yaml.safe_load((run_dir / rundir.CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(config, dict):
        return None
    info = rundir.RunFile.read(run_dir)
    if info is None:  # a run made before run.json existed: its folder name is its id
        try:
            created = datetime.strptime(run_dir.name[:15], "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            created = run_dir.stat().st_mtime
        info = rundir.RunFile(run_id=run_dir.name, name=run_dir.name, created=created)
    result = rundir.read_result(run_dir)
    process = None if result is not None and result.get("state") in FINAL_STATES else _live_process(run_dir, info)
    if process is not None:
        # Still training: tracked again like any running run (stop reaches it, its slot stays taken, resume is
        # refused), and the next reconcile gives it its final state when it ends.
        state, error, exit_code = RUNNING, None, None
    elif result is not None and result.get("state") in FINAL_STATES:
        state, error = result["state"], (str(result.get("message") or "") if result["state"] == FAILED else None)
        exit_code = result.get("exit_code")
        if state == STOPPED and result.get("message") and result.get("step") is None:
            error = str(result["message"])  # stopped before it started: say so, as the registry did
    elif not any((run_dir / name).exists() for name in (rundir.STDOUT_LOG, rundir.STDERR_LOG, rundir.PROCESS_FILE,
                                                         rundir.METRICS_FILE)):  # fmt: skip
        # Never launched (queued when the index was lost): back in the queue, in its original order.
        state, error, exit_code = QUEUED, None, None
    else:
        # Resumable when a checkpoint exists; either way the user sees why (no process can be tracked any more).
        state = STOPPED if (run_dir / rundir.LAST_CHECKPOINT).is_file() else FAILED
        error, exit_code = RECOVERED_MESSAGE, None
    return {
        "run_id": info.run_id, "name": info.name, "state": state, "created": info.created,
        "queued_at": info.created, "ended": (run_dir / rundir.METRICS_FILE).stat().st_mtime
        if (run_dir / rundir.METRICS_FILE).exists() else None,
        "launcher": info.launcher, "launcher_options": dumps(info.launcher_options), "exit_code": exit_code,
        "error_tail": error, "run_dir": run_dir.name, "config_json": dumps(config),
        "parent_run_id": info.parent_run_id, "resume": 1 if (run_dir / rundir.LAST_CHECKPOINT).is_file() else 0,
        **({**process, "ended": None} if process else {}),
    }  # fmt: skip


def _live_process(run_dir: Path, info) -> dict[str, Any] | None:
    """The run's recorded process (``process.json``) when its launcher says it still runs, or cannot tell (another
    host); None when there is no record or the process is gone."""
    from learngene.runs import rundir
    from learngene.runs.launchers import make_launcher

    process = rundir.read_process(run_dir)
    if process is None:
        return None
    try:
        alive = make_launcher(info.launcher, dict(info.launcher_options)).is_alive({**process, "run_dir": str(run_dir)})
    except LearngeneError:
        return None
    return process if alive is not False else None


def rebuild_registry(root: str | os.PathLike) -> tuple[int, Path | None]:
    """Rebuild ``runs.db`` from the run directories under ``root``; returns (runs found, where the old file went).

    Each run's state comes from its ``result.json``; a run without one (it was running or queued when the index
    was lost) becomes ``stopped`` when it has a checkpoint (``learngene runs resume`` continues it) or ``failed``.
    A run whose launched process (``process.json``) is still alive stays ``running`` and tracked. The old file is
    kept beside it as ``runs.db.damaged-<time>``, never deleted.
    """
    root = Path(root)
    if not root.is_dir():
        raise LearngeneError(f"no runs root at {root}")
    rows = []
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            row = _recovered_row(child)
            if row is not None:
                rows.append(row)
    path = root / DB_NAME
    if not rows and not path.exists():
        # Nothing to rebuild and nothing to repair: most likely a mistyped --runs-dir, not a runs root.
        raise LearngeneError(f"{root} holds no run directories and no {DB_NAME}: it is not a runs root; give "
                             "--runs-dir (or $LEARNGENE_RUNS_DIR) the folder that holds your runs")
    tmp = root / f".{DB_NAME}.rebuild.{os.getpid()}.tmp"
    try:
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            apply_schema(conn)
            for row in rows:
                names = list(row)
                conn.execute(f"INSERT OR REPLACE INTO runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                             [row[n] for n in names])  # fmt: skip
            conn.execute("COMMIT")
        finally:
            conn.close()
        kept = None
        if path.exists():
            kept = root / f"{DB_NAME}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
            os.replace(path, kept)
            for suffix in ("-wal", "-shm"):
                side = Path(f"{path}{suffix}")
                if side.exists():
                    os.replace(side, Path(f"{kept}{suffix}"))
        os.replace(tmp, path)
    except (OSError, sqlite3.Error) as error:
        raise LearngeneError(f"cannot rebuild {path}: {getattr(error, 'strerror', None) or error}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return len(rows), kept
