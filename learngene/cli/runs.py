"""``learngene runs list|show|logs|stop|resume|clone|rebuild-registry``: the run registry from the command line.

``list``, ``show`` and ``logs`` only read: they never launch a run or take the registry's write lock (the runs
root's scheduler process advances the queue and notices ended runs; a read starts it if runs are active and it is
missing). ``stop``, ``resume`` and ``clone`` write.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from learngene.cli.training import (
    _key_value,
    add_follow_arguments,
    add_run_arguments,
    launched,
)
from learngene.errors import LearngeneError
from learngene.runs.registry import STATES

# Fields of `runs list --json`: enough to script against without the full config of every run.
LIST_FIELDS = ("run_id", "name", "state", "pid", "step", "total_steps", "epoch", "best_top1", "launcher",
               "created", "started", "ended", "exit_code", "parent_run_id", "run_dir")  # fmt: skip


def _missing_root(args: argparse.Namespace) -> str | None:
    """The runs root named by --runs-dir or $LEARNGENE_RUNS_DIR when that folder does not exist, else None.

    The commands that act on existing runs must not create it: a typo would become an empty runs root (and a
    runs.db) wherever it points, reported as "no runs". The default root is created on first use as before.
    """
    from learngene.paths import RUNS_ENV

    given = args.runs_dir or os.environ.get(RUNS_ENV)
    return given if given and not Path(given).is_dir() else None


def _manager(args: argparse.Namespace):
    from learngene.runs import RunManager

    missing = _missing_root(args)
    if missing:
        which = f"no run {args.run!r}: " if getattr(args, "run", None) else ""
        raise LearngeneError(f"{which}no runs root at {missing} (no run has been launched there); check "
                             "--runs-dir (or $LEARNGENE_RUNS_DIR)")  # fmt: skip
    return RunManager(args.runs_dir)


def _when(stamp: float | None) -> str:
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M") if stamp else "-"


def _fmt(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("runs", help="list, inspect, stop, resume and clone training runs",
                                   description="The run registry: every run launched by the app or the CLI.")  # fmt: skip
    sub = parser.add_subparsers(dest="runs_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: (parser.print_help(), 0)[1])

    p = sub.add_parser("list", help="all runs, newest first")
    add_run_arguments(p)
    p.add_argument("--state", action="append", choices=STATES, help="only runs in this state (repeatable)")
    p.add_argument("--json", action="store_true", help="a JSON list of run objects")
    p.set_defaults(func=run_list)

    p = sub.add_parser("show", help="everything about one run")
    p.add_argument("run", help="run id, unique id prefix or name")
    add_run_arguments(p)
    p.add_argument("--json", action="store_true", help="the full record as JSON")
    p.set_defaults(func=run_show)

    p = sub.add_parser("logs", help="a run's log")
    p.add_argument("run", help="run id, unique id prefix or name")
    add_run_arguments(p)
    p.add_argument("-n", "--lines", type=int, default=50, help="lines from the end (default 50; 0 or more)")
    p.add_argument("--stream", choices=("train", "stdout", "stderr"), default="train", help="which log")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the run ends")
    p.set_defaults(func=run_logs)

    p = sub.add_parser("stop", help="checkpoint and stop a run (a queued run is dropped from the queue)")
    p.add_argument("run", help="run id, unique id prefix or name")
    add_run_arguments(p)
    p.add_argument("--force", action="store_true", help="kill at once (SIGKILL) instead of a graceful stop")
    p.add_argument("--wait", action="store_true", help="wait until it has stopped")
    p.set_defaults(func=run_stop)

    p = sub.add_parser("resume", help="continue a stopped or failed run from its last checkpoint")
    p.add_argument("run", help="run id, unique id prefix or name")
    add_run_arguments(p)
    add_follow_arguments(p)
    p.set_defaults(func=run_resume)

    p = sub.add_parser("clone", help="a new run from an old run's config with changes",
                       description="Start a new run from RUN's config. Changes are KEY=VALUE pairs of config fields "
                       "(e.g. lr=0.001 epochs=50) and/or the usual `learngene train` flags.")  # fmt: skip
    p.add_argument("run", help="run id, unique id prefix or name")
    p.add_argument("overrides", nargs="*", type=_key_value, metavar="KEY=VALUE", help="config changes")
    p.add_argument("--name", help="a label for the new run")
    add_run_arguments(p)
    add_follow_arguments(p)
    from learngene.training.config import add_train_arguments

    add_train_arguments(p)  # their defaults are SUPPRESS: only flags actually given become overrides
    p.set_defaults(func=run_clone)

    p = sub.add_parser("rebuild-registry", help="rebuild a lost or damaged runs.db from the run directories",
                       description="Rebuild the run index (runs.db) from the run directories under the runs root. "
                       "Each run's state comes from its result.json; a run without one becomes stopped (with a "
                       "checkpoint: resumable) or failed; a run whose process still trains stays running and "
                       "tracked. The old runs.db is kept as runs.db.damaged-TIME.")  # fmt: skip
    add_run_arguments(p)
    p.set_defaults(func=run_rebuild_registry)


def run_list(args: argparse.Namespace) -> int:
    records = _manager(args).list()
    if args.state:
        records = [r for r in records if r["state"] in args.state]
    if args.json:
        print(json.dumps([{k: r.get(k) for k in LIST_FIELDS} for r in records]))
        return 0
    if not records:
        print("no runs")
        return 0
    header = f"{'RUN ID':<22} {'NAME':<20} {'STATE':<9} {'STEP':>11} {'BEST TOP1':>9} {'LAUNCHER':<8} {'PID':>7}  CREATED"
    print(header)
    for r in records:
        step = _fmt(r["step"]) + (f"/{r['total_steps']}" if r["total_steps"] else "")
        print(f"{r['run_id']:<22} {r['name'][:20]:<20} {r['state']:<9} {step:>11} {_fmt(r['best_top1'], '.2f'):>9} "
              f"{r['launcher']:<8} {_fmt(r['pid']):>7}  {_when(r['created'])}")  # fmt: skip
    return 0


def run_show(args: argparse.Namespace) -> int:
    manager = _manager(args)
    record = manager.get(args.run)
    if args.json:
        print(json.dumps(record, default=str))
        return 0
    rows = [
        ("run", record["run_id"]),
        ("name", record["name"]),
        ("state", record["state"]),
        ("launcher", f"{record['launcher']} {record['launcher_options'] or ''}".strip()),
        ("pid / job", record["pid"] or record["job_id"]),
        ("host", record["host"]),
        ("created", _when(record["created"])),
        ("started", _when(record["started"])),
        ("ended", _when(record["ended"])),
        ("step", _fmt(record["step"]) + (f" / {record['total_steps']}" if record["total_steps"] else "")),
        ("epoch", record["epoch"]),
        ("best top-1", _fmt(record["best_top1"], ".2f")),
        ("exit code", record["exit_code"]),
        ("message", record["message"]),
        ("cloned from", record["parent_run_id"]),
        ("checkpoint", "yes" if record["has_checkpoint"] else "no"),
        ("directory", record["run_dir"]),
    ]
    for label, value in rows:
        if value not in (None, "", "-") or label in ("state", "step"):
            print(f"{label:<12} {value}")
    print("command      " + shlex.join(record["command"]))
    print("launch       " + "\n             ".join(manager.describe(record["run_id"])))
    if record["error_tail"]:
        print("\n" + record["error_tail"])
    return 0


def run_logs(args: argparse.Namespace) -> int:
    from learngene.runs.registry import FINAL_STATES

    if args.lines < 0:
        raise LearngeneError(f"-n/--lines must be 0 or more (lines from the end), got {args.lines}")
    manager = _manager(args)
    run_id = manager.resolve(args.run)
    for line in manager.log_tail(run_id, args.lines, args.stream):
        print(line)
    if not args.follow:
        return 0
    path = manager.log_path(run_id, args.stream)
    position = path.stat().st_size if path.exists() else 0
    try:
        while True:
            # The train log appears only once the worker starts: switch to it from the stderr fallback.
            current = manager.log_path(run_id, args.stream)
            if current != path:
                path, position = current, 0
            if path.exists():
                with open(path, "rb") as handle:
                    handle.seek(position)
                    chunk = handle.read()
                position += len(chunk)
                if chunk:
                    sys.stdout.write(chunk.decode("utf-8", errors="replace"))
                    sys.stdout.flush()
            if manager.get(run_id)["state"] in FINAL_STATES and not chunk_pending(path, position):
                return 0
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0


def chunk_pending(path, position: int) -> bool:
    """Whether ``path`` has grown beyond ``position`` (more to print before stopping)."""
    return path.exists() and path.stat().st_size > position


def run_stop(args: argparse.Namespace) -> int:
    from learngene.runs.registry import FINAL_STATES, RUNNING

    manager = _manager(args)
    run_id = manager.resolve(args.run)
    state = manager.stop(run_id, force=args.force)
    if args.wait and state not in FINAL_STATES:
        state = manager.wait(run_id)["state"]
    verb = "stopping" if state == RUNNING else state
    print(f"run {run_id} {verb}")
    return 0


def run_resume(args: argparse.Namespace) -> int:
    manager = _manager(args)
    run_id = manager.resolve(args.run)
    manager.resume(run_id)
    return launched(manager, run_id, detach=args.detach, as_json=args.json)


def run_clone(args: argparse.Namespace) -> int:
    from learngene.training.config import TrainConfig

    if getattr(args, "config", None):
        raise LearngeneError(
            "clone takes changes (KEY=VALUE or flags), not --config; use `learngene train --config`"
        )
    manager = _manager(args)
    fields = set(TrainConfig.__dataclass_fields__)
    overrides = dict(args.overrides)
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise LearngeneError(f"unknown config field(s) {', '.join(unknown)}; see `learngene train --help`")
    for name in fields:  # flags given as `--lr 0.01` (absent flags leave no attribute)
        if name != "name" and hasattr(args, name):
            overrides[name] = getattr(args, name)
    if "model_kwargs" in overrides and isinstance(overrides["model_kwargs"], list):
        base = manager.config(args.run).model_kwargs
        overrides["model_kwargs"] = {**base, **dict(overrides["model_kwargs"])}
    run_id = manager.clone(args.run, overrides, name=args.name)
    return launched(manager, run_id, detach=args.detach, as_json=args.json)


def run_rebuild_registry(args: argparse.Namespace) -> int:
    from learngene.paths import runs_dir
    from learngene.runs.registry import rebuild_registry

    given = _missing_root(args)
    if given:
        raise LearngeneError(f"no runs root at {given}; give --runs-dir the folder that holds your runs")
    try:
        root = runs_dir(args.runs_dir)
    except OSError as error:
        raise LearngeneError(f"cannot open the runs root {args.runs_dir}: {error.strerror or error}") from None
    count, kept = rebuild_registry(root)
    print(f"rebuilt {root / 'runs.db'} with {count} run(s) from the run directories"
          + (f"; the old file is kept as {kept.name}" if kept else ""))  # fmt: skip
    return 0
