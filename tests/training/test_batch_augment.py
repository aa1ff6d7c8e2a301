"""Batched on-device augmentation (the ``cached`` pipeline) against timm's PIL path: same distributions, fixed seeds.

Tolerances: two-sample Kolmogorov-Smirnov distances at n = 4000 per side are compared with 0.05 (the 0.1 % critical
value is 1.95 * sqrt(2 / 4000) = 0.044); rates with 4000 draws with 0.03 (about 4 standard deviations). Every draw
uses a fixed seed, so the tests cannot flake.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from learngene.training.batch_augment import (
    BatchAugment,
    crop_and_resize,
    erase,
    sample_crop_boxes,
    sample_erase_boxes,
)

N = 4000
KS = 0.05


def timm_crop_params(height, width, n, seed=0):
    from timm.data.transforms import RandomResizedCropAndInterpolation

    random.seed(seed)
    image = Image.new("RGB", (width, height))
    get = RandomResizedCropAndInterpolation.get_params
    return np.array([get(image, (0.08, 1.0), (3 / 4, 4 / 3)) for _ in range(n)])  # (i, j, h, w)


def describe(boxes, height, width):
    top, left, h, w = (boxes[:, k].astype(float) for k in range(4))
    return {"scale": h * w / (height * width), "log_ratio": np.log(w / h),
            "centre_x": (left + w / 2) / width, "centre_y": (top + h / 2) / height}


@pytest.mark.parametrize("height,width", [(64, 64), (20, 60)])  # a square cache entry, and a 3:1 image (fallbacks)
def test_crop_scale_ratio_and_position_follow_timm(height, width):
    ours = describe(sample_crop_boxes(N, height, width, torch.Generator().manual_seed(1)).numpy(), height, width)
    theirs = describe(timm_crop_params(height, width, N), height, width)
    for name in ours:
        distance = stats.ks_2samp(ours[name], theirs[name]).statistic
        assert distance < KS, (name, distance)
    boxes = sample_crop_boxes(N, height, width, torch.Generator().manual_seed(2)).numpy()
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 0] + boxes[:, 2] <= height).all()
    assert (boxes[:, 1] >= 0).all() and (boxes[:, 1] + boxes[:, 3] <= width).all()


def test_crop_and_resize_copies_integer_boxes_and_averages_when_shrinking(monkeypatch):
    images = (torch.arange(2 * 3 * 16 * 16).reshape(2, 3, 16, 16) % 251).to(torch.uint8)
    boxes = torch.tensor([[0, 0, 16, 16], [4, 2, 8, 8]])
    same = crop_and_resize(images, boxes, 16)  # CPU path: interpolate per image
    assert torch.equal(same[0], images[0])
    half = crop_and_resize(images, boxes, 8)
    assert torch.equal(half[1], images[1, :, 4:12, 2:10])
    mirrored = crop_and_resize(images, boxes, 16, torch.tensor([False, True]))
    assert torch.equal(mirrored[0], images[0]) and torch.equal(mirrored[1, :, :, 0], same[1, :, :, -1])
    # the GPU path (roi_align), run on the CPU: same copies, and a 2 x 2 area average when halving
    from torchvision.ops import roi_align

    reference = roi_align(images.float(), torch.tensor([[0.0, 0, 0, 16, 16]]), (8, 8), 1.0, -1, True)
    expected = images[0].float().reshape(3, 8, 2, 8, 2).mean(dim=(2, 4))
    assert torch.allclose(reference[0], expected, atol=1e-3)
    ramp = (torch.arange(16) * 15).to(torch.uint8).expand(1, 3, 16, 16)  # smooth: the two paths agree
    cpu_half = crop_and_resize(ramp, torch.tensor([[0, 0, 16, 16]]), 8)
    assert (cpu_half.float() - ramp.float().reshape(1, 3, 8, 2, 8, 2).mean(dim=(3, 5))).abs().max() <= 4


def test_flip_rate_and_that_flips_mirror_the_crop():
    side = 8
    image = torch.arange(side, dtype=torch.uint8).repeat(3, side, 1)  # columns 0..7: a flip reverses them
    augment = BatchAugment(side, (0, 0, 0), (1 / 255,) * 3, torch.device("cpu"), scale=(1, 1), ratio=(1, 1), seed=3)
    out = augment(image.expand(N, 3, side, side), train=True)
    forward = torch.allclose(out, image.float().expand_as(out), atol=1e-3)
    assert not forward  # some are flipped
    flipped = torch.isclose(out[:, 0, 0, 0], torch.tensor(float(side - 1)))
    unflipped = torch.isclose(out[:, 0, 0, 0], torch.tensor(0.0))
    assert bool((flipped | unflipped).all())
    assert abs(flipped.float().mean().item() - 0.5) < 0.03


def test_random_erasing_rate_and_area_follow_timm():
    from timm.data.random_erasing import RandomErasing

    size, prob, n = 32, 0.25, N
    torch.manual_seed(0), random.seed(0)
    reference = RandomErasing(prob, mode="pixel", max_count=1, device="cpu")
    theirs = []
    for _ in range(n):
        erased = reference(torch.zeros(3, size, size)) != 0
        theirs.append(erased[0].float().mean().item())
    boxes = sample_erase_boxes(n, size, size, prob, torch.Generator().manual_seed(4))
    out = erase(torch.zeros(n, 3, size, size), boxes)
    ours = (out[:, 0] != 0).float().mean(dim=(1, 2)).numpy()
    theirs = np.array(theirs)
    assert abs((ours > 0).mean() - (theirs > 0).mean()) < 0.03
    distance = stats.ks_2samp(ours[ours > 0], theirs[theirs > 0]).statistic
    assert distance < 0.1, distance  # about 1000 erased images per side: 0.1 % critical value 0.087


def test_mixup_lambda_in_training_follows_beta():
    """Mixup runs on the device after either pipeline's preprocessing (the engine applies timm's Mixup to the batch
    that preprocess returns); its lambda is Beta(0.8, 0.8), CutMix's box area Beta(1, 1)."""
    from timm.data import Mixup

    np.random.seed(0), random.seed(0)
    mixup = Mixup(mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.0, num_classes=2)
    images, targets = torch.zeros(2, 3, 8, 8), torch.tensor([0, 1])
    lams = []
    for _ in range(N):
        _, soft = mixup(images.clone(), targets.clone())
        lams.append(soft[0, 0].item())  # first image's weight on its own class
    distance = stats.kstest(lams, stats.beta(0.8, 0.8).cdf).statistic
    assert distance < 1.63 / math.sqrt(N) * 1.2, distance  # 1 % critical value with margin


def test_evaluation_from_the_cache_equals_timms_eval_transform():
    from timm.data import create_transform

    from learngene.training.image_cache import cache_side, decode_square

    rng = np.random.default_rng(0)
    size = 32
    pil_eval = create_transform(size, is_training=False, interpolation="bicubic", crop_pct=0.875,
                                use_prefetcher=True)  # uint8 output, no normalisation
    augment = BatchAugment(size, (0, 0, 0), (1 / 255,) * 3, torch.device("cpu"))
    for shape in [(40, 60), (80, 50), (36, 36)]:
        image = Image.fromarray(rng.integers(0, 255, shape + (3,), dtype=np.uint8))
        expected = pil_eval(image).float()
        square = torch.from_numpy(decode_square(image, cache_side(size))).permute(2, 0, 1)[None]
        assert torch.equal(augment(square, train=False)[0], expected)


def test_training_batches_are_normalised_at_the_model_size():
    augment = BatchAugment(24, (0.5,) * 3, (0.25,) * 3, torch.device("cpu"), erase_prob=0.0, seed=0)
    images = torch.full((6, 3, 27, 27), 255, dtype=torch.uint8)
    out = augment(images, train=True)
    assert out.shape == (6, 3, 24, 24) and out.dtype == torch.float32
    assert torch.allclose(out, torch.full_like(out, (1 - 0.5) / 0.25), atol=1e-4)
