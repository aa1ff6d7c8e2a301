"""Turning the Fine-tune form into runs: the equivalent ``learngene train`` command, and submission.

Runs are launched only through :class:`learngene.runs.RunManager` (a separate process writes the run directory);
the app never trains in its own process. Submitting returns at once. A session remembers the form it already
submitted, so a rerun or a double click never queues it twice; the registry's locked scheduling makes sure two
sessions launching at the same moment never start the same run twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
import threading
from typing import Any

from learngene.training.config import TrainConfig

# Launcher option name -> ``learngene train`` flag (the flags of learngene.cli.training.add_launcher_arguments).
_LAUNCHER_FLAGS = {
    "nproc_per_node": "--nproc-per-node", "nnodes": "--nnodes", "node_rank": "--node-rank",
    "rdzv_endpoint": "--rdzv-endpoint", "rdzv_id": "--rdzv-id", "rdzv_backend": "--rdzv-backend",
    "partition": "--partition", "nodes": "--nodes", "gpus_per_node": "--gpus-per-node", "time_min": "--time-min",
    "cpus_per_task": "--cpus-per-task", "mem_gb": "--mem-gb", "cluster": "--cluster",
}
_BOOLEAN_FLAGS = ("ema", "channels_last", "compile", "deterministic")  # --x / --no-x


def _text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def train_argv(config: TrainConfig, name: str | None = None, launcher: str = "local",
               launcher_options: dict[str, Any] | None = None, detach: bool = True) -> list[str]:
    """The ``learngene train`` command line that queues exactly this run (only settings that differ from the
    defaults are written)."""
    argv = ["learngene", "train"]
    defaults = TrainConfig().to_dict()
    for field in dataclasses.fields(TrainConfig):
        value = getattr(config, field.name)
        if value == defaults[field.name]:
            continue
        flag = "--" + field.name.replace("_", "-")
        if field.name == "model_kwargs":
            for key, item in value.items():
                argv += ["--model-arg", f"{key}={json.dumps(item) if not isinstance(item, str) else item}"]
        elif field.name == "download":
            argv.append("--no-download")
        elif field.name in _BOOLEAN_FLAGS:
            argv.append(flag if value else "--no-" + field.name.replace("_", "-"))
        else:
            argv += [flag, _text(value)]
    if name:
        argv += ["--name", name]
    if launcher != "local":
        argv += ["--launcher", launcher]
    for key, value in (launcher_options or {}).items():
        if value is None:
            continue
        if key == "extra":
            for extra_key, extra_value in value.items():
                argv += ["--sbatch", f"{extra_key}={extra_value}"]
        elif key in _LAUNCHER_FLAGS:
            argv += [_LAUNCHER_FLAGS[key], str(value)]
    if detach:
        argv.append("--detach")
    return argv


def command_text(argv: list[str]) -> str:
    return shlex.join(argv)


def form_token(*parts: Any) -> str:
    """Identity of one filled-in launch form (what a double click would submit twice)."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


_submit_lock = threading.Lock()


def submit(manager, config: TrainConfig, name: str | None, launcher: str, options: dict[str, Any],
           submitted: dict[str, str], token: str) -> tuple[str, bool]:
    """Queue the run unless this session already submitted the same form; returns (run_id, newly_submitted).

    ``submitted`` is the session's token -> run id map (kept in ``st.session_state`` by the page).
    """
    with _submit_lock:
        if token in submitted:
            return submitted[token], False
        run_id = manager.submit(config, name=name, launcher=launcher, launcher_options=options)
        submitted[token] = run_id
        return run_id, True
