"""Process liveness (psutil): pid-reuse guard, zombies, whole-tree kills, against what the kernel reports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import wait_for

from learngene.runs import liveness

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the reference values come from /proc")


def _kernel_ticks(pid: int) -> str:
    """Field 22 of /proc/PID/stat (start time in clock ticks): what records stored before psutil."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rfind(")") + 2 :].split()[19]


def _sleeper(*extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *extra])


def test_a_live_process_is_recognised_by_its_start_time_and_a_reused_pid_is_not():
    process = _sleeper()
    try:
        start = liveness.process_start_time(process.pid)
        assert liveness.is_alive(process.pid, start) and liveness.is_alive(process.pid)
        assert not liveness.is_alive(process.pid, f"{float(start) - 5:.2f}")  # same pid, another process
        assert liveness.is_alive(process.pid, _kernel_ticks(process.pid))  # a record from before psutil
        assert not liveness.is_alive(process.pid, str(int(_kernel_ticks(process.pid)) + 500))
    finally:
        process.kill()
        process.wait()
    assert not liveness.is_alive(process.pid, start) and liveness.process_start_time(process.pid) is None


def test_a_zombie_is_dead():
    process = _sleeper()  # not tracked by liveness: nothing reaps it behind the test's back
    try:
        process.send_signal(signal.SIGKILL)
        wait_for(lambda: Path(f"/proc/{process.pid}/stat").read_text().split(") ")[1][0] == "Z")
        assert not liveness.is_alive(process.pid)
    finally:
        process.wait()


def test_kill_tree_reaches_descendants_in_other_sessions():
    # The leader starts a grandchild in its own session (like torchrun's ranks) and prints its pid.
    code = ("import subprocess, sys, time; "
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True); "
            "print(child.pid, flush=True); time.sleep(60)")
    leader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    grandchild = int(leader.stdout.readline())
    try:
        assert os.getsid(grandchild) != os.getsid(leader.pid) and liveness.descendants(leader.pid) == [grandchild]
        assert liveness.kill_tree(leader.pid, leader.pid, liveness.process_start_time(leader.pid))
        leader.wait(timeout=10)
        wait_for(lambda: not liveness.is_alive(grandchild), timeout_s=10)
    finally:
        for pid in (leader.pid, grandchild):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        leader.wait()
        leader.stdout.close()
    assert not liveness.kill_tree(leader.pid, None, None)  # nothing left to kill


def test_kill_own_children_leaves_the_caller_alone_and_no_child_behind():
    # In a child Python: killing the test process's own children would hit other tests' processes.
    code = ("import os, subprocess, sys; from learngene.runs import liveness; "
            "kids = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']) for _ in range(2)]; "
            "killed = liveness.kill_own_children(grace_s=0.2); "
            "print(sorted(killed) == sorted(k.pid for k in kids), liveness.descendants(os.getpid()))")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "[]"] and time.monotonic() - started < 30
