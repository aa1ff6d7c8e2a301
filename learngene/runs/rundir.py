"""The run directory's contract: the name of every file in it (writers and readers import these), and readers
for what a worker writes there: metrics, final result, logs.

These readers never trust the files to be complete: a worker may be writing the last line right now, or may have
been killed in the middle of one, so torn or malformed lines are skipped rather than raised.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Every file of ``<runs root>/<run_id>/``. Nothing else in the package spells these names.
CONFIG_FILE = "config.yaml"  # the TrainConfig (written at submission)
RUN_FILE = "run.json"  # the run's identity: RunFile (written at submission; rebuilds a lost registry)
METRICS_FILE = "metrics.jsonl"  # one JSON record a line: start / train / eval (worker, rank 0)
RESULT_FILE = "result.json"  # the worker's final state (worker, rank 0)
TRAIN_LOG = "train.log"  # the learngene loggers' records (worker)
STDOUT_LOG = "stdout.log"  # the launched process's stdout (launcher)
STDERR_LOG = "stderr.log"  # the launched process's stderr (launcher)
REPRO_FILE = "repro.json"  # versions, seeds and hardware at the first launch (worker)
PROCESS_FILE = "process.json"  # the latest launch's pid / process group / start time / host / job id (manager)
TENSORBOARD_DIR = "tb"  # optional TensorBoard events (worker)
CHECKPOINT_DIR = Path("checkpoints")
LAST_CHECKPOINT = CHECKPOINT_DIR / "last.pt"  # the resume point (worker)
BEST_CHECKPOINT = CHECKPOINT_DIR / "best.pt"  # the best evaluation so far (worker)


@dataclass(frozen=True)
class RunFile:
    """What ``run.json`` holds: everything about a run that is not in its config or written by its worker.

    The registry is an index over the run directories; with this file and ``config.yaml`` in each one,
    ``learngene runs rebuild-registry`` restores every run (name, launcher, lineage, queue order) from the folders.
    """

    run_id: str
    name: str
    launcher: str = "local"
    launcher_options: dict[str, Any] = field(default_factory=dict)
    parent_run_id: str | None = None
    created: float = 0.0
    format: int = 1

    def write(self, run_dir: str | os.PathLike) -> None:
        """Write ``run.json`` atomically (LearngeneError, one line, if the folder is unwritable)."""
        from learngene.atomic import write_json_atomic

        write_json_atomic(Path(run_dir) / RUN_FILE, dataclasses.asdict(self))

    @classmethod
    def read(cls, run_dir: str | os.PathLike) -> RunFile | None:
        """The run's ``run.json``, or None when it is missing or unreadable (a run made before it existed)."""
        try:
            data = json.loads((Path(run_dir) / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("run_id"), str):
            return None
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError:
            return None


# The registry columns that find a launched run's process again; PROCESS_FILE holds them (plus ``started``).
PROCESS_FIELDS = ("pid", "pgid", "proc_start", "job_id", "host", "gpus")


def write_process(run_dir: str | os.PathLike, started: float, **fields: Any) -> None:
    """Record the latest launch's process in ``process.json`` (:data:`PROCESS_FIELDS` and ``started``).

    The registry is only an index: with this file a registry rebuilt while the run is still training keeps
    tracking it (``runs stop`` reaches it, its slot stays taken, ``runs resume`` cannot start a second worker in
    the same folder) instead of calling a live run interrupted.
    """
    from learngene.atomic import write_json_atomic

    record = {name: fields.get(name) for name in PROCESS_FIELDS}
    write_json_atomic(Path(run_dir) / PROCESS_FILE, {**record, "started": started})


def read_process(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The latest launch's process record (see :func:`write_process`), or None if absent or unreadable."""
    try:
        value = json.loads((Path(run_dir) / PROCESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(value, dict) or not (value.get("pid") or value.get("job_id")):
        return None
    return {name: value.get(name) for name in (*PROCESS_FIELDS, "started")}


def repro_file(resume_step: int | None = None) -> str:
    """``repro.json`` for the first launch, ``repro.resume-STEP.json`` for a resume at STEP."""
    return REPRO_FILE if resume_step is None else f"repro.resume-{resume_step}.json"

_TAIL_BYTES = 64 * 1024


def _parse_lines(lines: list[str]) -> list[dict[str, Any]]:
    records = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written right now, or torn by a kill
        if isinstance(value, dict):
            records.append(value)
    return records


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every complete line of ``metrics.jsonl`` (start / train / eval records), oldest first."""
    path = Path(run_dir) / METRICS_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return _parse_lines(text.splitlines())


def metrics_summary(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Latest ``step`` / ``epoch``, ``total_steps``, ``best_top1``, last ``top1`` and ``loss``, without reading the
    whole file: the first line (the start record) and the last 64 KiB are enough because every eval line carries the
    running ``best_top1``.
    """
    summary: dict[str, Any] = {"step": None, "epoch": None, "total_steps": None, "best_top1": None, "top1": None,
                               "loss": None, "eta_s": None, "images_per_s": None}  # fmt: skip
    path = Path(run_dir) / METRICS_FILE
    try:
        with open(path, "rb") as handle:
            first = handle.readline().decode("utf-8", errors="replace")
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - _TAIL_BYTES))
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return summary
    lines = tail.splitlines()
    if size > _TAIL_BYTES and lines:
        lines = lines[1:]  # the first tail line is probably cut in the middle
    records = _parse_lines([first]) + _parse_lines(lines)
    for record in records:
        kind = record.get("kind")
        if kind == "start" and record.get("total_steps") is not None:
            summary["total_steps"] = record["total_steps"]
        for key in ("step", "epoch"):
            if record.get(key) is not None:
                summary[key] = record[key]
        if kind == "train":
            for key in ("loss", "eta_s", "images_per_s"):
                summary[key] = record.get(key, summary[key])
        elif kind == "eval":
            summary["top1"] = record.get("top1", summary["top1"])
            best = record.get("best_top1", record.get("top1"))
            if best is not None and (summary["best_top1"] is None or best > summary["best_top1"]):
                summary["best_top1"] = best
    return summary


def read_result(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The worker's final ``result.json``, or None if absent or unreadable (a worker killed while writing it)."""
    try:
        value = json.loads((Path(run_dir) / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) and value.get("state") else None


def tail_lines(path: str | os.PathLike, n: int = 20) -> list[str]:
    """The last ``n`` lines of a text file (empty if missing)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            # Enough bytes for n long lines; fall back to the whole file for small ones.
            handle.seek(max(0, size - max(_TAIL_BYTES, n * 400)))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return list(deque(text.splitlines(), maxlen=n))


# A line the manager appends to a run's stderr.log before each relaunch (resume), so that a failure's stderr tail
# shows only the attempt that failed, not the traceback or log lines of an earlier one.
LAUNCH_MARKER = "=== learngene: launch "


def mark_launch(run_dir: str | os.PathLike, attempt: int, resume: bool) -> None:
    """Append the :data:`LAUNCH_MARKER` line for ``attempt`` to ``stderr.log`` when earlier attempts wrote to it."""
    import time

    path = Path(run_dir) / STDERR_LOG
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"\n{LAUNCH_MARKER}{attempt} ({'resume' if resume else 'start'}) at "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')} ===\n")


def last_attempt_tail(path: str | os.PathLike, n: int = 20) -> list[str]:
    """The last ``n`` lines of a log written since its last :data:`LAUNCH_MARKER` line (all of it without one)."""
    lines = tail_lines(path, n + 200)
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith(LAUNCH_MARKER):
            lines = lines[index + 1:]
            break
    return lines[-n:] if n else []
