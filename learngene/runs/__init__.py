"""Training runs as separate processes: a SQLite registry, a queue with slots, launchers and a manager.

The app and the command line only submit and watch runs (a per-root scheduler process,
:mod:`learngene.runs.scheduler`, advances the queue); training happens in :mod:`learngene.training.worker`
processes (local, torchrun or SLURM via submitit) that write into one directory per run under the runs root.
"""

from learngene.runs.launchers import (
    Launcher,
    LaunchHandle,
    LocalLauncher,
    SlurmLauncher,
    TorchrunLauncher,
    make_launcher,
)
from learngene.runs.manager import RunManager, RunRecord
from learngene.runs.registry import (
    ACTIVE_STATES,
    FAILED,
    FINAL_STATES,
    QUEUED,
    RUNNING,
    STATES,
    STOPPED,
    SUCCEEDED,
    rebuild_registry,
)

__all__ = [
    "ACTIVE_STATES",
    "FAILED",
    "FINAL_STATES",
    "QUEUED",
    "RUNNING",
    "STATES",
    "STOPPED",
    "SUCCEEDED",
    "LaunchHandle",
    "Launcher",
    "LocalLauncher",
    "RunManager",
    "RunRecord",
    "SlurmLauncher",
    "TorchrunLauncher",
    "make_launcher",
    "rebuild_registry",
]
