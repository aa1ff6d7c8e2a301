"""The README's command-line tour, run literally from a fresh temporary folder (not the repository).

Every ``learngene ...`` command of the bash block under "## The command line" runs as
``python -m learngene <its arguments>`` (an argument list, never a shell string) with the current directory, the
runs root and the cache in ``tmp_path`` and ``HF_HUB_OFFLINE=1``. The commands stay as written except for these
cost-cutting substitutions (the same meaning, tiny step counts):

==========================  =====================================================================================
command                     substitution
==========================  =====================================================================================
``analyze``                 append ``--num-images 2``
``train`` (not ``--dry-run``)  ``--epochs 20`` -> ``--epochs 1``; append ``--max-steps 2 --img-size 28
                            --batch-size 8 --workers 0 --device cpu`` (the ``--detach`` one: ``--max-steps 60``, so
                            that ``runs stop`` finds it running)
``runs clone``              append ``--max-steps 2``
``compare``                 ``--seeds 0,1,2`` -> ``--seeds 0``; append the ``train`` flags above
``probe``                   ``--subset 60`` -> ``--subset 20``; ``--null-draws 10`` -> ``--null-draws 1``
``RUN``                     the id of the run that the tour's ``train --detach --json`` queued
==========================  =====================================================================================

Before ``runs stop RUN`` the test waits (without changing anything) until that run is running and has made a step,
so the stop finds it mid-training and it leaves a checkpoint for ``runs resume``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

TINY_TRAIN = ["--img-size", "28", "--batch-size", "8", "--workers", "0", "--device", "cpu"]
TOUR_TIMEOUT_S = 900  # per command (compare trains five runs): a hang fails the test instead of blocking the suite


def tour_commands(readme: str) -> list[list[str]]:
    """The argument lists (after ``learngene``) of the README's command-line tour, in order."""
    section = readme.split("\n## The command line", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    commands: list[list[str]] = []
    for line in re.sub(r"\\\n", " ", block).splitlines():
        current: list[str] = []
        for token in shlex.split(line, comments=True):
            ends = token.endswith(";")
            token = token.rstrip(";")
            if token:
                current.append(token)
            if ends:
                commands.append(current)
                current = []
        if current:
            commands.append(current)
    for argv in commands:
        assert argv[0] == "learngene", f"the tour holds a command that is not learngene's: {shlex.join(argv)}"
    return [argv[1:] for argv in commands]


def _replace(argv: list[str], flag: str, old: str, new: str) -> list[str]:
    out = list(argv)
    for i, token in enumerate(out[:-1]):
        if token == flag and out[i + 1] == old:
            out[i + 1] = new
    return out


def cheap(argv: list[str]) -> list[str]:
    """``argv`` with the docstring's cost-cutting substitutions."""
    command = argv[0]
    if command == "analyze":
        return [*argv, "--num-images", "2"]
    if command == "train" and "--dry-run" not in argv:
        steps = "60" if "--detach" in argv else "2"
        return [*_replace(argv, "--epochs", "20", "1"), "--max-steps", steps, *TINY_TRAIN]
    if argv[:2] == ["runs", "clone"]:
        return [*argv, "--max-steps", "2"]
    if command == "compare":
        return [*_replace(argv, "--seeds", "0,1,2", "0"), "--max-steps", "2", *TINY_TRAIN]
    if command == "probe":
        return _replace(_replace(argv, "--subset", "60", "20"), "--null-draws", "10", "1")
    return argv


def _runs(tmp_path: Path, env: dict[str, str]) -> list[dict]:
    result = subprocess.run([sys.executable, "-m", "learngene", "runs", "list", "--json"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=TOUR_TIMEOUT_S)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _wait_until_training(tmp_path: Path, env: dict[str, str], run_id: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = next(r for r in _runs(tmp_path, env) if r["run_id"] == run_id)
        if record["state"] == "running" and (record["step"] or 0) >= 1:
            return
        assert record["state"] in ("queued", "running"), f"run {run_id} ended before `runs stop`: {record}"
        time.sleep(0.5)
    pytest.fail(f"run {run_id} made no step within {timeout_s} s")


def _run_tour(commands: list[list[str]], tmp_path: Path, env: dict[str, str]) -> str | None:
    """Run the tour's commands in order; returns the id of the run that ``train --detach --json`` queued."""
    run_id = None
    for argv in commands:
        argv = cheap(argv)
        if "RUN" in argv:
            assert run_id, "the tour names RUN before any `train --detach --json` queued one"
            if argv[:2] == ["runs", "stop"]:
                _wait_until_training(tmp_path, env, run_id)
            argv = [run_id if token == "RUN" else token for token in argv]
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "learngene", *argv], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=TOUR_TIMEOUT_S)  # fmt: skip
        print(f"{time.monotonic() - started:6.1f} s  learngene {shlex.join(argv)}")
        assert result.returncode == 0, (
            f"`learngene {shlex.join(argv)}` exited {result.returncode}\n"
            f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
        )
        if argv[0] == "train" and "--detach" in argv and "--json" in argv:
            run_id = json.loads(result.stdout)["run_id"]
    return run_id


def _stop_leftover_runs(tmp_path: Path, env: dict[str, str]) -> None:
    """A failed tour must not leave workers training in the background."""
    for record in _runs(tmp_path, env):
        if record["state"] in ("queued", "running"):
            subprocess.run([sys.executable, "-m", "learngene", "runs", "stop", record["run_id"], "--force", "--wait"],
                           cwd=tmp_path, env=env, capture_output=True, timeout=TOUR_TIMEOUT_S)  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(1800)  # about 4 minutes on a quiet 2-core machine; the suite-wide 600 s is too tight when busy
def test_the_readme_command_line_tour_runs_as_written(tmp_path):
    commands = tour_commands(README.read_text(encoding="utf-8"))
    assert len(commands) >= 15, "the tour lost its commands (did the README section move?)"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LEARNGENE_RUNS_DIR": str(tmp_path / "runs"),
           "LEARNGENE_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}  # fmt: skip
    try:
        run_id = _run_tour(commands, tmp_path, env)
    finally:
        _stop_leftover_runs(tmp_path, env)

    stats = json.loads((tmp_path / "stats.json").read_text())
    assert "mean_attention_distance" in stats
    assert (tmp_path / "learngene" / "learngene.json").is_file()
    assert json.loads((tmp_path / "desc" / "config.json").read_text())
    assert (tmp_path / "desc-authors" / "config.json").is_file()
    assert (tmp_path / "cmp" / "results.json").is_file() and (tmp_path / "probe.json").is_file()
    runs = _runs(tmp_path, env)
    assert run_id in {r["run_id"] for r in runs}
    assert {r["parent_run_id"] for r in runs} >= {run_id}, "runs clone RUN made no run"
    assert all(r["state"] == "succeeded" for r in runs), [(r["run_id"], r["state"]) for r in runs]
