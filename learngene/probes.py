"""Probe images for attention statistics: a folder of images, or real photos that ship offline.

A :class:`ProbeSet` holds image *sources* and decodes them batch by batch, so statistics over thousands of images
never hold more than one batch in memory. Preprocessing uses the ancestor's own normalisation and resolution
(resize the short side, centre-crop): the authors' code fed mis-normalised, near-constant inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from learngene.errors import LearngeneError
from learngene.whole_numbers import is_whole

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
BUILTIN = "builtin"

# Natural RGB photos bundled with scikit-image and scikit-learn (no download needed).
_SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
# Each photo also contributes these deterministic crops (fractions of the short side, anchor): more probe views
# at different scales and positions, still all real image content.
_BUILTIN_CROPS = ((1.0, "center"), (0.6, "top-left"), (0.6, "bottom-right"), (0.45, "center"))


@dataclass
class ProbeSet:
    """An ordered set of probe images, decoded on demand.

    Attributes:
        names: one display name per image.
        loaders: one zero-argument callable per image returning an RGB PIL image (full size).
        img_size: side of the square model input, pixels.
        mean, std: the ancestor's normalisation.
        skipped: files that could not be decoded and were left out.
        description: how the set was made (recorded in statistics files).
    """

    names: list[str]
    loaders: list[Callable[[], Image.Image]]
    img_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    skipped: int = 0
    description: str = ""
    _cache: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.names)

    def image(self, index: int) -> Image.Image:
        """Image ``index`` resized and centre-cropped to the model's input, unnormalised (for display)."""
        return resize_center_crop(self.loaders[index](), self.img_size)

    def tensor(self, index: int) -> torch.Tensor:
        """Image ``index`` as the model sees it, shape (3, S, S)."""
        return normalize(self.image(index), self.mean, self.std)

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """Yield normalised batches of shape (B, 3, S, S), decoding only one batch at a time."""
        for start in range(0, len(self), batch_size):
            yield torch.stack([self.tensor(i) for i in range(start, min(start + batch_size, len(self)))])

    @property
    def tensors(self) -> torch.Tensor:
        """All images at once, (N, 3, S, S): convenient for small sets only."""
        return torch.cat(list(self.batches(32)))

    @property
    def thumbnails(self) -> list[Image.Image]:
        return [self.image(i) for i in range(len(self))]


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize the short side to ``size`` (bicubic) and crop the centre square."""
    image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


def normalize(image: Image.Image, mean, std) -> torch.Tensor:
    array = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)  # (3, S, S)
    return (array - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def _crop(array: np.ndarray, fraction: float, anchor: str) -> Image.Image:
    h, w = array.shape[:2]
    side = int(min(h, w) * fraction)
    if anchor == "top-left":
        top, left = 0, 0
    elif anchor == "bottom-right":
        top, left = h - side, w - side
    else:
        top, left = (h - side) // 2, (w - side) // 2
    return Image.fromarray(array[top : top + side, left : left + side])


def _builtin_photos() -> list[tuple[str, Callable[[], np.ndarray]]]:
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = [(name, getattr(skimage.data, name)) for name in _SKIMAGE_PHOTOS]
    samples = load_sample_images()
    for filename, array in zip(samples.filenames, samples.images, strict=True):
        photos.append((Path(filename).stem, lambda array=array: array))
    return photos


def builtin_sources() -> tuple[list[str], list[Callable[[], Image.Image]]]:
    """Names and loaders of the built-in probe images: every photo whole, then its crops."""
    names, loaders = [], []
    for fraction, anchor in _BUILTIN_CROPS:
        for name, load in _builtin_photos():
            suffix = "" if fraction == 1.0 else f"@{anchor}-{fraction:g}"
            names.append(name + suffix)
            loaders.append(lambda load=load, f=fraction, a=anchor: _crop(load(), f, a))
    return names, loaders


def _folder_sources(folder: Path) -> tuple[list[str], list[Callable[[], Image.Image]], int]:
    if folder.is_file():
        raise LearngeneError(f"{folder} is a file; give the folder that holds the probe images, or 'builtin'")
    if not folder.is_dir():
        raise LearngeneError(f"probe image folder {folder} does not exist; give a folder of images or 'builtin'")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    names, loaders, skipped = [], [], 0
    for path in files:
        try:  # verify() checks the file without decoding every pixel
            with Image.open(path) as image:
                image.verify()
        except Exception:
            skipped += 1
            continue
        names.append(str(path.relative_to(folder)))
        loaders.append(lambda path=path: Image.open(path).convert("RGB"))
    if not names:
        raise LearngeneError(
            f"no readable images ({', '.join(IMAGE_SUFFIXES)}) in {folder}"
            + (f" ({skipped} unreadable files skipped)" if skipped else "")
            + "; use --images builtin for the offline photos"
        )
    return names, loaders, skipped


def load_probe_images(source: str | Path = BUILTIN, summary=None, num_images: int | None = None, *,
                      img_size: int | None = None, mean=None, std=None) -> ProbeSet:
    """Make a probe set from ``builtin`` or a folder (searched recursively), preprocessed for ``summary``'s model.

    Args:
        source: ``"builtin"`` or a folder path.
        summary: the ancestor's :class:`~learngene.ancestors.AncestorSummary` (resolution and normalisation).
        num_images: keep at most this many images (the first ones, in a stable order).
        img_size, mean, std: override the summary's values.
    """
    if num_images is not None and (not is_whole(num_images) or num_images < 1):
        raise LearngeneError(f"num_images must be a whole number of at least 1 (got {num_images!r})")
    if str(source) == BUILTIN:
        names, loaders = builtin_sources()
        skipped, description = 0, "builtin: scikit-image and scikit-learn sample photos with deterministic crops"
    else:
        folder = Path(source).expanduser()
        names, loaders, skipped = _folder_sources(folder)
        description = f"folder: {folder.resolve()}"
    if num_images is not None:
        names, loaders = names[: int(num_images)], loaders[: int(num_images)]
    return ProbeSet(
        names=names,
        loaders=loaders,
        img_size=int(img_size or (summary.img_size if summary else 224)),
        mean=tuple(mean or (summary.mean if summary else (0.485, 0.456, 0.406))),
        std=tuple(std or (summary.std if summary else (0.229, 0.224, 0.225))),
        skipped=skipped,
        description=description + f" ({len(names)} images)",
    )
