"""The runs root's scheduler process: advances the queue with no app or command line open.

One per runs root, made single by an OS file lock (``scheduler.lock`` in the root, held for the process's life and
released by the kernel if it dies). It is the process that launches queued runs: :func:`wake` starts it detached,
with an argument list, whenever a write queues a run (submit, resume, clone), or nudges it with ``SIGUSR1`` when it
already runs; a read that sees active runs and no holder of the lock starts it too (:func:`ensure_running`). It
reconciles and launches about once a second (:meth:`~learngene.runs.RunManager.schedule`), so a run that ends
(success, failure, stop, kill) hands its slot to the next queued run within seconds, and it exits once nothing is
queued or running. Being the parent of the runs it launches, it reaps them and records the signal that killed one.
Launching stays transactional in the registry, so two schedulers (or a test calling ``schedule()``) never
double-launch.

Run it by hand with ``python -m learngene.runs.scheduler RUNS_ROOT``.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from learngene.errors import LearngeneError

log = logging.getLogger(__name__)

LOCK_FILE = "scheduler.lock"  # in the runs root: held by the one scheduler process
LOG_FILE = "scheduler.log"  # in the runs root: the scheduler's own warnings
TICK_S = 1.0  # seconds between passes: a slot freed by a run is reused within about this long
WAKE_SIGNAL = signal.SIGUSR1  # "a run was queued": start a pass now instead of at the next tick
# Also wake on SIGCHLD: a run this process launched has just exited, so its slot can be handed on at once.
_WAKERS = {WAKE_SIGNAL, signal.SIGCHLD}


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding the exclusive lock on ``path``, or None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def is_running(root: str | os.PathLike) -> bool:
    """Whether a scheduler process holds ``root``'s lock right now."""
    try:
        fd = _try_lock(Path(root) / LOCK_FILE)
    except OSError:
        return False
    if fd is None:
        return True
    os.close(fd)  # closing releases the lock
    return False


def ensure_running(root: str | os.PathLike) -> bool:
    """Start the scheduler process for ``root`` unless one is running; returns whether one was started.

    Two callers racing here may both start one: the loser finds the lock taken and exits at once.
    """
    from learngene.runs.launchers import _child_env

    root = Path(root)
    if is_running(root):
        return False
    argv = [sys.executable, "-m", "learngene.runs.scheduler", str(root.resolve())]
    try:
        with open(root / LOG_FILE, "ab") as out:
            subprocess.Popen(
                argv, cwd=root, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=_child_env(),
                # Its own session: it outlives the command line or the app that started it, and Ctrl-C there
                # does not reach it.
                start_new_session=True, close_fds=True,
            )  # fmt: skip
    except OSError as error:
        log.warning("cannot start the run scheduler for %s: %s", root, error)
        return False
    return True


def wake(root: str | os.PathLike) -> bool:
    """Have ``root``'s scheduler look at the queue now: nudge the running one, or start one. Returns whether a
    scheduler is (or is being) started or was nudged."""
    root = Path(root)
    if not is_running(root):
        return ensure_running(root)
    try:
        pid = int((root / LOCK_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return True  # it is just starting and will look at the queue anyway
    # The lock is held, so its holder (whose pid this is) is alive; it handles WAKE_SIGNAL before taking the lock,
    # so the signal can only wake it, never terminate it.
    try:
        os.kill(pid, WAKE_SIGNAL)
    except (ProcessLookupError, PermissionError):
        pass
    return True


def _pause(tick_s: float) -> None:
    """Sleep ``tick_s`` or until woken by a nudge or a child's exit.

    The signals are blocked only while waiting (so they queue for ``sigtimedwait``): a signal mask survives fork
    and exec, and the runs this process launches must start with none blocked. One that arrives outside the wait
    goes to a no-op handler, and the pass it asked for comes with the next tick.
    """
    waiter = getattr(signal, "sigtimedwait", None)
    if waiter is None:  # no sigtimedwait (macOS): plain ticks
        time.sleep(tick_s)
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, _WAKERS)
    try:
        waiter(_WAKERS, tick_s)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _WAKERS)


def _still_ours(fd: int, path: Path) -> bool:
    """Whether ``path`` is still the lock file this process holds (not deleted, not moved away with its root)."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except OSError:
        return False


def serve(root: str | os.PathLike, tick_s: float = TICK_S) -> int:
    """The scheduler loop: hold the lock, schedule every ``tick_s``, return when nothing is queued or running."""
    from learngene.runs import RunManager
    from learngene.runs.registry import ACTIVE_STATES

    root = Path(root)
    # Handled before the lock is taken (and the pid published), so a nudge never kills a starting scheduler.
    signal.signal(WAKE_SIGNAL, lambda signum, _frame: None)
    fd = _try_lock(root / LOCK_FILE)
    if fd is None:
        return 0  # another scheduler holds this root
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for a curious user
        manager = RunManager(root)
        while not stopping:
            if not _still_ours(fd, root / LOCK_FILE):
                # The root was deleted or moved: readers at its new place start a scheduler of their own.
                log.warning("%s is gone or was moved; this scheduler stops", root)
                return 0
            try:
                manager.schedule()
                active = manager.registry.all(ACTIVE_STATES)
            except LearngeneError as error:  # the registry busy or damaged: say so, try again next tick
                log.warning("%s", error)
                active = [True]
            except Exception:  # a bug must not leave the queue without a scheduler: log it, try again
                log.exception("scheduling %s failed", root)
                active = [True]
            if not active:
                # Release first, then look again: a submitter that saw the lock held queued its run before
                # looking, so either we see that run now or it sees the lock free and starts a new scheduler.
                os.close(fd)
                fd = None
                if not manager.registry.all(ACTIVE_STATES):
                    return 0
                fd = _try_lock(root / LOCK_FILE)
                if fd is None:
                    return 0  # a new scheduler took over
            _pause(tick_s)
    finally:
        if fd is not None:
            os.close(fd)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m learngene.runs.scheduler", description=__doc__.split("\n")[0])
    parser.add_argument("root", help="the runs root to schedule")
    parser.add_argument("--tick", type=float, default=TICK_S, help=f"seconds between passes (default {TICK_S})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s scheduler %(process)d: %(message)s")
    try:
        return serve(args.root, args.tick)
    except LearngeneError as error:
        log.error("%s", error)
        return 2


if __name__ == "__main__":
    sys.exit(main())
