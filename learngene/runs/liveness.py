"""Is a run's process still alive? Answered by psutil from the pid, its start time and our own children.

A pid alone is not enough: after a crash the number can be reused by an unrelated process, so we store the
process's creation time at launch and treat a different creation time as "our process is gone". A zombie (exited,
not yet reaped) is dead too.

Children this very process launched are kept in :data:`_CHILDREN` and polled: polling reaps them (a long-lived
launcher such as the app would otherwise accumulate zombies, because the detached children stay *its* children)
and yields the real exit code, including ``-9`` for a SIGKILL that left no ``result.json`` behind.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any

import psutil

log = logging.getLogger(__name__)

_CHILDREN: dict[int, subprocess.Popen] = {}
_EXIT_CODES: dict[int, int] = {}  # exit codes of reaped children, until their run is reconciled
_LOCK = threading.Lock()


def _format_start(create_time: float) -> str:
    # psutil's creation time is boot time + kernel start ticks: stable to the clock tick (10 ms), so two decimals
    # identify a process and always contain a '.', which tells them from the tick counts older records stored.
    return f"{create_time:.2f}"


def process_start_time(pid: int) -> str | None:
    """The creation time of ``pid`` (seconds since the epoch, as text), or None if unknown or gone."""
    try:
        return _format_start(psutil.Process(pid).create_time())
    except (psutil.Error, ValueError):
        return None


def _same_start(process: psutil.Process, proc_start: str) -> bool:
    try:
        created = process.create_time()
    except psutil.Error:
        return False
    if "." not in proc_start:  # a record written before psutil: kernel ticks since boot (/proc/PID/stat field 22)
        try:
            ticks = os.sysconf("SC_CLK_TCK")
            return round((created - psutil.boot_time()) * ticks) == int(proc_start)
        except (ValueError, OSError, AttributeError):
            return True  # cannot compare: fall back to the pid alone
    return _format_start(created) == proc_start


def track_child(process: subprocess.Popen) -> None:
    """Remember a child we launched so that later checks reap it and learn its exit code."""
    with _LOCK:
        _CHILDREN[process.pid] = process


def reap_children() -> None:
    """Poll every child we launched: reaps the finished ones (no zombies) and keeps their exit codes."""
    with _LOCK:
        for pid, process in list(_CHILDREN.items()):
            code = process.poll()
            if code is not None:
                _EXIT_CODES[pid] = code
                del _CHILDREN[pid]


def child_exit_code(pid: int | None) -> int | None:
    """Exit code of a child of this process that has ended (negative: killed by that signal), else None."""
    if pid is None:
        return None
    reap_children()
    with _LOCK:
        return _EXIT_CODES.pop(pid, None)


def _process(pid: int | None, proc_start: str | None = None) -> psutil.Process | None:
    """The live process ``pid`` if it is still the one that had ``proc_start``; None when gone, a zombie or reused."""
    if not pid:
        return None
    try:
        process = psutil.Process(pid)
    except (psutil.Error, ValueError):
        return None
    try:
        if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return None
    except psutil.AccessDenied:
        pass  # another user's process: it exists
    except psutil.Error:
        return None
    if proc_start is not None and not _same_start(process, proc_start):
        return None  # the pid now belongs to another process
    return process


def is_alive(pid: int | None, proc_start: str | None = None) -> bool:
    """Whether ``pid`` is running and is the same process that had ``proc_start`` when launched."""
    if not pid:
        return False
    reap_children()
    with _LOCK:
        if pid in _EXIT_CODES:
            return False
        if pid in _CHILDREN:
            return True
    return _process(pid, proc_start) is not None


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (empty when there is none or the process is gone)."""
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.Error:
        return []


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, including those that started their own session (torchrun's ranks)."""
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def kill_tree(pid: int | None, pgid: int | None, proc_start: str | None) -> bool:
    """SIGKILL the run's leader, its process group and every descendant (some may live in other sessions)."""
    leader = _process(pid, proc_start) if is_alive(pid, proc_start) else None
    if leader is None:  # gone, a zombie, or the pid now belongs to someone else
        return False
    try:
        below = leader.children(recursive=True)  # listed before the leader dies and they are re-parented
    except psutil.Error:
        below = []
    for target in [leader, *below]:
        try:
            target.kill()
        except psutil.Error:
            pass
    if pgid:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return True


# prctl(2) option: the signal a process gets when the thread that started it ends.
_PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Any:
    # Looked up once, in the parent: a preexec_fn then runs no dlopen between fork and exec.
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def end_with_parent() -> None:
    """Have the kernel SIGKILL this process when its parent ends (Linux; elsewhere nothing changes).

    For processes that only make sense below their parent and that a kill of the parent alone would otherwise
    orphan (it started them in sessions of their own, or died by SIGKILL and forwarded nothing): torchrun's ranks,
    the task of submitit's local cluster and the worker it runs. Usable as a ``preexec_fn`` once called in the
    parent (no logging, no library lookup).
    """
    prctl = _prctl()
    if prctl is None:
        return
    parent = os.getppid()
    if prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        return  # no worse than before: the process just outlives its parent
    if os.getppid() != parent:  # the parent ended before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


def kill_own_children(grace_s: float = 0.0) -> list[int]:
    """Kill every process below this one (after ``grace_s`` seconds for them to end by themselves).

    The worker's last resort on its way out: a DataLoader worker that ignores SIGTERM must not keep the run alive.

    Returns:
        The pids that were still alive and got SIGKILL.
    """
    try:
        below = psutil.Process().children(recursive=True)
    except psutil.Error:
        return []
    if grace_s > 0 and below:
        _, below = psutil.wait_procs(below, timeout=grace_s)
    killed = []
    for child in below:
        try:
            child.kill()
            killed.append(child.pid)
        except psutil.Error:
            pass
    psutil.wait_procs([child for child in below if child.pid in killed], timeout=2)  # reap what we can
    return killed


def signal_run(
    pid: int | None, pgid: int | None, proc_start: str | None, sig: int = signal.SIGTERM, group: bool = False
) -> bool:
    """Send ``sig`` to the run's leader process, or to its whole process group with ``group``, only if the pid is
    still the process we launched.

    A graceful stop must go to the leader alone: the worker's own children (DataLoader workers, torchrun's ranks) die
    on a SIGTERM of their own and would turn a clean stop into a failure; the leader forwards it where needed. A
    forced stop kills the whole group so nothing is left behind.

    Returns whether a signal was delivered.
    """
    if not is_alive(pid, proc_start):
        return False
    try:
        if group and pgid:
            os.killpg(pgid, sig)
        else:
            os.kill(pid, sig)  # type: ignore[arg-type]
    except ProcessLookupError:
        return False
    except PermissionError as error:
        log.warning("cannot signal process %s: %s", pid, error)
        return False
    return True
