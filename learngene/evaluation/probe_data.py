"""A fixed stratified subset of a built-in dataset, held as uint8 images at the model's resolution.

The subset is drawn with a constant seed (not the probe's ``--seed``) so that every design, every seed and every
later call sees exactly the same images; its key (dataset, indices, size) is part of every feature-cache key.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from learngene.errors import LearngeneError
from learngene.training.builtin_datasets import BUILTIN_LOADERS

# The subset never depends on the probe seed: all rows and seeds must be scored on the same images.
SUBSET_SEED = 0
DATASETS = tuple(BUILTIN_LOADERS)


@dataclass
class ProbeData:
    """Images (N, 3, S, S) uint8, their labels, and a key that identifies exactly this subset."""

    dataset: str
    images: torch.Tensor
    labels: np.ndarray
    indices: list[int]
    classes: list[str]
    img_size: int

    @property
    def num_images(self) -> int:
        return len(self.labels)

    @property
    def key(self) -> str:
        """Digest of dataset, resolution and the chosen indices (the data part of a feature-cache key)."""
        text = f"{self.dataset}|{self.img_size}|{','.join(map(str, self.indices))}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def stratified_subset(labels: np.ndarray, size: int | None, seed: int = SUBSET_SEED) -> list[int]:
    """Sorted indices of ``size`` samples keeping the class proportions (all samples when ``size`` is None or
    at least the dataset size)."""
    labels = np.asarray(labels)
    if size is None or size >= len(labels):
        return list(range(len(labels)))
    classes = np.unique(labels)
    if size < len(classes):
        raise LearngeneError(
            f"--subset {size} is smaller than the {len(classes)} classes; use at least {len(classes)} images"
        )
    from sklearn.model_selection import train_test_split

    chosen, _ = train_test_split(np.arange(len(labels)), train_size=size, stratify=labels, random_state=seed)
    return sorted(int(i) for i in chosen)


@functools.lru_cache(maxsize=4)
def load_probe_data(dataset: str, img_size: int, size: int | None) -> ProbeData:
    """Render a stratified subset of ``dataset`` at ``img_size`` px (kept for the next call with the same
    arguments: rendering all 1,797 digits at 224 px takes seconds, and nothing modifies the result).

    Raises:
        LearngeneError: for an unknown dataset or a subset too small to hold every class.
    """
    if dataset not in BUILTIN_LOADERS:
        raise LearngeneError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if size is not None and size < 1:
        raise LearngeneError(f"--subset must be at least 1 (got {size})")
    base = BUILTIN_LOADERS[dataset](img_size)
    labels = np.asarray(base.targets)
    indices = stratified_subset(labels, size)
    images = torch.stack([
        torch.from_numpy(np.asarray(base[i][0], dtype=np.uint8).copy()).permute(2, 0, 1) for i in indices
    ])
    return ProbeData(dataset=dataset, images=images, labels=labels[indices], indices=indices,
                     classes=list(base.classes), img_size=int(img_size))
