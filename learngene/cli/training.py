"""``learngene train``: validate a training config, queue it in the run registry and launch it.

In the foreground the command follows the run with a progress bar until it ends (Ctrl-C asks it to checkpoint and
stop); with ``--detach`` it returns at once (``--json`` prints ``{"run_id": ..., "pid": ...}``). Either way the run
is a separate process recorded in the registry, so ``learngene runs ...`` and the app see it too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import yaml

from learngene.errors import LearngeneError

LAUNCHER_CHOICES = ("local", "torchrun", "slurm")


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip().lstrip("-").replace("-", "_"), yaml.safe_load(value)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``--runs-dir`` (shared by every run command)."""
    parser.add_argument(
        "--runs-dir", help="runs root (default: $LEARNGENE_RUNS_DIR or the user data directory)"
    )


def add_follow_arguments(parser: argparse.ArgumentParser) -> None:
    """``--detach`` / ``--json`` for commands that launch a run."""
    parser.add_argument("--detach", action="store_true", help="return at once instead of following the run")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def add_launcher_arguments(parser: argparse.ArgumentParser) -> None:
    """Launcher choice and its options (torchrun rendezvous, SLURM resources)."""
    group = parser.add_argument_group("launcher")
    group.add_argument("--launcher", choices=LAUNCHER_CHOICES, default="local",
                       help="local process (default), torchrun over this machine's GPUs / several nodes, or SLURM")  # fmt: skip
    group.add_argument("--slots", type=int, default=None,
                       help="runs allowed at once on this machine (default: one per GPU, else 1)")  # fmt: skip
    group.add_argument("--nproc-per-node", type=int, help="torchrun: processes (GPUs) per node")
    group.add_argument("--nnodes", type=int, help="torchrun: number of nodes")
    group.add_argument("--node-rank", type=int, help="torchrun: this node's rank")
    group.add_argument("--rdzv-endpoint", help="torchrun: rendezvous HOST:PORT (several nodes)")
    group.add_argument("--rdzv-id", help="torchrun: rendezvous job id")
    group.add_argument("--rdzv-backend", help="torchrun: rendezvous backend (default c10d)")
    group.add_argument("--partition", help="slurm: partition")
    group.add_argument("--nodes", type=int, help="slurm: number of nodes")
    group.add_argument("--gpus-per-node", type=int, help="slurm: GPUs per node")
    group.add_argument("--time-min", type=int, help="slurm: time limit in minutes")
    group.add_argument("--cpus-per-task", type=int, help="slurm: CPUs per task")
    group.add_argument("--mem-gb", type=float, help="slurm: memory per node in GB")
    group.add_argument("--sbatch", action="append", type=_key_value, metavar="KEY=VALUE",
                       help="slurm: extra sbatch option, repeatable (e.g. account=proj, qos=high)")  # fmt: skip
    group.add_argument("--cluster", choices=("slurm", "local"),
                       help="slurm: submitit cluster (local runs the SLURM-shaped job on this machine)")  # fmt: skip


_LAUNCHER_FLAGS = {
    "torchrun": ("nproc_per_node", "nnodes", "node_rank", "rdzv_endpoint", "rdzv_id", "rdzv_backend"),
    "slurm": ("partition", "nodes", "gpus_per_node", "time_min", "cpus_per_task", "mem_gb", "cluster"),
}


def launcher_options(args: argparse.Namespace) -> dict[str, Any]:
    """The launcher keyword arguments given on the command line; flags of another launcher are an error."""
    options: dict[str, Any] = {}
    for launcher, names in _LAUNCHER_FLAGS.items():
        for name in names:
            value = getattr(args, name, None)
            if value is None:
                continue
            if launcher != args.launcher:
                flag = "--" + name.replace("_", "-")
                raise LearngeneError(f"{flag} is a {launcher} option; add --launcher {launcher}")
            options[name] = value
    if getattr(args, "sbatch", None):
        if args.launcher != "slurm":
            raise LearngeneError("--sbatch is a slurm option; add --launcher slurm")
        options["extra"] = dict(args.sbatch)
    return options


def register(subparsers: argparse._SubParsersAction) -> None:
    from learngene.training.config import add_train_arguments

    parser = subparsers.add_parser(
        "train",
        help="fine-tune a descendant (or a timm model) as a tracked run",
        description="Validate the config, queue the run in the registry and launch it; follow it with a progress "
        "bar, or return at once with --detach.",
    )
    add_train_arguments(parser)
    group = parser.add_argument_group("run")
    group.add_argument("--name", help="a label for the run (default: its id)")
    add_run_arguments(group)
    add_follow_arguments(group)
    add_launcher_arguments(parser)
    parser.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from learngene.runs import RunManager
    from learngene.training.config import config_from_args

    options = launcher_options(args)
    config = config_from_args(args)  # validates: bad configs never reach the registry
    manager = RunManager(args.runs_dir, slots=args.slots)
    run_id = manager.submit(config, name=args.name, launcher=args.launcher, launcher_options=options)
    return launched(manager, run_id, detach=args.detach, as_json=args.json)


def launched(manager, run_id: str, detach: bool, as_json: bool) -> int:
    """Report a just-queued run: at once with ``detach``, else by following it to the end."""
    record = manager.get(run_id, schedule=False)
    if detach:
        if as_json:
            print(json.dumps({"run_id": run_id, "pid": record["pid"], "state": record["state"],
                              "run_dir": record["run_dir"]}))  # fmt: skip
        else:
            where = f"pid {record['pid']}" if record["pid"] else record["state"]
            print(
                f"run {run_id} {record['state']} ({where}); follow it with: learngene runs logs {run_id} --follow"
            )
        return 0
    return follow(manager, run_id, as_json=as_json)


def follow(manager, run_id: str, as_json: bool = False, poll_s: float = 0.5) -> int:
    """Show a progress bar for ``run_id`` until it ends; Ctrl-C requests a graceful stop, a second one detaches.

    Returns the worker's exit code convention: 0 succeeded, 3 stopped, 1 failed (130 when left running).
    """
    from tqdm import tqdm

    from learngene.runs.manager import EXIT_CODES
    from learngene.runs.registry import FINAL_STATES, QUEUED

    bar = None
    stopping = False
    announced_queue = False
    try:
        while True:
            try:
                record = manager.get(run_id)
                if record["state"] == QUEUED and not announced_queue:
                    print(f"run {run_id} is queued until a slot frees", file=sys.stderr)
                    announced_queue = True
                if record["total_steps"] and bar is None:
                    bar = tqdm(total=record["total_steps"], desc=record["name"], unit="step", file=sys.stderr,
                               dynamic_ncols=True, disable=None)  # fmt: skip
                if bar is not None and record["step"] is not None:
                    bar.n = min(record["step"], bar.total)
                    postfix = {
                        k: f"{record[k]:.4g}" for k in ("loss", "top1", "best_top1") if record[k] is not None
                    }
                    bar.set_postfix(postfix, refresh=False)
                    bar.refresh()
                if record["state"] in FINAL_STATES:
                    break
                time.sleep(poll_s)
            except KeyboardInterrupt:
                if stopping:
                    print(f"left run {run_id} stopping in the background", file=sys.stderr)
                    return 130
                stopping = True
                print(f"\nstopping run {run_id} at its next step (Ctrl-C again to leave it)", file=sys.stderr)
                manager.stop(run_id)
    finally:
        if bar is not None:
            bar.close()
    print_outcome(record, as_json)
    return EXIT_CODES.get(record["state"], 1)


def print_outcome(record: dict[str, Any], as_json: bool) -> None:
    """One-line summary of a finished run (or its JSON record)."""
    if as_json:
        print(json.dumps(record, default=str))
        return
    best = f", best top-1 {record['best_top1']:.2f}" if record.get("best_top1") is not None else ""
    line = f"run {record['run_id']} {record['state']} at step {record.get('step')}{best}"
    print(line)
    if record["state"] != "succeeded" and (record.get("error_tail") or record.get("message")):
        print(record.get("error_tail") or record.get("message"), file=sys.stderr)
