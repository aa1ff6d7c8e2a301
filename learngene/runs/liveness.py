"""Is a run's process still alive? Answered from the pid, its kernel start time and our own children.

A pid alone is not enough: after a crash the number can be reused by an unrelated process, so we store the start
time the kernel reports for the pid at launch (``/proc/<pid>/stat`` field 22) and treat a different start time as
"our process is gone". A zombie (exited, not yet reaped) is dead too.

Children this very process launched are kept in :data:`_CHILDREN` and polled: polling reaps them (a long-lived
launcher such as the app would otherwise accumulate zombies, because the detached children stay *its* children)
and yields the real exit code, including ``-9`` for a SIGKILL that left no ``result.json`` behind.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading

log = logging.getLogger(__name__)

_CHILDREN: dict[int, subprocess.Popen] = {}
_EXIT_CODES: dict[int, int] = {}  # exit codes of reaped children, until their run is reconciled
_LOCK = threading.Lock()


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot, as text), or None if unknown or gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None  # field 22 overall (state is field 3 = index 0 here)


def _proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[0]


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
    state = _proc_state(pid)
    if state is None:
        if os.path.isdir("/proc/self"):
            return False  # Linux: no /proc entry means no process
        try:  # elsewhere fall back to the signal-0 probe, without the pid-reuse guard
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if state in ("Z", "X"):
        return False
    if proc_start is not None and process_start_time(pid) != proc_start:
        return False  # the pid now belongs to another process
    return True


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from ``/proc``; empty where there is none)."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
            found.append(int(entry))
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, including those that started their own session (torchrun's ranks)."""
    found, stack = [], [pid]
    while stack:
        for child in children(stack.pop()):
            found.append(child)
            stack.append(child)
    return found


def kill_tree(pid: int | None, pgid: int | None, proc_start: str | None) -> bool:
    """SIGKILL the run's leader, its process group and every descendant (some may live in other sessions)."""
    if not is_alive(pid, proc_start):
        return False
    below = descendants(pid)  # type: ignore[arg-type]
    for target in [pid, *below]:
        try:
            os.kill(target, signal.SIGKILL)  # type: ignore[arg-type]
        except (ProcessLookupError, PermissionError):
            pass
    if pgid:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return True


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
