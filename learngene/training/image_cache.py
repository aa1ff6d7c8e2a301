"""A decoded-once dataset cache: every image decoded and resized once, kept as uint8 in a memory-mapped file.

Decoding JPEGs and bicubic resizing in loader workers bounds GPU training (issue 13). The cache does that work once
per (dataset, split, size): the short side goes to :func:`cache_side` (``ceil(img_size / 0.875)``, 256 for 224, the
evaluation resize of the paper's protocol) and the centre square is kept, so a cached image is already the
evaluation crop's source and a random resized crop is a cheap tensor op on the device (``batch_augment``).

File layout (one file per key under ``$LEARNGENE_CACHE_DIR``, default ``~/.cache/learngene/images``)::

    [header: 4096 bytes, JSON padded with spaces]
    [targets: count x int64]
    [crc32 of every image: count x uint32]
    [images: count x side x side x 3 uint8]

The header names the format, the key, the count, the side, the expected file size and the crc32 of the targets.
A cache is written to a temporary sibling and renamed only when complete, so a crash never leaves a file that looks
finished. On opening, a wrong size (truncated), an unreadable header, a different key, wrong targets or a sample of
images whose crc32 does not match mark it corrupt, and it is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from learngene.atomic import disk_error
from learngene.errors import LearngeneError

log = logging.getLogger(__name__)

CACHE_FORMAT = "learngene-image-cache/1"
HEADER_BYTES = 4096
CACHE_DIR_ENV = "LEARNGENE_CACHE_DIR"
EVAL_CROP_PCT = 0.875  # the paper's evaluation: short side to 256, centre crop 224
VERIFY_SAMPLE = 64  # images whose crc32 is checked on every open (first, last and an even spread)


class CacheCorrupt(Exception):
    """The cache file exists but cannot be trusted (truncated, wrong header or checksum); it is rebuilt."""


def cache_side(img_size: int) -> int:
    """Side of the cached squares for a training resolution: timm's evaluation resize ``floor(img_size / 0.875)``
    (256 for 224, 1.14 x), so evaluation from the cache is exactly timm's resize-then-centre-crop."""
    return int(math.floor(img_size / EVAL_CROP_PCT))


def cache_dir() -> Path:
    """``$LEARNGENE_CACHE_DIR`` or ``~/.cache/learngene/images``."""
    return Path(os.environ.get(CACHE_DIR_ENV) or "~/.cache/learngene/images").expanduser()


def cache_bytes(count: int, side: int) -> int:
    """Size of a cache file of ``count`` images of ``side`` pixels."""
    return HEADER_BYTES + count * (8 + 4) + count * side * side * 3


def decode_square(image: Any, side: int) -> np.ndarray:
    """A PIL image -> uint8 (side, side, 3): short side resized to ``side`` (bicubic), centre square kept."""
    from PIL import Image

    image = image.convert("RGB")
    width, height = image.size
    scale = side / min(width, height)
    # timm's eval Resize: the short side becomes exactly ``side``, the long side is truncated like torchvision's
    new_w, new_h = (side, int(height * scale)) if width <= height else (int(width * scale), side)
    image = image.resize((max(new_w, side), max(new_h, side)), Image.BICUBIC)
    # torchvision's CenterCrop rounding, so that this square then a centre crop equals timm's eval crop
    left, top = int(round((image.width - side) / 2.0)), int(round((image.height - side) / 2.0))
    return np.array(image.crop((left, top, left + side, top + side)), dtype=np.uint8)


def dataset_fingerprint(dataset: Dataset) -> str:
    """What identifies a dataset's content cheaply: its type, size, and file list or subset indices if it has them."""
    digest = hashlib.sha1()

    def visit(node: Any) -> None:
        digest.update(f"{type(node).__module__}.{type(node).__name__}:{len(node)};".encode())
        if isinstance(node, ConcatDataset):
            for part in node.datasets:
                visit(part)
            return
        indices = getattr(node, "indices", None)
        if indices is not None:
            digest.update(np.asarray(indices, dtype=np.int64).tobytes())
        samples = getattr(node, "samples", None) or getattr(node, "_samples", None)
        if isinstance(samples, list):
            for sample in samples:
                path = sample[0] if isinstance(sample, tuple) else sample
                try:
                    stat = os.stat(path)
                    digest.update(f"{path}:{stat.st_size}:{int(stat.st_mtime)};".encode())
                except (OSError, TypeError):
                    digest.update(str(path).encode())
        base = getattr(node, "base", None)
        if isinstance(base, Dataset):
            visit(base)

    visit(dataset)
    return digest.hexdigest()[:16]


def cache_key(name: str, split: str, side: int, dataset: Dataset) -> str:
    """File-name-safe key: dataset name, split, side and the content fingerprint."""
    slug = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(name))[-48:].strip("_") or "dataset"
    return f"{slug}-{split}-{side}px-{dataset_fingerprint(dataset)}"


class _Squares(Dataset):
    """``dataset``'s images decoded to uint8 squares, so a DataLoader can decode in worker processes."""

    def __init__(self, dataset: Dataset, side: int) -> None:
        self.dataset, self.side = dataset, side

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        image, target = self.dataset[index]
        return np.array(decode_square(image, self.side)), int(target)


class ImageCache(Dataset):
    """A built cache, memory-mapped read-only. Items are ``(uint8 tensor (3, side, side), target)``.

    Attributes:
        images: the (count, side, side, 3) uint8 memmap (pages are read on demand and shared between processes).
        targets: (count,) int64.
    """

    def __init__(self, path: Path, key: str, verify: str = "sample") -> None:
        self.path = Path(path)
        header = _read_header(self.path, key)
        self.side, self.count = int(header["side"]), int(header["count"])
        offset = HEADER_BYTES
        self.targets = np.memmap(self.path, np.int64, "r", offset, (self.count,))
        offset += 8 * self.count
        self.crcs = np.memmap(self.path, np.uint32, "r", offset, (self.count,))
        offset += 4 * self.count
        self.images = np.memmap(self.path, np.uint8, "r", offset, (self.count, self.side, self.side, 3))
        if zlib.crc32(np.ascontiguousarray(self.targets).tobytes()) != header["targets_crc32"]:
            raise CacheCorrupt("targets checksum differs")
        check = range(self.count) if verify == "full" else _sample_indices(self.count)
        for index in check:
            if zlib.crc32(self.images[index].tobytes()) != int(self.crcs[index]):
                raise CacheCorrupt(f"image {index} checksum differs")

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(np.array(self.images[index])).permute(2, 0, 1)  # copy: the memmap is read-only
        return image, int(self.targets[index])

    def batch(self, indices: np.ndarray | list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Many images at once: uint8 (B, 3, side, side) and int64 targets (one fancy-indexed read)."""
        indices = np.asarray(indices, dtype=np.int64)
        images = torch.from_numpy(self.images[indices]).permute(0, 3, 1, 2)  # fancy indexing copies: writable
        return images, torch.from_numpy(np.asarray(self.targets[indices]))


def _sample_indices(count: int) -> list[int]:
    if count <= VERIFY_SAMPLE:
        return list(range(count))
    return sorted({0, count - 1, *np.linspace(0, count - 1, VERIFY_SAMPLE).astype(int).tolist()})


def _read_header(path: Path, key: str) -> dict:
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            raw = handle.read(HEADER_BYTES)
        header = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CacheCorrupt(f"unreadable header ({error})") from None
    if not isinstance(header, dict) or header.get("format") != CACHE_FORMAT or header.get("key") != key:
        raise CacheCorrupt("wrong format or key in the header")
    try:
        expected = cache_bytes(int(header["count"]), int(header["side"]))
        int(header["targets_crc32"])
    except (KeyError, TypeError, ValueError):
        raise CacheCorrupt("incomplete header") from None
    if size != expected or header.get("bytes") != expected:
        raise CacheCorrupt(f"file has {size} bytes, expected {expected} (truncated or partial)")
    return header


def _default_progress(total: int, description: str) -> Callable[[int, int], None]:
    from tqdm import tqdm

    bar = tqdm(total=total, desc=description, unit="img", leave=False)

    def update(done: int, _total: int) -> None:
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def build_cache(dataset: Dataset, path: Path, key: str, side: int, *, workers: int = 0,
                progress: Callable[[int, int], None] | None = None) -> None:
    """Decode every image of ``dataset`` into ``path`` (written to a temporary sibling, renamed when complete)."""
    from torch.utils.data import DataLoader

    count = len(dataset)
    total_bytes = cache_bytes(count, side)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    progress = progress or _default_progress(count, f"caching {key}")
    try:
        with open(tmp, "wb") as handle:
            handle.truncate(total_bytes)  # reserve the size up front (sparse until written)
        targets = np.memmap(tmp, np.int64, "r+", HEADER_BYTES, (count,))
        crcs = np.memmap(tmp, np.uint32, "r+", HEADER_BYTES + 8 * count, (count,))
        images = np.memmap(tmp, np.uint8, "r+", HEADER_BYTES + 12 * count, (count, side, side, 3))
        # Its own generator: a DataLoader without one draws its base seed from torch's global RNG, and a run that
        # builds the cache would then train on different random draws than one that finds it built.
        loader = DataLoader(_Squares(dataset, side), batch_size=None, num_workers=workers,
                            prefetch_factor=8 if workers else None, generator=torch.Generator().manual_seed(0))
        for index, (square, target) in enumerate(loader):
            square = np.asarray(square, dtype=np.uint8)
            images[index] = square
            targets[index] = int(target)
            crcs[index] = zlib.crc32(square.tobytes())
            if progress is not None and (index + 1 == count or (index + 1) % 64 == 0):
                progress(index + 1, count)
        images.flush(), targets.flush(), crcs.flush()
        header = {"format": CACHE_FORMAT, "key": key, "count": count, "side": side, "bytes": total_bytes,
                  "targets_crc32": zlib.crc32(np.ascontiguousarray(targets).tobytes())}
        del images, targets, crcs
        raw = json.dumps(header).encode("utf-8")
        with open(tmp, "r+b") as handle:
            handle.write(raw.ljust(HEADER_BYTES, b" "))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise disk_error(path, error) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def cached_dataset(dataset: Dataset, name: str, split: str, img_size: int, *, directory: Path | None = None,
                   workers: int = 0, progress: Callable[[int, int], None] | None = None,
                   verify: str = "sample") -> ImageCache:
    """The cache of ``dataset`` (untransformed ``(PIL image, target)`` items) for ``img_size``: reused when a valid
    one exists, (re)built otherwise.

    Args:
        dataset: the split's untransformed dataset.
        name: the dataset's name or folder (part of the key).
        split: ``train`` or ``val``.
        img_size: training resolution; the cache keeps squares of :func:`cache_side` pixels.
        directory: where cache files live (default :func:`cache_dir`).
        workers: decoding processes for a build.
        progress: ``progress(done, total)`` during a build; a tqdm bar on stderr when None.
        verify: ``sample`` (header, size, targets and 64 images' checksums) or ``full`` (every image).
    """
    side = cache_side(img_size)
    key = cache_key(name, split, side, dataset)
    path = (directory or cache_dir()) / f"{key}.u8"
    if path.exists():
        try:
            return ImageCache(path, key, verify)
        except CacheCorrupt as reason:
            log.warning("image cache %s is corrupt (%s); rebuilding it", path, reason)
    if len(dataset) == 0:
        raise LearngeneError(f"dataset {name} ({split}) is empty: nothing to cache")
    build_cache(dataset, path, key, side, workers=workers, progress=progress)
    try:
        return ImageCache(path, key, verify)
    except CacheCorrupt as reason:  # pragma: no cover - a file we just wrote and renamed
        raise LearngeneError(f"image cache {path} failed its check right after being written ({reason})") from None
