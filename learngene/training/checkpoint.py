"""Checkpoints of a run (model, optimizer, scheduler, scaler, EMA, step, every rank's RNG states including the
batched augmentation's generator) and their safe loading.

Everything saved is tensors, numbers, strings, lists and dicts, so :func:`load_checkpoint` can use
``torch.load(weights_only=True)`` and never unpickle arbitrary objects from a file.
"""

from __future__ import annotations

import logging
import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learngene.atomic import disk_error
from learngene.errors import LearngeneError

log = logging.getLogger(__name__)


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states as tensors and plain numbers."""
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": py_version, "internal": torch.tensor(py_internal, dtype=torch.int64), "gauss": py_gauss},
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA only when the device count matches)."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["internal"].tolist()), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def augment_state(preprocess: Any) -> dict[str, Any] | None:
    """The batched augmentation's generator state (the ``cached`` pipeline's crops, flips, RandAugment ops and erase
    boxes are all drawn from it), or None for preprocessing that draws nothing of its own."""
    state_dict = getattr(preprocess, "state_dict", None)
    return state_dict() if callable(state_dict) else None


def set_augment_state(preprocess: Any, state: dict[str, Any] | None) -> None:
    """Restore :func:`augment_state` into ``preprocess`` (a checkpoint without one leaves it as seeded)."""
    load = getattr(preprocess, "load_state_dict", None)
    if state is not None and callable(load):
        load(state)


def rank_state(preprocess: Any) -> dict[str, Any]:
    """One process's draws so far: its :func:`rng_state` and its batched augmentation's :func:`augment_state`.

    Under torchrun every rank has its own (seeded with its rank), so checkpoints keep one per rank in
    ``RANK_STATES``.
    """
    return {"rng": rng_state(), "augment_rng": augment_state(preprocess)}


RANK_STATES = "rank_states"  # checkpoint key: the list of every rank's rank_state, indexed by rank


def restore_rank_state(state: dict[str, Any], preprocess: Any, rank: int, world_size: int) -> bool:
    """Restore this rank's generators from a checkpoint ``state``.

    Returns:
        True when the checkpoint held this rank's own states (the resumed run draws exactly what an uninterrupted one
        would); False for a checkpoint from before every rank's state was saved.
    """
    ranks = state.get(RANK_STATES)
    if isinstance(ranks, list) and len(ranks) == world_size:
        own = ranks[rank]
        set_rng_state(own["rng"])
        set_augment_state(preprocess, own.get("augment_rng"))
        return True
    # An older checkpoint holds rank 0's states only: every rank restores them, and ranks > 0 then re-seed their
    # generators from them plus their rank, as setup's per-rank seeding does, so ranks keep drawing different
    # augmentations (though not the ones an uninterrupted run would have drawn on those ranks).
    set_rng_state(state["rng"])
    augment = state.get("augment_rng")
    set_augment_state(preprocess, augment)
    if rank:
        if augment is not None and callable(getattr(preprocess, "load_state_dict", None)):
            generator = torch.Generator()
            generator.set_state(augment["generator"])
            seed = int(torch.randint(0, 2**62, (1,), generator=generator).item()) + rank
            preprocess.load_state_dict({"generator": torch.Generator().manual_seed(seed).get_state()})
        torch.manual_seed(int(torch.randint(0, 2**31, (1,)).item()) + rank)
    return False


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a failed write (full disk) leaves the previous file intact.

    Raises:
        LearngeneError: the disk is full or the path is not writable.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        # Only the checkpoints folder itself: a run directory deleted under a running worker must stay deleted.
        path.parent.mkdir(exist_ok=True)
        # Streamed to disk rather than through learngene.atomic's in-memory bytes: a checkpoint with optimizer
        # state and EMA can be gigabytes. Same guarantee: fsync, then an atomic rename.
        with open(tmp, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise disk_error(path, error) from None
    except RuntimeError as error:  # torch's zip writer reports a short write as RuntimeError
        tmp.unlink(missing_ok=True)
        raise LearngeneError(f"could not write checkpoint {path}: {error}".replace("\n", " ")) from None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` without executing pickled code.

    Raises:
        LearngeneError: the file is missing, truncated, corrupt or not a learngene training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise LearngeneError(f"checkpoint not found: {path} (nothing to resume; start the run without --resume)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise LearngeneError(f"checkpoint {path} is corrupt or unreadable ({reason[:200]})") from None
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise LearngeneError(f"{path} is not a learngene training checkpoint (no model/step entries)")
    return state
