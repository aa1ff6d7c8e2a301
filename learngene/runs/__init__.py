"""Training runs as separate processes: a SQLite registry, a queue with slots, launchers and a manager.

The app and the command line only launch and watch runs; training happens in :mod:`learngene.training.worker`
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
from learngene.runs.manager import RunManager
from learngene.runs.registry import FAILED, FINAL_STATES, QUEUED, RUNNING, STATES, STOPPED, SUCCEEDED

__all__ = [
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
    "SlurmLauncher",
    "TorchrunLauncher",
    "make_launcher",
]
