"""Fixtures for the run-manager tests: a private runs root, a fake worker, and no processes left behind."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from learngene.errors import LearngeneError
from learngene.runs import liveness
from learngene.runs.registry import Registry

# A stand-in for learngene.training.worker with the same contract (metrics.jsonl, checkpoints/last.pt, result.json,
# SIGTERM -> checkpoint and exit 3, torchrun ranks leaving together) that costs milliseconds instead of importing
# torch. Its behaviour comes from the run's config: model_kwargs carries fake_steps, fake_step_s and fake_fail_at.
FAKE_WORKER = textwrap.dedent(
    """
    import json, os, signal, subprocess, sys, time
    from pathlib import Path

    import yaml

    run_dir = Path(sys.argv[1])
    resume = "--resume" in sys.argv[2:]
    rank = int(os.environ.get("RANK", "0"))
    if rank != 0:  # torchrun: other ranks only wait for the stop signal, which each rank must receive itself
        got = []
        signal.signal(signal.SIGTERM, lambda *_: got.append(1))
        deadline = time.time() + 120
        while not got and time.time() < deadline:
            time.sleep(0.02)
        stopped_at = time.time()
        (run_dir / f"rank{rank}.stopped").write_text("1")
        # Leave together with rank 0, once it has written its result, as the real worker's ranks do: torchrun takes
        # an early exit 3 for a failure and SIGTERMs rank 0's process group, its loader included.
        result = run_dir / "result.json"
        while time.time() < deadline and not (result.exists() and result.stat().st_mtime >= stopped_at):
            time.sleep(0.02)
        sys.exit(3)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    opts = config.get("model_kwargs") or {}
    steps = int(opts.get("fake_steps", config.get("max_steps") or 10))
    step_s = float(opts.get("fake_step_s", 0.02))
    fail_at = opts.get("fake_fail_at")
    stop = False

    def on_signal(signum, frame):
        global stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with open(run_dir / "launches.txt", "a") as handle:
        handle.write(f"{os.getpid()} {time.time()}\\n")
    ckpt = run_dir / "checkpoints" / "last.pt"
    start = json.loads(ckpt.read_text())["step"] if resume else 0
    metrics = open(run_dir / "metrics.jsonl", "a")

    def emit(**record):
        metrics.write(json.dumps(record) + "\\n")
        metrics.flush()

    def finish(state, code, message, step):
        if loader is not None:
            loader.kill()
        (run_dir / "result.json").write_text(json.dumps(
            {"state": state, "message": message, "step": step, "epoch": 0, "best_top1": best, "exit_code": code}))
        with open(run_dir / "launches.txt", "a") as handle:
            handle.write(f"end {time.time()}\\n")
        sys.exit(code)

    def save(step):
        ckpt.parent.mkdir(exist_ok=True)
        ckpt.write_text(json.dumps({"step": step}))

    best = None
    # Like a DataLoader worker: a child in the worker's process group that must survive a graceful stop.
    loader = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]) if opts.get("fake_loader") else None
    emit(kind="start", total_steps=steps, step=start, epoch=0)
    print(f"starting at step {start}", flush=True)
    print(f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}", flush=True)
    for step in range(start + 1, steps + 1):
        time.sleep(step_s)
        emit(kind="train", step=step, epoch=0, loss=1.0 / step, lr=0.1, images_per_s=100.0, eta_s=1.0)
        if step % 2 == 0:
            top1 = 100.0 * step / steps
            best = max(best or 0.0, top1)
            emit(kind="eval", step=step, epoch=0, top1=top1, top5=100.0, best_top1=best)
            save(step)
        if loader is not None and loader.poll() is not None:
            finish("failed", 1, "RuntimeError: DataLoader worker is killed by signal", step)
        if fail_at is not None and step == int(fail_at):
            print("Traceback (most recent call last):\\nRuntimeError: fake failure", file=sys.stderr, flush=True)
            finish("failed", 1, "RuntimeError: fake failure", step)
        if stop:
            save(step)
            finish("stopped", 3, f"stopped at step {step}", step)
    save(steps)
    finish("succeeded", 0, "done", steps)
    """
)


def fake_config(**fake) -> dict:
    """A valid TrainConfig dict whose model_kwargs drive the fake worker."""
    return {
        "model": "vit_tiny_patch16_224",
        "dataset": "digits",
        "img_size": 32,
        "epochs": 1,
        "batch_size": 8,
        "device": "cpu",
        "model_kwargs": {"fake_steps": 10, "fake_step_s": 0.02, **fake},
    }


def wait_for(predicate, timeout_s: float = 30.0, poll_s: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {predicate}")


def _kill_everything(root: Path, spare: set[int]) -> None:
    """Kill the runs' process groups and every process this test left below pytest, except ``spare``."""
    try:
        rows = Registry(root).all() if (root / "runs.db").exists() else []
    except LearngeneError:  # a test that damaged the registry on purpose: the process sweep below still runs
        rows = []
    if rows:
        for row in rows:
            if row["pgid"] and liveness.is_alive(row["pid"], row["proc_start"]):
                try:
                    os.killpg(row["pgid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass
    spare = spare | _interpreter_helpers()
    left = [process for process in psutil.Process().children(recursive=True) if process.pid not in spare]
    for process in left:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=5)
    liveness.reap_children()


def _interpreter_helpers() -> set[int]:
    """Pytest's own long-lived helpers: multiprocessing's and loky's resource trackers.

    Killing one (as a sweep of every child did) makes the next user start another, which warns "resource_tracker:
    process died unexpectedly" and prints a KeyError at interpreter exit for each semaphore it never saw registered.
    """
    from multiprocessing import resource_tracker

    trackers = [resource_tracker._resource_tracker]
    loky = sys.modules.get("joblib.externals.loky.backend.resource_tracker")
    if loky is not None:
        trackers.append(loky._resource_tracker)
    return {pid for pid in (getattr(tracker, "_pid", None) for tracker in trackers) if pid}


@pytest.fixture
def fake_worker(tmp_path, monkeypatch) -> str:
    """Module name of the fake worker, importable by children through PYTHONPATH."""
    folder = tmp_path / "fakemods"
    folder.mkdir()
    (folder / "fake_worker.py").write_text(FAKE_WORKER)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    )
    return "fake_worker"


@pytest.fixture
def runs_root(tmp_path, monkeypatch):
    """A private runs root; every process the test started is killed at teardown."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = tmp_path / "runs"
    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(root))
    before = {process.pid for process in psutil.Process().children(recursive=True)}
    yield root
    _kill_everything(root, spare=before)
