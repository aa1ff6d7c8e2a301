"""Fine-tuning engine: configuration, data, training/evaluation loops, checkpoints and the run-directory worker.

``TrainConfig`` and ``run_training`` are the entry points; the submodules are small and importable on their own
(``config`` needs only PyYAML, so validating a config does not import torch's data stack).
"""

from __future__ import annotations

from learngene.lazy_exports import lazy_getattr

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


__getattr__ = lazy_getattr(__name__, _EXPORTS)
