"""The run manager: submit, queue, launch, watch, stop, resume and clone training runs.

Every process that looks at runs (the app, any number of browser sessions, the command line) builds its own
:class:`RunManager` over the same runs root; they coordinate only through the SQLite registry and the run
directories, so runs survive a browser refresh and an app restart. There is no daemon: the queue advances and dead
processes are detected whenever anyone calls :meth:`RunManager.schedule` (which :meth:`~RunManager.list` and
:meth:`~RunManager.get` do), and the app polls every few seconds.

Run directory layout (``<runs root>/<run_id>/``): ``config.yaml`` written here; ``stdout.log`` / ``stderr.log`` from
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
from typing import Any

from learngene.errors import LearngeneError
from learngene.paths import runs_dir
from learngene.runs import liveness, rundir
from learngene.runs.launchers import STDERR_LOG, STDOUT_LOG, Launcher, make_launcher
from learngene.runs.registry import (
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

DIED_MESSAGE = "the process died without a final state (killed, out of memory, or power loss)"
STDERR_TAIL_LINES = 20
# Exit codes of the worker (and of `learngene train` in the foreground): 0 succeeded, 3 stopped, 1 failed.
EXIT_CODES = {SUCCEEDED: 0, STOPPED: 3, FAILED: 1}


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
        cpu_slots: Runs that may train at once on a machine without GPUs.
        slots: Explicit number of slots (overrides the GPU count and ``cpu_slots``).

    Records returned by :meth:`get` and :meth:`list` are dicts with the registry columns (``run_id``, ``name``,
    ``state``, ``created``, ``queued_at``, ``started``, ``ended``, ``pid``, ``pgid``, ``job_id``, ``launcher``,
    ``launcher_options`` (dict), ``host``, ``exit_code``, ``error_tail``, ``run_dir``, ``config`` (dict),
    ``parent_run_id``, ``resume``, ``attempts``, ``stop_requested``) plus the latest metrics (``step``, ``epoch``,
    ``total_steps``, ``best_top1``, ``top1``, ``loss``, ``eta_s``, ``images_per_s``, ``progress`` in [0, 1] or
    None), ``message`` (the worker's final message, if any), ``has_checkpoint`` and ``command`` (the
    ``learngene train`` argument list that queues the run again).
    """

    def __init__(
        self, runs_root: str | os.PathLike | None = None, cpu_slots: int = 1, slots: int | None = None
    ):
        if cpu_slots < 1 or (slots is not None and slots < 1):
            raise LearngeneError("the number of run slots must be at least 1")
        self.root = runs_dir(runs_root)
        self.registry = Registry(self.root)
        self.cpu_slots = int(cpu_slots)
        self._slots = slots
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
        """Runs that may occupy this machine at once: explicit ``slots``, else one per GPU, else ``cpu_slots``."""
        if self._slots is None:
            self._slots = len(self.gpus) or self.cpu_slots
        return self._slots

    def _launcher(self, row: dict[str, Any]) -> Launcher:
        return make_launcher(row["launcher"], json.loads(row.get("launcher_options") or "{}"))

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
        if isinstance(launcher, Launcher):
            launcher_name, options = launcher.name, launcher.options()
        else:
            launcher_name, options = launcher, dict(launcher_options or {})
        make_launcher(
            launcher_name, options
        )  # rejects unknown launchers / options before anything is written

        now = time.time()
        run_id = new_run_id(now)
        run_dir = self.root / run_id
        run_dir.mkdir(parents=True)
        try:
            from learngene.training.config import TrainConfig

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
                    "run_dir": str(run_dir),
                    "config_json": dumps(data),
                    "parent_run_id": parent_run_id,
                }
            )
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)  # no orphan directory for a run the registry never saw
            raise
        log.debug("queued run %s", run_id)
        if schedule:
            self.schedule()
        return run_id

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
        with self.registry.transaction() as conn:
            used, busy_gpus = 0, set()
            for row in self.registry.all((RUNNING,), conn):
                if row.get("host") == self.host:
                    busy_gpus.update((row.get("gpus") or "").split(","))
                    try:
                        used += min(self._launcher(row).slots(), self.slots)
                    except LearngeneError:
                        used += 1
            blocked = False
            for row in self.registry.all((QUEUED,), conn):
                try:
                    launcher = self._launcher(row)
                except LearngeneError as error:
                    self._finish(conn, row, FAILED, error_tail=str(error))
                    continue
                need = min(launcher.slots(), self.slots)
                if need and (blocked or used + need > self.slots):
                    blocked = True  # runs start in order: a later local run may not overtake this one
                    continue
                free = [gpu for gpu in self.gpus if gpu not in busy_gpus]
                # With more slots than GPUs (an explicit --slots) runs share: leave the GPUs to the worker then.
                gpus = free[:need] if need and len(free) >= need else None
                self._launch(conn, row, launcher, gpus)
                return row["run_id"]
        return None

    def _launch(self, conn, row: dict[str, Any], launcher: Launcher, gpus: list[str] | None = None) -> None:
        run_dir = Path(row["run_dir"])
        # A result.json left by the previous attempt (before a resume) must not be mistaken for this one's.
        (run_dir / rundir.RESULT_FILE).unlink(missing_ok=True)
        now = time.time()
        try:
            if not run_dir.is_dir():
                raise LearngeneError(f"run directory {run_dir} has disappeared")
            handle = launcher.launch(run_dir, resume=bool(row["resume"]), gpus=gpus)
        except Exception as error:  # a broken launch fails this run, never the queue
            if not isinstance(error, LearngeneError):
                log.exception("launching run %s failed", row["run_id"])
            self._finish(conn, row, FAILED, error_tail=f"launch failed: {error}", started=now)
            return
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
        """
        liveness.reap_children()
        changed = []
        for row in self.registry.all((RUNNING,)):
            try:
                launcher = self._launcher(row)
                alive = launcher.is_alive(row)
            except LearngeneError:
                launcher, alive = None, False
            result = rundir.read_result(row["run_dir"])
            if alive or (alive is None and result is None):
                continue  # still running, or on another machine and not finished as far as we can see
            code = launcher.exit_code(row) if launcher else None
            fields = self._final_fields(row, result, code)
            with self.registry.transaction() as conn:
                if self._finish(conn, row, **fields):
                    changed.append(row["run_id"])
                    log.debug("run %s ended: %s", row["run_id"], fields["state"])
        return changed

    def _final_fields(
        self, row: dict[str, Any], result: dict[str, Any] | None, code: int | None
    ) -> dict[str, Any]:
        stderr_tail = "\n".join(rundir.tail_lines(Path(row["run_dir"]) / STDERR_LOG, STDERR_TAIL_LINES))
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
            message = "stopped: the process ended without writing a final state; the last checkpoint is kept"
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

    def _record(self, row: dict[str, Any]) -> dict[str, Any]:
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
        return record

    def list(self, schedule: bool = True) -> list[dict[str, Any]]:
        """All runs, newest first, after advancing the queue (``schedule=False``: a pure read)."""
        if schedule:
            self.schedule()
        rows = self.registry.all()
        return [
            self._record(row) for row in sorted(rows, key=lambda r: (r["created"], r["run_id"]), reverse=True)
        ]

    def resolve(self, ref: str) -> str:
        """Run id for a run id, a unique id prefix or a unique name."""
        return self.registry.resolve(ref)

    def get(self, run_id: str, schedule: bool = True) -> dict[str, Any]:
        """One run's record (see the class docstring); LearngeneError if there is no such run."""
        run_id = self.resolve(run_id)
        if schedule:
            self.schedule()
        row = self.registry.get(run_id)
        if row is None:
            raise LearngeneError(f"run {run_id} has been removed")
        return self._record(row)

    def wait(self, run_id: str, timeout_s: float | None = None, poll_s: float = 0.5) -> dict[str, Any]:
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
        return Path(row["run_dir"])  # type: ignore[index]

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
        row = self.registry.get(self.resolve(run_id))
        return self._launcher(row).describe(row["run_dir"], bool(row["resume"]))  # type: ignore[index]

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
                self._finish(conn, row, STOPPED, error_tail="stopped before it started")
                return STOPPED
            if row["state"] in FINAL_STATES:
                raise LearngeneError(f"run {run_id} has already {'ended as ' if row['state'] != STOPPED else ''}"
                                     f"{row['state']}")  # fmt: skip
            self.registry.update(conn, run_id, where={"state": RUNNING}, stop_requested=time.time())
        signalled = self._launcher(row).stop(row, force=force)
        if not signalled:
            self.reconcile()  # the process was already gone: settle its state now
        return self.registry.get(run_id)["state"]

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
            if not (Path(row["run_dir"]) / rundir.LAST_CHECKPOINT).is_file():
                raise LearngeneError(
                    f"run {run_id} has no checkpoint to resume from ({rundir.LAST_CHECKPOINT}); clone it to start over"
                )
            self.registry.update(
                conn, run_id, where={"state": row["state"]},
                state=QUEUED, queued_at=time.time(), resume=1, ended=None, exit_code=None, error_tail=None,
                stop_requested=None, pid=None, pgid=None, proc_start=None, job_id=None,
            )  # fmt: skip
        self.schedule()
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
