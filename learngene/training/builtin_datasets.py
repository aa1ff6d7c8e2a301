"""Offline datasets that ship inside scikit-learn and scikit-image, rendered as RGB images at the model's resolution.

- ``digits``: scikit-learn's 1,797 handwritten 8x8 digits, 10 classes.
- ``lfw-faces``: scikit-image's ``lfw_subset()``, 100 faces and 100 non-faces (25x25 grey), 2 classes.

They need no network, so tests, CI and first-time users can train end to end anywhere. Images are kept at their
tiny source size and upscaled per sample: rendering all of them at 224 px up front would cost hundreds of MB.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from torch.utils.data import Dataset


class ArrayImageDataset(Dataset):
    """Grey or RGB images held in one uint8 array, returned as RGB PIL images of ``size`` x ``size``.

    Args:
        images: uint8 array (N, H, W) or (N, H, W, 3).
        targets: int array (N,).
        classes: class names, index = target.
        size: side of the square output images in pixels.
    """

    def __init__(self, images: np.ndarray, targets: np.ndarray, classes: list[str], size: int) -> None:
        if images.dtype != np.uint8:
            raise TypeError("images must be uint8")
        self.images = images
        self.targets = [int(t) for t in targets]
        self.classes = list(classes)
        self.size = int(size)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        image = Image.fromarray(self.images[index]).convert("RGB")
        # Bicubic keeps digit strokes smooth; nearest would make 8x8 blocks the model could overfit on.
        image = image.resize((self.size, self.size), Image.BICUBIC)
        return image, self.targets[index]


def load_digits_dataset(size: int) -> ArrayImageDataset:
    """scikit-learn's handwritten digits (values 0..16) scaled to 0..255."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.clip(bunch.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)  # (1797, 8, 8)
    return ArrayImageDataset(images, bunch.target, [str(i) for i in range(10)], size)


def load_lfw_faces_dataset(size: int) -> ArrayImageDataset:
    """scikit-image's faces (first 100) vs non-faces (last 100), floats in [0, 1]."""
    from skimage.data import lfw_subset

    images = np.clip(lfw_subset() * 255.0, 0, 255).round().astype(np.uint8)  # (200, 25, 25)
    targets = np.array([0] * 100 + [1] * 100)
    return ArrayImageDataset(images, targets, ["face", "non-face"], size)


BUILTIN_LOADERS = {"digits": load_digits_dataset, "lfw-faces": load_lfw_faces_dataset}
