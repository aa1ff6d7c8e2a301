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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from learngene.errors import LearngeneError
from learngene.runs.launchers import SLURM_CLUSTERS as SUBMITIT_CLUSTERS  # the launcher validates against it
from learngene.training.config import config_to_argv, yaml_text

LAUNCHER_CHOICES = ("local", "torchrun", "slurm")
# submitit clusters the SLURM launcher accepts (its in-process "debug" cluster only runs a job when its result is
# awaited, which a detached run never does). The app's choice list comes from here too.
SBATCH_OPTION = "extra"  # the launcher option that --sbatch KEY=VALUE fills


@dataclass(frozen=True)
class LauncherFlag:
    """One launcher option on the command line: ``--nproc-per-node`` is the torchrun option ``nproc_per_node``."""

    name: str
    launcher: str
    type: Callable[[str], Any]
    help: str
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


# The one table of launcher flags: parsed by add_launcher_arguments, rendered by launcher_argv.
LAUNCHER_FLAGS = (
    LauncherFlag("nproc_per_node", "torchrun", int, "processes (GPUs) per node"),
    LauncherFlag("nnodes", "torchrun", int, "number of nodes"),
    LauncherFlag("node_rank", "torchrun", int, "this node's rank"),
    LauncherFlag("rdzv_endpoint", "torchrun", str, "rendezvous HOST:PORT (several nodes)"),
    LauncherFlag("rdzv_id", "torchrun", str, "rendezvous job id"),
    LauncherFlag("rdzv_backend", "torchrun", str, "rendezvous backend (default c10d)"),
    LauncherFlag("partition", "slurm", str, "partition"),
    LauncherFlag("nodes", "slurm", int, "number of nodes"),
    LauncherFlag("gpus_per_node", "slurm", int, "GPUs per node"),
    LauncherFlag("time_min", "slurm", int, "time limit in minutes"),
    LauncherFlag("cpus_per_task", "slurm", int, "CPUs per task"),
    LauncherFlag("mem_gb", "slurm", float, "memory per node in GB"),
    LauncherFlag("cluster", "slurm", str, "submitit cluster (local runs the SLURM-shaped job on this machine)",
                 SUBMITIT_CLUSTERS),
)


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
    """Launcher choice and its options (torchrun rendezvous, SLURM resources), from :data:`LAUNCHER_FLAGS`."""
    group = parser.add_argument_group("launcher")
    group.add_argument("--launcher", choices=LAUNCHER_CHOICES, default="local",
                       help="local process (default), torchrun over this machine's GPUs / several nodes, or SLURM")  # fmt: skip
    group.add_argument("--slots", type=int, default=None,
                       help="runs allowed at once on this machine (default: one per GPU, else 1)")  # fmt: skip
    for option in LAUNCHER_FLAGS:
        group.add_argument(option.flag, dest=option.name, type=option.type, choices=option.choices,
                           help=f"{option.launcher}: {option.help}")  # fmt: skip
    group.add_argument("--sbatch", action="append", type=_key_value, metavar="KEY=VALUE",
                       help="slurm: extra sbatch option, repeatable (e.g. account=proj, qos=high)")  # fmt: skip


def launcher_options(args: argparse.Namespace) -> dict[str, Any]:
    """The launcher keyword arguments given on the command line; flags of another launcher are an error."""
    options: dict[str, Any] = {}
    for option in LAUNCHER_FLAGS:
        value = getattr(args, option.name, None)
        if value is None:
            continue
        if option.launcher != args.launcher:
            raise LearngeneError(f"{option.flag} is a {option.launcher} option; add --launcher {option.launcher}")
        options[option.name] = value
    if getattr(args, "sbatch", None):
        if args.launcher != "slurm":
            raise LearngeneError("--sbatch is a slurm option; add --launcher slurm")
        options[SBATCH_OPTION] = dict(args.sbatch)
    return options


def launcher_argv(launcher: str = "local", options: dict[str, Any] | None = None) -> list[str]:
    """The flags that give ``launcher`` with ``options`` (the inverse of :func:`launcher_options`).

    Options without a flag (``standalone``, a test's ``worker_module``) and None values are left out.
    """
    argv = [] if launcher == "local" else ["--launcher", launcher]
    options = options or {}
    for option in LAUNCHER_FLAGS:
        value = options.get(option.name)
        if value is not None and option.launcher == launcher:
            text = str(value)
            argv += [f"{option.flag}={text}"] if text.startswith("-") else [option.flag, text]
    for key, value in (options.get(SBATCH_OPTION) or {}).items():
        argv += ["--sbatch", f"{key}={yaml_text(value)}"]
    return argv


def run_command(config, name: str | None = None, launcher: str = "local",
                launcher_options: dict[str, Any] | None = None, always: tuple[str, ...] = ()) -> list[str]:
    """The ``learngene train`` argument list that queues exactly this run (settings that differ from the
    defaults, the name and the launcher); ``learngene train <it> --dry-run --json`` shows the same config.

    Args:
        config: A :class:`~learngene.training.config.TrainConfig`.
        name: The run's label, if it has one.
        launcher: ``local``, ``torchrun`` or ``slurm``.
        launcher_options: The launcher's keyword arguments.
        always: Fields to write even at their default value.
    """
    argv = ["learngene", "train", *config_to_argv(config, always)]
    if name:
        argv += ["--name", name]
    return argv + launcher_argv(launcher, launcher_options)


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
    group.add_argument("--dry-run", action="store_true",
                       help="validate and show the resolved config and the equivalent command; launch and write "
                       "nothing (with --json: {\"config\": ..., \"command\": [...]})")  # fmt: skip
    add_launcher_arguments(parser)
    parser.set_defaults(func=run_train)


def dry_run(config, name: str | None, launcher: str, options: dict[str, Any], as_json: bool) -> int:
    """Print what ``learngene train`` would queue; the launcher options are checked, nothing is written."""
    from learngene.runs.launchers import make_launcher

    make_launcher(launcher, options)  # rejects bad launcher options exactly as a real submission would
    command = run_command(config, name=name, launcher=launcher, launcher_options=options)
    if as_json:
        print(json.dumps({"config": config.to_dict(), "command": command, "launcher": launcher,
                          "launcher_options": options}))  # fmt: skip
    else:
        import shlex

        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        print(f"# equivalent command\n{shlex.join(command)}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from learngene.runs import RunManager
    from learngene.training.config import config_from_args

    options = launcher_options(args)
    config = config_from_args(args)  # validates (paths made absolute): bad configs never reach the registry
    if args.dry_run:
        return dry_run(config, args.name, args.launcher, options, args.json)
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
            where = f"pid {record['pid']}" if record["pid"] else "waiting for a free slot"
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
                try:
                    manager.stop(run_id)
                except LearngeneError:
                    # It ended between the last read and the Ctrl-C: nothing to stop, report how it ended.
                    continue
                print(f"\nstopping run {run_id} at its next step (Ctrl-C again to leave it)", file=sys.stderr)
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
    step = record.get("step")
    when = f"at step {step}" if step is not None else "before its first step"
    line = f"run {record['run_id']} {record['state']} {when}{best}"
    print(line)
    if record["state"] != "succeeded" and (record.get("error_tail") or record.get("message")):
        print(record.get("error_tail") or record.get("message"), file=sys.stderr)
