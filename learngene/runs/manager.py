"""The run manager: submit, queue, launch, watch, stop, resume and clone training runs.

Every process that looks at runs (the app, any number of browser sessions, the command line) builds its own
:class:`RunManager` over the same runs root; they coordinate only through the SQLite registry and the run
directories, so runs survive a browser refresh and an app restart.

Who advances the queue: the runs root's scheduler process (:mod:`learngene.runs.scheduler`, one per root, started
detached by :meth:`~RunManager.submit` and :meth:`~RunManager.resume`) launches queued runs and reconciles ended
ones about once a second until nothing is queued or running, so a queued run starts within seconds of a slot
freeing with no app or command line open. Submit wakes it and waits briefly for the launch when a slot is free.
Reads (:meth:`~RunManager.get`, :meth:`~RunManager.list`) never launch and never take the write lock; they only
start the scheduler process when runs are active and it is missing.

Run directory layout (``<runs root>/<run_id>/``): ``config.yaml`` and ``run.json`` written here; ``stdout.log`` / ``stderr.log`` from
the launcher; ``metrics.jsonl``, ``train.log``, ``checkpoints/``, ``repro.json`` and the final ``result.json`` from
the worker (:mod:`learngene.training.worker`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import Any, TypedDict

from learngene.errors import LearngeneError
from learngene.paths import runs_dir
from learngene.runs import liveness, rundir
from learngene.runs.launchers import STDERR_LOG, STDOUT_LOG, Launcher, make_launcher
from learngene.runs.registry import (
    ACTIVE_STATES,
    FAILED,
    FINAL_STATES,
    QUEUED,
    RUNNING,
    STOPPED,
    SUCCEEDED,
    Registry,
    dumps,
    new_run_id,
)

log = logging.getLogger(__name__)

STOPPED_BEFORE_START = "stopped before it started"
DIED_MESSAGE = "the process died without a final state (killed, out of memory, or power loss)"
STDERR_TAIL_LINES = 20
# Exit codes of the worker (and of `learngene train` in the foreground): 0 succeeded, 3 stopped, 1 failed.
EXIT_CODES = {SUCCEEDED: 0, STOPPED: 3, FAILED: 1}
# A worker whose result.json is final but whose process is still alive this long after is killed (loader workers
# that ignore SIGTERM, a hung shutdown): its state comes from result.json and its slot is freed.
LINGER_GRACE_S = 10.0
# How long submit / resume wait for the scheduler process to launch a run that has a free slot.
LAUNCH_WAIT_S = 15.0


class RunRecord(TypedDict):
    """What :meth:`RunManager.get` and :meth:`RunManager.list` return: a plain dict (JSON-ready, ``record["state"]``
    works everywhere) with these keys and types. ``run_dir`` is absolute; ``state`` is one of
    :data:`~learngene.runs.registry.STATES`."""

    # the registry's columns (see learngene.runs.registry.COLUMNS), decoded
    run_id: str
    name: str
    state: str
    created: float
    queued_at: float | None
    started: float | None
    ended: float | None
    pid: int | None
    pgid: int | None
    proc_start: str | None
    job_id: str | None
    launcher: str
    launcher_options: dict[str, Any]
    host: str | None
    gpus: str | None
    exit_code: int | None
    error_tail: str | None
    run_dir: str
    config: dict[str, Any]
    parent_run_id: str | None
    resume: bool
    stop_requested: float | None
    attempts: int
    # the latest metrics (rundir.metrics_summary)
    step: int | None
    epoch: int | None
    total_steps: int | None
    best_top1: float | None
    top1: float | None
    loss: float | None
    eta_s: float | None
    images_per_s: float | None
    progress: float | None  # in [0, 1]
    # from the run directory and the launcher
    message: str | None  # the worker's final message
    has_checkpoint: bool
    command: list[str]  # the `learngene train` argument list that queues this run again


def _config_dict(config: Any) -> dict[str, Any]:
    """Validate a TrainConfig (or a plain mapping) and return its dict form; LearngeneError if it is bad."""
    from learngene.training.config import TrainConfig

    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    if not isinstance(config, TrainConfig):
        raise LearngeneError(f"expected a TrainConfig, got {type(config).__name__}")
    return config.resolved().validate().to_dict()  # paths absolute: the worker runs in the run directory


def _signal_text(code: int | None) -> str:
    if code is None:
        return ""
    if code < 0:
        try:
            return f" (exit code {code}: killed by {signal.Signals(-code).name})"
        except ValueError:
            return f" (exit code {code})"
    return f" (exit code {code})"


class RunManager:
    """Registry-backed queue of training runs under one runs root.

    Args:
        runs_root: Runs root; default ``$LEARNGENE_RUNS_DIR`` or the user data directory (see
            :func:`learngene.paths.runs_dir`).
        cpu_slots: Runs that may train at once on a machine without GPUs, when the runs root has no ``slots``
            setting.
        slots: Number of slots; stored as the runs root's setting (shared with the app, the command line and the
            scheduler process), overriding the GPU count and ``cpu_slots``.
        linger_grace_s: Seconds a process may outlive its final ``result.json`` before it is killed.

    Records returned by :meth:`get` and :meth:`list` are :class:`RunRecord` dicts; their ``command`` is the
    ``learngene train`` argument list that queues the run again.
    """

    def __init__(
        self,
        runs_root: str | os.PathLike | None = None,
        cpu_slots: int = 1,
        slots: int | None = None,
        linger_grace_s: float = LINGER_GRACE_S,
    ):
        if cpu_slots < 1 or (slots is not None and slots < 1):
            raise LearngeneError("the number of run slots must be at least 1")
        try:
            self.root = runs_dir(runs_root)
        except OSError as error:
            raise LearngeneError(
                f"cannot create the runs root {runs_root or '(default)'}: {error.strerror or error}; "
                "choose a writable --runs-dir"
            ) from None
        self.registry = Registry(self.root)
        self.cpu_slots = int(cpu_slots)
        self.linger_grace_s = float(linger_grace_s)
        if slots is not None and self.registry.setting("slots") != str(int(slots)):
            self.registry.set_setting("slots", int(slots))
        self._gpus: list[str] | None = None
        self.host = socket.gethostname()

    # -- capacity ----------------------------------------------------------------------------------------------

    @property
    def gpus(self) -> list[str]:
        """This machine's GPUs (``CUDA_VISIBLE_DEVICES`` entries) that runs are spread over; empty without CUDA."""
        if self._gpus is None:
            from learngene.runs.launchers import visible_gpus

            self._gpus = visible_gpus()
        return self._gpus

    @property
    def slots(self) -> int:
        """Runs that may occupy this machine at once: the runs root's ``slots`` setting, else one per GPU, else
        ``cpu_slots``. Read from the registry each time, so a change made elsewhere applies at the next launch."""
        stored = self.registry.setting("slots")
        if stored is not None and stored.isdigit() and int(stored) >= 1:
            return int(stored)
        return len(self.gpus) or self.cpu_slots

    def set_slots(self, slots: int | None) -> None:
        """Store the runs root's slot count (None: back to one per GPU, else ``cpu_slots``)."""
        if slots is not None and int(slots) < 1:
            raise LearngeneError("the number of run slots must be at least 1")
        self.registry.set_setting("slots", None if slots is None else int(slots))

    def _launcher(self, row: dict[str, Any]) -> Launcher:
        return make_launcher(row["launcher"], json.loads(row.get("launcher_options") or "{}"))

    def _run_dir(self, row: dict[str, Any]) -> Path:
        """The row's run directory: stored relative to the runs root when inside it, so a moved root still works.

        Rows written by older versions hold absolute paths; when that path is gone but the root has the run's
        folder (the root was moved), the folder in the root is used.
        """
        path = Path(row["run_dir"])
        if not path.is_absolute():
            return self.root / path
        if not path.exists() and (self.root / row["run_id"]).is_dir():
            return self.root / row["run_id"]
        return path

    def _located(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row with an absolute ``run_dir``, as launchers and readers expect."""
        return {**row, "run_dir": str(self._run_dir(row))}

    def _stored_run_dir(self, run_dir: Path) -> str:
        try:
            return str(run_dir.relative_to(self.root))
        except ValueError:
            return str(run_dir)

    # -- submitting --------------------------------------------------------------------------------------------

    def submit(
        self,
        config: Any,
        name: str | None = None,
        launcher: str | Launcher = "local",
        launcher_options: dict[str, Any] | None = None,
        parent_run_id: str | None = None,
        schedule: bool = True,
    ) -> str:
        """Validate ``config``, create the run directory and queue the run; then launch it if a slot is free.

        Args:
            config: A :class:`~learngene.training.config.TrainConfig` (or its dict form).
            name: Human label (default: the run id).
            launcher: ``local``, ``torchrun``, ``slurm`` or a :class:`Launcher` instance.
            launcher_options: Keyword arguments of the launcher named by ``launcher``.
            parent_run_id: The run this one was cloned from.
            schedule: Launch queued runs right away (False only queues).

        Returns:
            The new run id.

        Raises:
            LearngeneError: for a bad config or launcher option; nothing is written then.
        """
        data = _config_dict(config)
        if not isinstance(launcher, Launcher):
            # Rejects unknown launchers / options before anything is written.
            launcher = make_launcher(launcher, dict(launcher_options or {}))
        # Every option, defaults included: whichever process launches or resumes it later does so the same way.
        launcher_name, options = launcher.name, launcher.options()

        now = time.time()
        run_id = new_run_id(now)
        run_dir = self.root / run_id
        try:
            run_dir.mkdir(parents=True)
        except OSError as error:
            raise LearngeneError(f"cannot create the run directory {run_dir}: {error.strerror or error}") from None
        try:
            from learngene.training.config import TrainConfig

            rundir.RunFile(run_id=run_id, name=name or run_id, launcher=launcher_name, launcher_options=options,
                           parent_run_id=parent_run_id, created=now).write(run_dir)  # fmt: skip
            TrainConfig.from_dict(data).to_yaml(run_dir / rundir.CONFIG_FILE)
            self.registry.insert(
                {
                    "run_id": run_id,
                    "name": name or run_id,
                    "state": QUEUED,
                    "created": now,
                    "queued_at": now,
                    "launcher": launcher_name,
                    "launcher_options": dumps(options),
                    "run_dir": self._stored_run_dir(run_dir),
                    "config_json": dumps(data),
                    "parent_run_id": parent_run_id,
                }
            )
        except BaseException as error:
            shutil.rmtree(run_dir, ignore_errors=True)  # no orphan directory for a run the registry never saw
            if isinstance(error, OSError):
                raise LearngeneError(f"cannot write the run directory {run_dir}: {error.strerror or error}") from None
            raise
        log.debug("queued run %s", run_id)
        if schedule:
            try:
                self._advance(run_id)
            except LearngeneError as error:  # queued is a valid outcome: the scheduler process launches it later
                log.warning("run %s is queued; waiting for its launch failed: %s", run_id, error)
        return run_id

    def _advance(self, run_id: str) -> None:
        """After a write that queued ``run_id``: wake the scheduler process and, when a slot is free for the run,
        wait (at most :data:`LAUNCH_WAIT_S`) until it has launched, so callers can report its pid.

        The run is validly queued already, so nothing here fails the submission: if no scheduler process can be
        started, this process schedules once itself.
        """
        from learngene.runs import scheduler

        if not scheduler.wake(self.root):
            try:
                self.schedule()
            except LearngeneError as error:
                log.warning("could not launch queued runs now: %s", error)
            return
        if not self._slot_free_for(run_id):
            return
        deadline = time.monotonic() + LAUNCH_WAIT_S
        while time.monotonic() < deadline:
            row = self.registry.get(run_id)
            if row is None or row["state"] != QUEUED:
                return
            time.sleep(0.05)

    def _slot_free_for(self, run_id: str) -> bool:
        """Whether ``run_id`` is first in the queue and a slot is free for it (a read; the scheduler decides)."""
        slots = self.slots
        used = 0
        for row in self.registry.all((RUNNING,)):
            if row.get("host") == self.host:
                try:
                    used += min(self._launcher(row).slots(), slots)
                except LearngeneError:
                    used += 1
        queued = self.registry.all((QUEUED,))
        if not queued or queued[0]["run_id"] != run_id:
            return False
        try:
            need = min(self._launcher(queued[0]).slots(), slots)
        except LearngeneError:
            return True  # it will fail at launch at once: worth waiting for
        return used + need <= slots

    # -- the queue ---------------------------------------------------------------------------------------------

    def schedule(self) -> list[str]:
        """Reconcile, then launch queued runs in order while slots are free. Returns the run ids launched.

        Each launch happens inside a ``BEGIN IMMEDIATE`` transaction that re-reads the queue, so two processes
        scheduling at once never launch the same run (the second one waits for the lock, then sees it running).
        A run whose launch fails is marked ``failed`` and the queue moves on.
        """
        self.reconcile()
        launched: list[str] = []
        while True:
            if not self.registry.all((QUEUED,)):
                return launched  # a plain read: pollers don't take the write lock when nothing waits
            run_id = self._launch_next()
            if run_id is None:
                return launched
            launched.append(run_id)

    def _launch_next(self) -> str | None:
        slots = self.slots
        with self.registry.transaction() as conn:
            used, busy_gpus = 0, set()
            for row in self.registry.all((RUNNING,), conn):
                if row.get("host") == self.host:
                    busy_gpus.update((row.get("gpus") or "").split(","))
                    try:
                        used += min(self._launcher(row).slots(), slots)
                    except LearngeneError:
                        used += 1
            blocked = False
            for row in self.registry.all((QUEUED,), conn):
                try:
                    launcher = self._launcher(row)
                except LearngeneError as error:
                    self._finish(conn, row, FAILED, error_tail=str(error))
                    continue
                need = min(launcher.slots(), slots)
                if need and (blocked or used + need > slots):
                    blocked = True  # runs start in order: a later local run may not overtake this one
                    continue
                free = [gpu for gpu in self.gpus if gpu not in busy_gpus]
                # With more slots than GPUs (an explicit --slots) runs share: leave the GPUs to the worker then.
                gpus = free[:need] if need and len(free) >= need else None
                self._launch(conn, row, launcher, gpus)
                return row["run_id"]
        return None

    def _launch(self, conn, row: dict[str, Any], launcher: Launcher, gpus: list[str] | None = None) -> None:
        run_dir = self._run_dir(row)
        now = time.time()
        try:
            if not run_dir.is_dir():
                raise LearngeneError(f"run directory {run_dir} has disappeared")
            # A result.json left by the previous attempt (before a resume) must not be mistaken for this one's.
            # Inside the try: an unwritable directory fails this run, not every command that looks at the queue.
            (run_dir / rundir.RESULT_FILE).unlink(missing_ok=True)
            rundir.mark_launch(run_dir, (row.get("attempts") or 0) + 1, bool(row["resume"]))
            handle = launcher.launch(run_dir, resume=bool(row["resume"]), gpus=gpus)
        except Exception as error:  # a broken launch fails this run, never the queue
            if not isinstance(error, (LearngeneError, OSError)):
                log.exception("launching run %s failed", row["run_id"])
            reason = f"{error.strerror}: {error.filename}" if isinstance(error, OSError) and error.strerror else error
            self._finish(conn, row, FAILED, error_tail=f"launch failed: {reason}", started=now)
            return
        try:  # beside the registry row: a rebuilt registry finds the live process again
            rundir.write_process(run_dir, now, pid=handle.pid, pgid=handle.pgid, proc_start=handle.proc_start,
                                 job_id=handle.job_id, host=self.host, gpus=",".join(gpus) if gpus else None)  # fmt: skip
        except (LearngeneError, OSError) as error:
            log.warning("run %s: could not record its process in %s: %s", row["run_id"], rundir.PROCESS_FILE, error)
        self.registry.update(
            conn,
            row["run_id"],
            where={"state": QUEUED},
            state=RUNNING,
            started=now,
            ended=None,
            pid=handle.pid,
            pgid=handle.pgid,
            proc_start=handle.proc_start,
            job_id=handle.job_id,
            host=self.host,
            gpus=",".join(gpus) if gpus else None,
            exit_code=None,
            error_tail=None,
            stop_requested=None,
            attempts=(row.get("attempts") or 0) + 1,
        )
        log.debug("launched run %s (%s, pid %s)", row["run_id"], launcher.name, handle.pid or handle.job_id)

    def _finish(self, conn, row: dict[str, Any], state: str, **fields: Any) -> bool:
        return self.registry.update(
            conn, row["run_id"], where={"state": row["state"], "started": row.get("started")},
            state=state, ended=time.time(), **fields,
        )  # fmt: skip

    # -- watching ----------------------------------------------------------------------------------------------

    def reconcile(self) -> list[str]:
        """Give every ``running`` run whose process has ended its final state. Returns the run ids changed.

        The state comes from the worker's ``result.json``; without one the run is ``failed`` ("the process died
        without a final state") with the stderr tail, or ``stopped`` if a stop had been requested. Metrics and
        checkpoints are left in place.

        Watchdog: a process still alive ``linger_grace_s`` after its final ``result.json`` was written (loader
        workers that ignore SIGTERM, a hung shutdown) is killed with its whole tree through the launcher's
        ``stop(record, force=True)``; the run takes its state from ``result.json`` and its slot is freed.
        """
        liveness.reap_children()
        changed = []
        for row in self.registry.all((RUNNING,)):
            located = self._located(row)
            try:
                launcher = self._launcher(row)
                alive = launcher.is_alive(located)
            except LearngeneError:
                launcher, alive = None, False
            result = rundir.read_result(located["run_dir"])
            lingered = None
            if alive and result is not None:
                lingered = self._lingering_for(located)
                if lingered is None:
                    continue  # finishing: give it the grace period to exit on its own
            elif alive or (alive is None and result is None):
                continue  # still running, or on another machine and not finished as far as we can see
            if lingered is not None and launcher is not None:
                try:
                    launcher.stop(located, force=True)
                except LearngeneError as error:
                    log.warning("could not kill the lingering process of run %s: %s", row["run_id"], error)
            code = launcher.exit_code(located) if launcher and lingered is None else None
            fields = self._final_fields(row, result, code)
            if lingered is not None:
                note = (f"the process was still alive {lingered:.0f} s after writing its final result and was "
                        "killed with its child processes")  # fmt: skip
                fields["error_tail"] = "\n".join(p for p in (fields.get("error_tail"), note) if p)
            with self.registry.transaction() as conn:
                if self._finish(conn, row, **fields):
                    changed.append(row["run_id"])
                    log.debug("run %s ended: %s", row["run_id"], fields["state"])
        return changed

    def _lingering_for(self, row: dict[str, Any]) -> float | None:
        """Seconds since a live run wrote its final result, once past the grace period; else None."""
        try:
            age = time.time() - (Path(row["run_dir"]) / rundir.RESULT_FILE).stat().st_mtime
        except OSError:
            return None
        return age if age >= self.linger_grace_s else None

    def _final_fields(
        self, row: dict[str, Any], result: dict[str, Any] | None, code: int | None
    ) -> dict[str, Any]:
        stderr_tail = "\n".join(rundir.last_attempt_tail(self._run_dir(row) / STDERR_LOG, STDERR_TAIL_LINES))
        if result is not None:
            state = result.get("state") if result.get("state") in FINAL_STATES else FAILED
            exit_code = result.get("exit_code", code)
            message = str(result.get("message") or "")
            if state == FAILED:
                tail = "\n".join(part for part in (message, stderr_tail) if part)
                return {"state": state, "exit_code": exit_code, "error_tail": tail or "the run failed"}
            # error_tail is for failures; the worker's message stays readable as the record's ``message``.
            return {"state": state, "exit_code": exit_code, "error_tail": None}
        if row.get("stop_requested"):
            kept = ("the last checkpoint is kept" if (self._run_dir(row) / rundir.LAST_CHECKPOINT).is_file()
                    else "it had saved no checkpoint yet")  # fmt: skip
            message = f"stopped: the process ended without writing a final state; {kept}"
            return {"state": STOPPED, "exit_code": code, "error_tail": message}
        if code is not None and code > 0:
            # It exited on its own (an import error, a crash before the worker's handlers were in place).
            message = f"the process exited with code {code} without writing a final state"
        else:
            message = DIED_MESSAGE + _signal_text(code)
        return {
            "state": FAILED,
            "exit_code": code,
            "error_tail": "\n".join(p for p in (message, stderr_tail) if p),
        }

    def _record(self, row: dict[str, Any]) -> RunRecord:
        row = self._located(row)
        record = dict(row)
        record["launcher_options"] = json.loads(row.get("launcher_options") or "{}")
        record["config"] = json.loads(record.pop("config_json", None) or "{}")
        record["resume"] = bool(row.get("resume"))
        summary = rundir.metrics_summary(row["run_dir"])
        record.update(summary)
        total, step = summary.get("total_steps"), summary.get("step")
        record["progress"] = min(1.0, step / total) if total and step is not None else None
        result = rundir.read_result(row["run_dir"]) if row["state"] in FINAL_STATES else None
        record["message"] = (result or {}).get("message")
        if result and result.get("best_top1") is not None and record["best_top1"] is None:
            record["best_top1"] = result["best_top1"]
        record["has_checkpoint"] = (Path(row["run_dir"]) / rundir.LAST_CHECKPOINT).is_file()
        try:  # the `learngene train` argv that queues this run again (learngene.cli.training.run_command)
            from learngene.cli.training import run_command
            from learngene.training.config import TrainConfig

            name = None if row["name"] == row["run_id"] else row["name"]
            record["command"] = run_command(TrainConfig.from_dict(record["config"]), name, row["launcher"],
                                            record["launcher_options"])  # fmt: skip
        except LearngeneError:
            record["command"] = []
        return record  # type: ignore[return-value]

    def _look(self, rows: list[dict[str, Any]], start_scheduler: bool) -> None:
        """What every read does besides reading: reap our own finished children (no zombies in a long-lived app)
        and, when runs are queued or running but no scheduler process holds the root, start one. Never launches a
        run and never takes the write lock."""
        liveness.reap_children()
        if start_scheduler and any(row["state"] in ACTIVE_STATES for row in rows):
            from learngene.runs import scheduler

            scheduler.ensure_running(self.root)

    def list(self, schedule: bool = True) -> list[RunRecord]:
        """All runs, newest first. A pure read: it never launches and never takes the write lock.

        Args:
            schedule: Start the runs root's scheduler process if runs are active and none is running (the process
                then advances the queue); False touches nothing.
        """
        rows = self.registry.all()
        self._look(rows, schedule)
        return [
            self._record(row) for row in sorted(rows, key=lambda r: (r["created"], r["run_id"]), reverse=True)
        ]

    def resolve(self, ref: str) -> str:
        """Run id for a run id, a unique id prefix or a unique name."""
        return self.registry.resolve(ref)

    def get(self, run_id: str, schedule: bool = True) -> RunRecord:
        """One run's record (see the class docstring); LearngeneError if there is no such run.

        A pure read like :meth:`list` (``schedule`` only makes sure the scheduler process runs while runs are
        active)."""
        run_id = self.resolve(run_id)
        row = self.registry.get(run_id)
        if row is None:
            raise LearngeneError(f"run {run_id} has been removed")
        self._look([row], schedule)
        return self._record(row)

    def wait(self, run_id: str, timeout_s: float | None = None, poll_s: float = 0.5) -> RunRecord:
        """Block until the run reaches a final state (or ``timeout_s`` passes); returns its record."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            record = self.get(run_id)
            if record["state"] in FINAL_STATES:
                return record
            if deadline is not None and time.monotonic() > deadline:
                return record
            time.sleep(poll_s)

    def run_dir(self, run_id: str) -> Path:
        """The run's directory."""
        row = self.registry.get(self.resolve(run_id))
        return self._run_dir(row)  # type: ignore[arg-type]

    def read_metrics(self, run_id: str) -> list[dict[str, Any]]:
        """All metric records of the run (start / train / eval), oldest first."""
        return rundir.read_metrics(self.run_dir(run_id))

    def log_path(self, run_id: str, which: str = "train") -> Path:
        """Path of the run's ``train`` log (falls back to stderr before the worker writes one), ``stdout`` or
        ``stderr`` log."""
        run_dir = self.run_dir(run_id)
        names = {"train": rundir.TRAIN_LOG, "stdout": STDOUT_LOG, "stderr": STDERR_LOG}
        if which not in names:
            raise LearngeneError(f"unknown log {which!r}: choose train, stdout or stderr")
        path = run_dir / names[which]
        if which == "train" and not path.exists():
            return run_dir / STDERR_LOG
        return path

    def log_tail(self, run_id: str, n: int = 50, which: str = "train") -> list[str]:
        """The last ``n`` lines of one of the run's logs."""
        return rundir.tail_lines(self.log_path(run_id, which), n)

    def describe(self, run_id: str) -> list[str]:
        """Equivalent shell command lines of the run's (next) launch, for display."""
        row = self._located(self.registry.get(self.resolve(run_id)))  # type: ignore[arg-type]
        return self._launcher(row).describe(row["run_dir"], bool(row["resume"]))

    # -- acting on runs ----------------------------------------------------------------------------------------

    def stop(self, run_id: str, force: bool = False) -> str:
        """Stop a run: a queued run becomes ``stopped`` at once; a running one gets SIGTERM (checkpoint at the next
        step, then exit as ``stopped``), or SIGKILL with ``force``. Returns the state right after the request.

        Raises:
            LearngeneError: if the run has already ended.
        """
        run_id = self.resolve(run_id)
        with self.registry.transaction() as conn:
            row = self.registry.get(run_id, conn)
            if row["state"] == QUEUED:
                self._finish(conn, row, STOPPED, error_tail=STOPPED_BEFORE_START)
                self._record_stop_before_start(row)
                return STOPPED
            if row["state"] in FINAL_STATES:
                raise LearngeneError(f"run {run_id} has already {'ended as ' if row['state'] != STOPPED else ''}"
                                     f"{row['state']}")  # fmt: skip
            self.registry.update(conn, run_id, where={"state": RUNNING}, stop_requested=time.time())
        signalled = self._launcher(row).stop(self._located(row), force=force)
        if not signalled:
            self.reconcile()  # the process was already gone: settle its state now
        return self.registry.get(run_id)["state"]

    def _record_stop_before_start(self, row: dict[str, Any]) -> None:
        """Leave the stop in the run directory too (``result.json``, unless an earlier attempt wrote one): a
        rebuilt registry would otherwise put the never-launched run back in the queue."""
        run_dir = self._run_dir(row)
        if (run_dir / rundir.RESULT_FILE).exists():
            return
        from learngene.atomic import write_json_atomic

        try:
            write_json_atomic(run_dir / rundir.RESULT_FILE,
                              {"state": STOPPED, "message": STOPPED_BEFORE_START, "exit_code": None})  # fmt: skip
        except (LearngeneError, OSError) as error:
            log.warning("run %s: could not record its stop in %s: %s", row["run_id"], rundir.RESULT_FILE, error)

    def resume(self, run_id: str) -> str:
        """Queue a stopped or failed run again to continue from ``checkpoints/last.pt`` (same config, same
        schedule, same launcher). Returns the run's state after scheduling.

        Raises:
            LearngeneError: if the run is active, succeeded or has no checkpoint.
        """
        run_id = self.resolve(run_id)
        self.reconcile()
        with self.registry.transaction() as conn:
            row = self.registry.get(run_id, conn)
            if row["state"] in (QUEUED, RUNNING):
                raise LearngeneError(f"run {run_id} is {row['state']}; stop it before resuming")
            if row["state"] == SUCCEEDED:
                raise LearngeneError(
                    f"run {run_id} already succeeded; clone it with more --epochs to train further"
                )
            if not (self._run_dir(row) / rundir.LAST_CHECKPOINT).is_file():
                raise LearngeneError(
                    f"run {run_id} has no checkpoint to resume from ({rundir.LAST_CHECKPOINT}); clone it to start over"
                )
            self.registry.update(
                conn, run_id, where={"state": row["state"]},
                state=QUEUED, queued_at=time.time(), resume=1, ended=None, exit_code=None, error_tail=None,
                stop_requested=None, pid=None, pgid=None, proc_start=None, job_id=None,
            )  # fmt: skip
        self._advance(run_id)
        return self.registry.get(run_id)["state"]

    def clone(
        self,
        run_id: str,
        overrides: dict[str, Any] | None = None,
        name: str | None = None,
        launcher: str | None = None,
        launcher_options: dict[str, Any] | None = None,
    ) -> str:
        """Create and queue a new run from ``run_id``'s config with ``overrides`` (TrainConfig field -> value).

        The launcher defaults to the original run's. Returns the new run id.
        """
        run_id = self.resolve(run_id)
        row = self.registry.get(run_id)
        data = json.loads(row["config_json"])
        data.update(overrides or {})
        if launcher is None:
            launcher = row["launcher"]
            if launcher_options is None:
                launcher_options = json.loads(row["launcher_options"] or "{}")
        return self.submit(
            data, name=name, launcher=launcher, launcher_options=launcher_options, parent_run_id=run_id
        )

    def config(self, run_id: str):
        """The run's :class:`~learngene.training.config.TrainConfig`."""
        from learngene.training.config import TrainConfig

        row = self.registry.get(self.resolve(run_id))
        return TrainConfig.from_dict(json.loads(row["config_json"]))  # type: ignore[index]
