"""The registry: sortable unique ids, run references, compare-and-set updates, and no double launch across processes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import fake_config, wait_for

from learngene.errors import LearngeneError
from learngene.runs import RunManager
from learngene.runs.registry import QUEUED, RUNNING, Registry, new_run_id


def test_run_ids_sort_by_time_and_are_unique():
    ids = [new_run_id(1_700_000_000.0 + i) for i in range(3)]
    assert ids == sorted(ids)
    assert len({new_run_id(1_700_000_000.0) for _ in range(200)}) == 200
    assert new_run_id(1_700_000_000.0).startswith("20231114-221320-")


def _row(run_id: str, name: str, created: float) -> dict:
    return {"run_id": run_id, "name": name, "state": QUEUED, "created": created, "queued_at": created,
            "run_dir": "/nowhere", "config_json": "{}"}  # fmt: skip


def test_resolve_accepts_ids_prefixes_and_names(tmp_path):
    registry = Registry(tmp_path)
    registry.insert(_row("20260101-000000-aaaaaa", "alpha", 1.0))
    registry.insert(_row("20260101-000000-aabbbb", "beta", 2.0))
    assert registry.resolve("20260101-000000-aaaaaa") == "20260101-000000-aaaaaa"
    assert registry.resolve("beta") == "20260101-000000-aabbbb"
    assert registry.resolve("20260101-000000-aab") == "20260101-000000-aabbbb"
    with pytest.raises(LearngeneError, match="matches 2 runs"):
        registry.resolve("20260101-000000-aa")
    with pytest.raises(LearngeneError, match="no run 'gamma'"):
        registry.resolve("gamma")
    assert [row["name"] for row in registry.all()] == ["alpha", "beta"]


def test_a_name_that_is_also_another_runs_id_prefix_is_ambiguous(tmp_path):
    """It silently meant the named run, so `runs stop 20260102` could stop a run other than the one whose id the
    user was abbreviating."""
    registry = Registry(tmp_path)
    registry.insert(_row("20260101-000000-aaaaaa", "20260102", 1.0))
    registry.insert(_row("20260102-000000-bbbbbb", "beta", 2.0))
    with pytest.raises(LearngeneError, match="matches 2 runs") as raised:
        registry.resolve("20260102")
    assert "20260101-000000-aaaaaa" in str(raised.value) and "20260102-000000-bbbbbb" in str(raised.value)
    assert registry.resolve("20260102-0") == "20260102-000000-bbbbbb"
    registry.insert(_row("20260103-000000-cccccc", "20260103", 3.0))  # a name that prefixes its own id: one run
    assert registry.resolve("20260103") == "20260103-000000-cccccc"


def test_updates_are_compare_and_set(tmp_path):
    registry = Registry(tmp_path)
    registry.insert(_row("r1", "one", 1.0))
    with registry.transaction() as conn:
        assert registry.update(conn, "r1", where={"state": QUEUED}, state=RUNNING, pid=42)
        # A second claimer that read "queued" before the first committed changes nothing.
        assert not registry.update(conn, "r1", where={"state": QUEUED}, state=RUNNING, pid=43)
    assert registry.get("r1")["pid"] == 42
    with pytest.raises(ValueError):
        with registry.transaction() as conn:
            registry.update(conn, "r1", bogus=1)


def test_a_failed_transaction_rolls_back(tmp_path):
    registry = Registry(tmp_path)
    with pytest.raises(RuntimeError):
        with registry.transaction() as conn:
            registry.insert(_row("r1", "one", 1.0), conn)
            raise RuntimeError("boom")
    assert registry.all() == []


_SCHEDULER = """
import sys, time
from learngene.runs import RunManager
manager = RunManager(sys.argv[1], slots=2)
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    manager.schedule()
"""


def test_two_processes_scheduling_one_queue_never_double_launch(runs_root, fake_worker):
    manager = RunManager(runs_root, slots=2)
    options = {"worker_module": fake_worker}
    run_ids = [
        manager.submit(fake_config(fake_steps=6, fake_step_s=0.05), launcher_options=options, schedule=False)
        for _ in range(5)
    ]
    schedulers = [subprocess.Popen([sys.executable, "-c", _SCHEDULER, str(runs_root), "6"]) for _ in range(3)]
    try:
        wait_for(lambda: all(manager.get(r, schedule=False)["state"] == "succeeded" for r in run_ids), 60)
    finally:
        for process in schedulers:
            process.kill()
            process.wait()
    spans = []
    for run_id in run_ids:
        lines = (manager.run_dir(run_id) / "launches.txt").read_text().split("\n")
        starts = [line for line in lines if line and not line.startswith("end")]
        ends = [line for line in lines if line.startswith("end")]
        assert len(starts) == 1, f"run {run_id} was launched {len(starts)} times"
        spans.append((float(starts[0].split()[1]), float(ends[0].split()[1])))
        assert manager.get(run_id, schedule=False)["attempts"] == 1
    # Never more than the two slots at once (a small tolerance for process exit after the end mark).
    for start, _ in spans:
        overlapping = sum(1 for s, e in spans if s <= start + 1e-3 and e > start + 0.05)
        assert overlapping <= 2
    # And launched in submission order.
    started = [manager.get(r, schedule=False)["started"] for r in run_ids]
    assert started == sorted(started)


def test_an_older_database_gains_new_columns(tmp_path):
    import sqlite3

    with sqlite3.connect(tmp_path / "runs.db") as conn:
        conn.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, name TEXT, state TEXT NOT NULL, created REAL NOT NULL,"
                     " run_dir TEXT NOT NULL, config_json TEXT NOT NULL)")  # fmt: skip
        conn.execute("INSERT INTO runs VALUES ('r1', 'old', 'succeeded', 1.0, '/x', '{}')")
    registry = Registry(tmp_path)
    row = registry.get("r1")
    assert row["gpus"] is None and row["attempts"] == 0 and row["launcher"] == "local"
