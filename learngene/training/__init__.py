"""Fine-tuning engine: configuration, data, training/evaluation loops, checkpoints and the run-directory worker.

``TrainConfig`` and ``run_training`` are the entry points; the submodules are small and importable on their own
(``config`` needs only PyYAML, so validating a config does not import torch's data stack).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "learngene.training.config",
    "add_train_arguments": "learngene.training.config",
    "config_from_args": "learngene.training.config",
    "run_training": "learngene.training.worker",
    "StopFlag": "learngene.training.runner",
    "train_one_epoch": "learngene.training.engine",
    "evaluate": "learngene.training.engine",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'learngene.training' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
