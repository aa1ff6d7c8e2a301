"""Turning the Fine-tune form into runs: the equivalent ``learngene train`` command, and submission.

Runs are launched only through :class:`learngene.runs.RunManager` (a separate process writes the run directory);
the app never trains in its own process. Submitting returns at once. A session remembers the form it already
submitted, so a rerun or a double click never queues it twice; the registry's locked scheduling makes sure two
sessions launching at the same moment never start the same run twice.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import threading
from typing import Any

from learngene.cli.training import run_command
from learngene.training.config import TrainConfig


def train_argv(config: TrainConfig, name: str | None = None, launcher: str = "local",
               launcher_options: dict[str, Any] | None = None, detach: bool = True) -> list[str]:
    """The ``learngene train`` command line that queues exactly this run (the CLI's own renderer,
    :func:`learngene.cli.training.run_command`: only settings that differ from the defaults are written)."""
    argv = run_command(config, name=name, launcher=launcher, launcher_options=launcher_options)
    return argv + (["--detach"] if detach else [])


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
