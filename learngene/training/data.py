"""Datasets, transforms, samplers and loaders for fine-tuning.

Every dataset resolves to a pair of *untransformed* datasets (train, val) returning ``(PIL image, int)``; the train and
eval transforms are attached by :class:`TransformedSubset`, so one source can be split without loading it twice.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler

from learngene.errors import LearngeneError
from learngene.training.builtin_datasets import BUILTIN_LOADERS
from learngene.training.config import (
    DATA_PIPELINE_CHOICES,
    FOLDER_DATASETS,
    TORCHVISION_DATASETS,
    TrainConfig,
)

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VAL_DIR_NAMES = ("val", "validation", "test")
SPLIT_SEED = 0  # fixed so a dataset's train/val split never depends on the run's seed


class TransformedSubset(Dataset):
    """A view of ``base`` restricted to ``indices`` (all when None) with ``transform`` applied to the image."""

    def __init__(self, base: Dataset, indices: Sequence[int] | None, transform: Callable | None) -> None:
        self.base = base
        self.indices = list(indices) if indices is not None else None
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices) if self.indices is not None else len(self.base)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, target = self.base[self.indices[index] if self.indices is not None else index]
        return (self.transform(image) if self.transform is not None else image), target


@dataclass
class DataSplits:
    """Untransformed train and validation datasets and their class names."""

    train: Dataset
    val: Dataset
    classes: list[str]
    builtin: bool = False  # rendered at model resolution: evaluate without the 0.875 centre crop

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# ---------------------------------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------------------------------
def _targets_of(dataset: Dataset) -> list[int]:
    for name in ("targets", "_labels", "_samples"):
        value = getattr(dataset, name, None)
        if value is not None:
            return [int(v[1]) if isinstance(v, tuple) else int(v) for v in value]
    return [int(dataset[i][1]) for i in range(len(dataset))]


def stratified_split(targets: Sequence[int], val_fraction: float, seed: int = SPLIT_SEED) -> tuple[list[int], list[int]]:
    """Indices (train, val) with about ``val_fraction`` of every class in val (at least one per class of 2+)."""
    rng = np.random.RandomState(seed)
    targets = np.asarray(targets)
    train, val = [], []
    for label in np.unique(targets):
        members = np.flatnonzero(targets == label)
        rng.shuffle(members)
        n_val = int(round(len(members) * val_fraction))
        n_val = min(max(n_val, 1 if len(members) > 1 else 0), len(members) - 1)
        val.extend(members[:n_val].tolist())
        train.extend(members[n_val:].tolist())
    return sorted(train), sorted(val)


def _image_folder(path: Path):
    from torchvision.datasets import ImageFolder

    try:
        return ImageFolder(str(path))
    except (FileNotFoundError, RuntimeError) as error:
        raise LearngeneError(f"image folder {path} has no usable images: {error}".replace("\n", " ")) from None


def _folder_splits(root: Path, val_fraction: float) -> DataSplits:
    if not root.is_dir():
        raise LearngeneError(f"dataset folder not found: {root}")
    val_dir = next((root / name for name in VAL_DIR_NAMES if (root / name).is_dir()), None)
    if (root / "train").is_dir() and val_dir is not None:
        train, val = _image_folder(root / "train"), _image_folder(val_dir)
        if train.classes != val.classes:
            only_train = sorted(set(train.classes) - set(val.classes))[:5]
            only_val = sorted(set(val.classes) - set(train.classes))[:5]
            raise LearngeneError(
                f"{root}: train/ and {val_dir.name}/ have different classes "
                f"(only in train: {only_train}, only in {val_dir.name}: {only_val})"
            )
        return DataSplits(train, val, list(train.classes))
    full = _image_folder(root)
    train_idx, val_idx = stratified_split(full.targets, val_fraction)
    if not val_idx:
        raise LearngeneError(f"{root} has too few images to hold out a validation fraction of {val_fraction}")
    return DataSplits(TransformedSubset(full, train_idx, None), TransformedSubset(full, val_idx, None), list(full.classes))


def _torchvision_splits(name: str, root: Path, download: bool) -> DataSplits:
    import torchvision.datasets as tvd

    def make(factory: Callable[..., Dataset], **kwargs: Any) -> Dataset:
        try:
            return factory(str(root), download=download, **kwargs)
        except (RuntimeError, OSError, ValueError) as error:
            hint = "" if download else " (downloads are off: drop --no-download or place the files there)"
            raise LearngeneError(
                f"could not load dataset {name} from {root}: {error}{hint}".replace("\n", " ")
            ) from None

    if name in ("cifar10", "cifar100"):
        factory = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
        train, val = make(factory, train=True), make(factory, train=False)
        classes = list(train.classes)
    elif name in ("flowers102", "flowers102-trainval"):
        # The authors train on `train` alone (1,020 images) and test on `test` (6,149); the -trainval name adds the
        # `val` split (2,040 training images), the common convention elsewhere.
        train = make(tvd.Flowers102, split="train")
        if name == "flowers102-trainval":
            train = ConcatDataset([train, make(tvd.Flowers102, split="val")])
        val = make(tvd.Flowers102, split="test")
        classes = list(getattr(val, "classes", None) or [str(i) for i in range(102)])
    elif name == "food101":
        train, val = make(tvd.Food101, split="train"), make(tvd.Food101, split="test")
        classes = list(train.classes)
    elif name == "stanford-cars":
        train, val = make(tvd.StanfordCars, split="train"), make(tvd.StanfordCars, split="test")
        classes = list(train.classes)
    else:  # pragma: no cover - guarded by TORCHVISION_DATASETS
        raise LearngeneError(f"unknown torchvision dataset {name}")
    return DataSplits(train, val, classes)


def load_splits(config: TrainConfig) -> DataSplits:
    """Resolve ``config.dataset`` to untransformed train/val datasets and check ``num_classes``.

    Raises:
        LearngeneError: unknown dataset, empty or missing folder, failed download, or a class count that differs
            from ``config.num_classes``.
    """
    name = str(config.dataset).strip()
    key = name.lower()
    if key in BUILTIN_LOADERS:
        full = BUILTIN_LOADERS[key](config.img_size)
        train_idx, val_idx = stratified_split(full.targets, config.val_fraction)
        splits = DataSplits(
            TransformedSubset(full, train_idx, None), TransformedSubset(full, val_idx, None), full.classes, builtin=True
        )
    elif key in TORCHVISION_DATASETS:
        root = Path(config.data_root or Path(os.environ.get("LEARNGENE_DATA_DIR", "~/.cache/learngene/data")) / key)
        splits = _torchvision_splits(key, root.expanduser(), config.download)
    elif key in FOLDER_DATASETS:
        if not config.data_root:
            raise LearngeneError(f"dataset {name} needs --data-root pointing at its image folder")
        splits = _folder_splits(Path(config.data_root).expanduser(), config.val_fraction)
    elif Path(name).expanduser().is_dir():
        splits = _folder_splits(Path(name).expanduser(), config.val_fraction)
    else:
        raise LearngeneError(f"unknown dataset {name!r}: not a folder and not a known dataset name")
    if len(splits.train) == 0 or len(splits.val) == 0:
        raise LearngeneError(f"dataset {name} is empty (train {len(splits.train)}, val {len(splits.val)} images)")
    if config.num_classes is not None and config.num_classes != splits.num_classes:
        shown = ", ".join(splits.classes[:8]) + (", ..." if splits.num_classes > 8 else "")
        raise LearngeneError(
            f"dataset {name} has {splits.num_classes} classes ({shown}) but --num-classes is {config.num_classes}"
        )
    return splits


# ---------------------------------------------------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------------------------------------------------
def build_transforms(
    config: TrainConfig, mean: Sequence[float], std: Sequence[float], builtin: bool = False,
    uint8_output: bool = False,
) -> tuple[Callable, Callable]:
    """timm train transform (RandomResizedCrop, flip, RandAugment, random erasing) and eval transform.

    Evaluation resizes the short side to ``img_size / 0.875`` and centre-crops (256 -> 224, the paper's protocol);
    built-in datasets are already rendered at ``img_size`` and are evaluated whole.

    Args:
        uint8_output: stop at uint8 (3, H, W) tensors and leave normalisation and random erasing to
            :class:`DevicePreprocess` on the GPU: a quarter of the bytes through worker queues and pinned memory,
            and no per-pixel float work on the loader's CPU cores.
    """
    from timm.data import create_transform

    train = create_transform(
        config.img_size,
        is_training=True,
        auto_augment=config.randaugment_policy,
        color_jitter=0.0 if config.randaugment_policy is None else 0.4,
        re_prob=0.0 if uint8_output else config.reprob,
        re_mode="pixel",
        re_count=1,
        interpolation="bicubic",
        mean=tuple(mean),
        std=tuple(std),
        use_prefetcher=uint8_output,
    )
    _guard_posterize(train)
    evaluation = create_transform(
        config.img_size,
        is_training=False,
        interpolation="bicubic",
        crop_pct=1.0 if builtin else 0.875,
        mean=tuple(mean),
        std=tuple(std),
        use_prefetcher=uint8_output,
    )
    return train, evaluation


class DevicePreprocess:
    """Normalisation (and random erasing for training) of uint8 batches on the device they train on.

    Args:
        mean, std: per-channel statistics in [0, 1] units.
        device: where batches arrive.
        channels_last: return NHWC-strided tensors.
        erase_prob: random-erasing probability for training batches (timm's per-sample ``pixel`` mode).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], device: torch.device,
                 channels_last: bool = False, erase_prob: float = 0.0) -> None:
        self.mean = torch.tensor([255.0 * m for m in mean], device=device).view(1, 3, 1, 1)
        self.std = torch.tensor([255.0 * s for s in std], device=device).view(1, 3, 1, 1)
        self.channels_last = channels_last
        self.erase = None
        if erase_prob > 0:
            from timm.data.random_erasing import RandomErasing

            self.erase = RandomErasing(erase_prob, mode="pixel", max_count=1, device=device.type)

    def __call__(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 (B, 3, H, W) on the device -> normalised float32 (B, 3, H, W)."""
        images = images.float().sub_(self.mean).div_(self.std)
        if train and self.erase is not None:
            images = self.erase(images)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images


def _safe_posterize(img: Any, bits_to_keep: int, **_: Any) -> Any:
    """timm's posterize, but 0 bits gives a black image as Pillow < 13 did (Pillow 13 raises ValueError)."""
    from PIL import Image, ImageOps

    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return Image.new(img.mode, img.size)
    return ImageOps.posterize(img, bits_to_keep)


def _guard_posterize(transform: Any) -> None:
    """Swap the posterize op inside this transform's RandAugment for :func:`_safe_posterize`.

    The paper's policy (``...-inc1``) maps magnitude 10 to 0 posterize bits; with ``mstd0.5`` that happens a few
    times per thousand images and crashes the run under Pillow 13. Only this transform object is changed.
    """
    from timm.data.auto_augment import RandAugment

    for stage in getattr(transform, "transforms", []):
        if isinstance(stage, RandAugment):
            for op in stage.ops:
                if op.name.startswith("Posterize"):
                    op.aug_fn = _safe_posterize


# ---------------------------------------------------------------------------------------------------------------------
# Sampling and loading
# ---------------------------------------------------------------------------------------------------------------------
class ResumableSampler(Sampler[int]):
    """Seeded per-epoch shuffling, sharded over processes, that can start part-way through an epoch.

    The order of epoch ``e`` depends only on ``(seed, e)``, so a resumed run that skips the samples already seen
    trains on exactly the batches the uninterrupted run would have. For training the index list is padded to a
    multiple of the world size (every rank takes the same number of steps); for evaluation it is not (every image is
    counted exactly once, metrics are summed over ranks).

    Args:
        length: dataset size.
        rank: this process's index; world_size: number of processes.
        shuffle: permute per epoch (train) or keep order (eval).
        pad: pad the shards to equal length.
    """

    def __init__(self, length: int, rank: int = 0, world_size: int = 1, shuffle: bool = True, seed: int = 0,
                 pad: bool = True) -> None:
        self.length, self.rank, self.world_size = length, rank, world_size
        self.shuffle, self.seed, self.pad = shuffle, seed, pad
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's permutation and skip its first ``start`` samples of this rank's shard."""
        self.epoch, self.start = int(epoch), int(start)

    def _shard(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = list(range(self.length))
        if self.pad and self.world_size > 1:
            total = math.ceil(self.length / self.world_size) * self.world_size
            order += order[: total - self.length]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._shard()[self.start :])

    def __len__(self) -> int:
        return max(0, len(self._shard()) - self.start)

    def shard_size(self) -> int:
        """Samples this rank sees in a full epoch (independent of ``start``)."""
        if self.pad and self.world_size > 1:
            return math.ceil(self.length / self.world_size)
        return len(range(self.rank, self.length, self.world_size))


def default_workers(device_type: str) -> int:
    """Loader workers per process: enough to keep a GPU fed; on CPU leave cores to the model's own threads."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device_type == "cuda":
        return max(2, min(8, cpus))
    return max(0, min(2, cpus // 2))


def _ignore_stop_signals(_worker_id: int) -> None:
    """Loader workers leave SIGINT/SIGTERM to the main process.

    Ctrl-C in a terminal (and a process-group kill) signals every process of the group; a worker that died of it would
    turn a graceful stop into a "DataLoader worker killed" failure. The main process stops them itself.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # SLURM's warning before preemption or the time limit


def make_loader(dataset: Dataset, sampler: ResumableSampler, batch_size: int, workers: int, pin_memory: bool,
                drop_last: bool, seed: int, collate_fn: Callable | None = None) -> DataLoader:
    """A DataLoader over ``sampler`` with persistent, prefetching workers (``collate_fn``: torch's default)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate_fn,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=_ignore_stop_signals if workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),  # seeds the workers' augmentation RNGs reproducibly
    )


# ---------------------------------------------------------------------------------------------------------------------
# Pipelines: PIL in loader workers, or the decoded-once cache with batched augmentation on the device
# ---------------------------------------------------------------------------------------------------------------------
DATA_PIPELINES = DATA_PIPELINE_CHOICES  # one source: the training config offers them
CACHE_MEMORY_FRACTION = 0.5  # a cache "fits" when it takes at most this share of the machine's memory


class CachedSplit(Dataset):
    """Items of an :class:`~learngene.training.image_cache.ImageCache`, with an optional per-image uint8 transform."""

    def __init__(self, cache: Dataset, transform: Callable | None = None) -> None:
        self.cache, self.transform = cache, transform

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, target = self.cache[index]
        return (self.transform(image) if self.transform is not None else image), target

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        """A whole batch in one read of the memmap (the DataLoader calls this instead of per-item gets).

        Images stay (3, S, S) views of the cache's (S, S, 3) pixels: :func:`collate_squares` stacks them back into
        one channels-last batch with a plain copy (a channels-first copy transposes every byte, which on a CPU costs
        more than the crop that follows)."""
        images, targets = self.cache.batch(indices)
        if self.transform is not None:
            return [(self.transform(image), target) for image, target in zip(images, targets.tolist(), strict=True)]
        return list(zip(images, targets.tolist(), strict=True))


def collate_squares(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cached items -> uint8 (B, 3, S, S) in channels-last memory (what the cache stores: (S, S, 3) per image) and
    int64 targets. Stacking the images' (S, S, 3) views is a copy without a transpose; the batched augmentation's
    crop reads channels-last uint8 through PyTorch's fast path."""
    images = torch.stack([image.permute(1, 2, 0) for image, _ in items]).permute(0, 3, 1, 2)
    return images, torch.tensor([target for _, target in items], dtype=torch.int64)


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 0


def cache_fits(num_images: int, img_size: int) -> bool:
    """Whether the decoded squares of ``num_images`` images fit in memory (and so are worth caching)."""
    from learngene.training.image_cache import cache_bytes, cache_side

    return cache_bytes(num_images, cache_side(img_size)) <= CACHE_MEMORY_FRACTION * _memory_bytes()


def resolve_data_pipeline(choice: str, device_type: str, num_images: int, img_size: int) -> str:
    """``pil`` or ``cached`` for a run. ``auto`` is ``cached`` on a GPU when the decoded set fits in memory, else
    ``pil`` (on a CPU the model, not the loader, is the bottleneck, and CPU runs leave no cache files)."""
    if choice not in DATA_PIPELINES:
        raise LearngeneError(f"data pipeline must be one of {', '.join(DATA_PIPELINES)}, got {choice!r}")
    if choice == "auto":
        return "cached" if device_type == "cuda" and cache_fits(num_images, img_size) else "pil"
    return choice


@dataclass
class Loaders:
    """What the runner needs from the data side."""

    pipeline: str
    workers: int
    train_size: int
    train_sampler: ResumableSampler
    train_loader: DataLoader
    val_loader: DataLoader
    preprocess: Callable[[torch.Tensor, bool], torch.Tensor] | None


def build_loaders(config: TrainConfig, splits: DataSplits, mean: Sequence[float], std: Sequence[float],
                  device: torch.device, rank: int = 0, world_size: int = 1,
                  data_pipeline: str = "auto") -> Loaders:
    """Samplers, loaders and the on-device preprocessing for ``splits``.

    ``pil``: timm's transforms in the loader workers (uint8 handed to the GPU and normalised there on CUDA).
    ``cached``: the decoded-once cache (built on first use by rank 0, the other ranks wait) and
    :class:`~learngene.training.batch_augment.BatchAugment` on the device, RandAugment included (batched; only a
    policy the batched code does not cover runs in the workers, with timm's PIL ops, on the cached squares).
    """
    from learngene.training.distributed import barrier

    cfg = config
    pipeline = resolve_data_pipeline(data_pipeline, device.type, len(splits.train) + len(splits.val), cfg.img_size)
    channels_last = cfg.channels_last and device.type == "cuda"
    workers = cfg.workers if cfg.workers is not None else default_workers(device.type)
    if pipeline == "pil":
        on_device = device.type == "cuda"  # on a GPU, loaders hand over uint8 and the GPU normalises
        train_tf, eval_tf = build_transforms(cfg, mean, std, builtin=splits.builtin, uint8_output=on_device)
        train_ds: Dataset = TransformedSubset(splits.train, None, train_tf)
        val_ds: Dataset = TransformedSubset(splits.val, None, eval_tf)
        preprocess = DevicePreprocess(mean, std, device, channels_last, cfg.reprob) if on_device else None
    else:
        from learngene.training.batch_augment import BatchAugment, CachedRandAugment
        from learngene.training.batch_randaugment import parse_policy
        from learngene.training.image_cache import cached_dataset

        def caches() -> tuple[Dataset, Dataset]:
            name = f"{cfg.dataset}@{Path(cfg.data_root).expanduser()}" if cfg.data_root else str(cfg.dataset)
            return (cached_dataset(splits.train, name, "train", cfg.img_size, workers=workers),
                    cached_dataset(splits.val, name, "val", cfg.img_size, workers=workers))

        if rank == 0:
            train_cache, val_cache = caches()
            barrier()
        else:
            barrier()
            train_cache, val_cache = caches()
        policy = cfg.randaugment_policy
        batched = parse_policy(policy) if policy else None  # None: a policy only timm's PIL code implements
        in_workers = CachedRandAugment(policy, cfg.img_size, mean) if policy and batched is None else None
        train_ds = CachedSplit(train_cache, in_workers)
        val_ds = CachedSplit(val_cache)
        preprocess = BatchAugment(cfg.img_size, mean, std, device, channels_last, cfg.reprob,
                                  crop_pct=1.0 if splits.builtin else 0.875, seed=cfg.seed * 1_000_003 + rank,
                                  randaugment=batched)
    pin = device.type == "cuda"
    collate = collate_squares if pipeline == "cached" else None
    train_sampler = ResumableSampler(len(train_ds), rank, world_size, shuffle=True, seed=cfg.seed)
    val_sampler = ResumableSampler(len(val_ds), rank, world_size, shuffle=False, pad=False)
    return Loaders(
        pipeline=pipeline,
        workers=workers,
        train_size=len(train_ds),
        train_sampler=train_sampler,
        train_loader=make_loader(train_ds, train_sampler, cfg.batch_size, workers, pin, True, cfg.seed + rank, collate),
        val_loader=make_loader(val_ds, val_sampler, cfg.batch_size, workers, pin, False, cfg.seed, collate),
        preprocess=preprocess,
    )
