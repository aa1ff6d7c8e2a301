"""Training and evaluation preprocessing as batched tensor ops on the training device (the ``cached`` pipeline).

The loader hands over uint8 squares from the decoded-once cache (``image_cache``); everything per-pixel happens here,
on whole batches, on the device the model trains on:

- random resized crop: per-image boxes drawn exactly as timm's ``RandomResizedCropAndInterpolation.get_params``
  (scale 0.08-1, log-uniform ratio 3/4-4/3, ten attempts, centre-crop fallback), then one ``roi_align`` call crops
  and resizes the whole batch. Bilinear sampling with an adaptive number of samples per output pixel (an area
  average when shrinking) stands in for PIL's bicubic resize;
- horizontal flip with probability 0.5 per image;
- normalisation with the model's mean and std;
- random erasing drawn as timm's ``RandomErasing`` (``pixel`` mode, one box, area 0.02-1/3, log ratio 0.3-3.3),
  applied with per-image masks instead of a Python loop over the batch;
- evaluation: the cached square is the short-side resize to ``img_size / crop_pct`` already, so evaluation is a
  centre crop (plus a batched antialiased resize when the cache side differs from that size).

- RandAugment (the paper's ``rand-m9-mstd0.5-inc1``) on the cropped, flipped uint8-valued batch, before
  normalisation, as timm orders it: :class:`~learngene.training.batch_randaugment.BatchRandAugment`, per-image op and
  magnitude, each op batched over the images that drew it (see that module for where it differs from PIL). A policy
  it cannot batch (timm's weighted ``t...`` op sets) falls back to timm's PIL RandAugment in the loader workers on
  the cached square (:class:`CachedRandAugment`), before the crop.

Mixup/CutMix stay with timm's ``Mixup``, which the engine already applies on the device to whole batches in both
pipelines. All random draws (boxes, flips, RandAugment ops, erase boxes) come from one CPU ``torch.Generator``,
whose state checkpoints save (:meth:`BatchAugment.state_dict`) so a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from learngene.training.batch_randaugment import BatchRandAugment, RandAugmentPolicy, to_device

DEFAULT_SCALE = (0.08, 1.0)  # timm's RandomResizedCrop defaults (ImageNet recipe, DeiT)
DEFAULT_RATIO = (3.0 / 4.0, 4.0 / 3.0)
ATTEMPTS = 10


def _uniform(generator: torch.Generator, shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
    return torch.rand(shape, generator=generator, dtype=torch.float64) * (high - low) + low


def _randint_inclusive(generator: torch.Generator, high: torch.Tensor) -> torch.Tensor:
    """Uniform integers in [0, high] per element (``random.randint(0, high)``)."""
    return torch.floor(torch.rand(high.shape, generator=generator, dtype=torch.float64) * (high + 1)).long()


def sample_crop_boxes(count: int, height: int, width: int, generator: torch.Generator,
                      scale: Sequence[float] = DEFAULT_SCALE, ratio: Sequence[float] = DEFAULT_RATIO) -> torch.Tensor:
    """``count`` random-resized-crop boxes (top, left, height, width), int64 (count, 4), drawn like timm's.

    All ten attempts of every image are drawn at once; each image keeps its first attempt that fits, and images with
    none fall back to timm's centre crop clamped to the ratio range.
    """
    area = height * width
    target_area = _uniform(generator, (count, ATTEMPTS), scale[0], scale[1]) * area
    aspect = torch.exp(_uniform(generator, (count, ATTEMPTS), math.log(ratio[0]), math.log(ratio[1])))
    w = torch.round(torch.sqrt(target_area * aspect)).long()
    h = torch.round(torch.sqrt(target_area / aspect)).long()
    fits = (w <= width) & (h <= height)
    first = torch.argmax(fits.int(), dim=1)  # index of the first attempt that fits (0 when none does)
    rows = torch.arange(count)
    h, w, any_fit = h[rows, first], w[rows, first], fits.any(dim=1)
    top = _randint_inclusive(generator, (height - h).clamp_min(0))
    left = _randint_inclusive(generator, (width - w).clamp_min(0))
    # timm's fallback: the largest centred crop whose ratio is inside the range
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(height * max(ratio))), height
    else:
        fw, fh = width, height
    h = torch.where(any_fit, h, torch.full_like(h, fh))
    w = torch.where(any_fit, w, torch.full_like(w, fw))
    top = torch.where(any_fit, top, torch.full_like(top, (height - fh) // 2))
    left = torch.where(any_fit, left, torch.full_like(left, (width - fw) // 2))
    return torch.stack([top, left, h, w], dim=1)


def crop_and_resize(images: torch.Tensor, boxes: torch.Tensor, size: int,
                    flips: torch.Tensor | None = None) -> torch.Tensor:
    """Crop every image to its box, resize to ``size`` x ``size`` and mirror those marked in ``flips``.

    On a GPU: one ``torchvision.ops.roi_align`` call for the batch (float output); with ``sampling_ratio=-1`` each
    output pixel averages ceil(box / size)^2 bilinear samples, so shrinking is antialiased. On a CPU, where
    ``roi_align`` is not vectorised, a loop of antialiased bilinear ``interpolate`` calls on the uint8 crops is about
    4x faster; output keeps the input dtype and memory format (channels-last uint8, as the cached loader hands it
    over, takes PyTorch's vectorised uint8 path: about 2.7x faster than channels-first). Only the flipped images are
    mirrored (no whole-batch ``where``).
    """
    flipped = [] if flips is None else torch.nonzero(flips.cpu()).flatten().tolist()
    if images.device.type == "cpu":
        layout = torch.channels_last if images.is_contiguous(memory_format=torch.channels_last) else \
            torch.contiguous_format
        out = torch.empty(images.shape[0], images.shape[1], size, size, dtype=images.dtype, memory_format=layout)
        mirror = set(flipped)
        for index, (top, left, height, width) in enumerate(boxes.tolist()):
            crop = images[index:index + 1, :, top:top + height, left:left + width]
            if index in mirror:
                crop = crop.flip(-1)
            out[index] = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True,
                                       align_corners=False)[0]
        return out
    from torchvision.ops import roi_align

    boxes = to_device(boxes, images.device, torch.float32)
    top, left, height, width = boxes.unbind(1)
    index = torch.arange(images.shape[0], device=images.device, dtype=torch.float32)
    rois = torch.stack([index, left, top, left + width, top + height], dim=1)
    out = roi_align(images.float(), rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1,
                    aligned=True)
    if flipped:
        chosen = to_device(torch.tensor(flipped), out.device)
        out[chosen] = out[chosen].flip(-1)
    return out


def sample_erase_boxes(count: int, height: int, width: int, probability: float, generator: torch.Generator,
                       area: Sequence[float] = (0.02, 1 / 3), log_ratio_range: Sequence[float] = (0.3, 1 / 0.3)
                       ) -> torch.Tensor:
    """Random-erasing boxes (top, left, height, width) like timm's ``RandomErasing`` with one box; rows of zeros for
    images not erased (probability, or no attempt fitted)."""
    apply = torch.rand(count, generator=generator, dtype=torch.float64) < probability
    target = _uniform(generator, (count, ATTEMPTS), area[0], area[1]) * height * width
    aspect = torch.exp(_uniform(generator, (count, ATTEMPTS), math.log(log_ratio_range[0]),
                                math.log(log_ratio_range[1])))
    h = torch.round(torch.sqrt(target * aspect)).long()
    w = torch.round(torch.sqrt(target / aspect)).long()
    fits = (w < width) & (h < height)
    first = torch.argmax(fits.int(), dim=1)
    rows = torch.arange(count)
    h, w = h[rows, first], w[rows, first]
    keep = apply & fits.any(dim=1)
    top = _randint_inclusive(generator, (height - h).clamp_min(0))
    left = _randint_inclusive(generator, (width - w).clamp_min(0))
    return torch.stack([top, left, h, w], dim=1) * keep[:, None]


def erase(images: torch.Tensor, boxes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill each image's box with standard-normal noise per pixel (timm's ``pixel`` mode on normalised input), in
    place. Boxes live on the CPU (they are drawn there), so the loop over erased images never syncs the device.
    ``generator`` (on the images' device) draws the noise; torch's global one when None."""
    for index, (top, left, height, width) in enumerate(boxes.tolist()):
        if height and width:
            region = images[index, :, top:top + height, left:left + width]
            region.copy_(torch.randn(region.shape, device=images.device, dtype=images.dtype, generator=generator))
    return images


class BatchAugment:
    """The cached pipeline's preprocessing: uint8 (B, 3, S, S) squares on the device -> normalised float batches.

    Call as ``augment(images, train)``, the engine's ``preprocess`` hook (mixup follows in the engine).

    Args:
        img_size: output side.
        mean, std: per-channel statistics in [0, 1] units.
        device: where batches arrive.
        channels_last: return NHWC-strided tensors.
        erase_prob: random-erasing probability (training).
        crop_pct: evaluation crop fraction (0.875; 1.0 for the built-in sets rendered at model size).
        hflip: flip probability (training).
        seed: seeds the parameter generator (boxes and flips are drawn on the CPU: a few numbers per image).
        randaugment: a batchable RandAugment policy (:func:`~learngene.training.batch_randaugment.parse_policy`),
            or None.
        mean_fill: the RandAugment fill colour (timm: the mean x 255, rounded).
    """

    def __init__(self, img_size: int, mean: Sequence[float], std: Sequence[float], device: torch.device,
                 channels_last: bool = False, erase_prob: float = 0.0, crop_pct: float = 0.875,
                 hflip: float = 0.5, scale: Sequence[float] = DEFAULT_SCALE, ratio: Sequence[float] = DEFAULT_RATIO,
                 seed: int = 0, randaugment: RandAugmentPolicy | None = None) -> None:
        self.img_size, self.crop_pct, self.hflip = int(img_size), float(crop_pct), float(hflip)
        self.scale, self.ratio, self.erase_prob = tuple(scale), tuple(ratio), float(erase_prob)
        # (x - 255 mean) / (255 std) as one multiply-add: x * scale + shift
        self.norm_scale = torch.tensor([1.0 / (255.0 * s) for s in std], device=device).view(1, 3, 1, 1)
        shift = [-m / s for m, s in zip(mean, std, strict=True)]
        self.norm_shift = torch.tensor(shift, device=device).view(1, 3, 1, 1)
        self.channels_last = channels_last
        self.generator = torch.Generator().manual_seed(int(seed))
        self.noise_generator = torch.Generator(device=device)  # erasing noise, reseeded from ``generator``
        self.randaugment = None
        if randaugment is not None:
            fill = tuple(min(255, round(255 * m)) for m in mean)  # timm's img_mean hparam
            # bicubic as timm on a GPU; on a CPU bilinear resampling costs about two thirds as much (see
            # docs/benchmarks.md), like the crop there which already resamples bilinearly
            self.randaugment = BatchRandAugment(randaugment, fill, "bicubic" if device.type == "cuda" else "bilinear")

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The parameter generator's state (a uint8 tensor: checkpoints load it with ``weights_only``)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])

    def train_params(self, count: int, side: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Crop boxes (count, 4), flip flags (count,) and erase boxes (count, 4) for one batch."""
        boxes = sample_crop_boxes(count, side, side, self.generator, self.scale, self.ratio)
        flips = torch.rand(count, generator=self.generator) < self.hflip
        erase_boxes = sample_erase_boxes(count, self.img_size, self.img_size, self.erase_prob, self.generator)
        return boxes, flips, erase_boxes

    def __call__(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 (B, 3, S, S) -> normalised float32 (B, 3, img_size, img_size)."""
        if train:
            boxes, flips, erase_boxes = self.train_params(images.shape[0], images.shape[-1])
            out = crop_and_resize(images, boxes, self.img_size, flips)
            if self.randaugment is not None:
                out = self.randaugment(out, self.generator)
            # float32 in channels-first memory for the per-pixel ops below (one pass: convert and transpose)
            out = out.to(torch.float32, memory_format=torch.contiguous_format)
            # x * scale + shift; a multiply and an in-place add are ~4x cheaper on a CPU than a broadcast addcmul
            out = out.mul_(self.norm_scale).add_(self.norm_shift)
            if self.erase_prob > 0:
                # the noise generator lives on the device; its seed comes from the checkpointed CPU generator
                seed = int(torch.randint(0, 2**62, (1,), generator=self.generator).item())
                out = erase(out, erase_boxes, self.noise_generator.manual_seed(seed))
        else:
            out = self.evaluation_crop(images).mul(self.norm_scale).add_(self.norm_shift)
        if self.channels_last:
            out = out.contiguous(memory_format=torch.channels_last)
        return out

    def evaluation_crop(self, images: torch.Tensor) -> torch.Tensor:
        """timm's eval transform on a cached square: resize to ``img_size / crop_pct``, centre-crop ``img_size``."""
        resize = int(math.floor(self.img_size / self.crop_pct))
        out = images.float()
        if images.shape[-1] != resize:
            out = F.interpolate(out, size=(resize, resize), mode="bicubic", antialias=True, align_corners=False)
            out = out.clamp_(0, 255).round_()
        offset = int(round((resize - self.img_size) / 2.0))  # torchvision's CenterCrop rounding
        return out[..., offset:offset + self.img_size, offset:offset + self.img_size].contiguous()


class CachedRandAugment:
    """timm's RandAugment (PIL) on a cached uint8 (3, S, S) tensor, in the loader workers; returns uint8 again."""

    def __init__(self, policy: str, img_size: int, mean: Sequence[float]) -> None:
        from timm.data.auto_augment import rand_augment_transform
        from torchvision.transforms import Compose

        from learngene.training.data import _guard_posterize

        hparams = dict(translate_const=int(img_size * 0.45), img_mean=tuple(min(255, round(255 * m)) for m in mean))
        self.transform = rand_augment_transform(policy, hparams)
        _guard_posterize(Compose([self.transform]))  # Pillow 13 safe posterize, as in the PIL pipeline

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        from PIL import Image

        pil = Image.fromarray(image.permute(1, 2, 0).numpy())
        return torch.from_numpy(np.array(self.transform(pil), dtype=np.uint8)).permute(2, 0, 1)
