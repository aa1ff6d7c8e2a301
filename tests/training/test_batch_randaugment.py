"""Batched RandAugment (the ``cached`` pipeline) against timm's PIL RandAugment.

Each op is compared with timm's own PIL op on the same image with the same argument (fixed magnitude and sign). The
lookup-table and blend ops must equal PIL (blend: within 1 grey level, float32 vs PIL's float rounding); the affine
ops resample with torch's bicubic instead of PIL's and treat the half-pixel edge differently, so on the smooth test
image the mean absolute difference must stay under 1.5 grey levels and at most 3 % of pixels may differ by more than
8 (the moved image's borders; about 1-1.5 % measured at 48 px). Distributions: 4000 images x 2 layers with fixed
seeds; chi-square and KS tests at the 0.1 % level, so the tests cannot flake.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from timm.data import auto_augment as timm_aa

from learngene.errors import LearngeneError
from learngene.training.batch_augment import BatchAugment
from learngene.training.batch_randaugment import (
    AFFINE_OPS,
    INCREASING_OPS,
    PLAIN_OPS,
    SIGNED_OPS,
    BatchRandAugment,
    apply_op,
    level_to_arg,
    parse_policy,
    sample_draw,
)
from learngene.training.data import _safe_posterize

PAPER = "rand-m9-mstd0.5-inc1"
FILL = (124, 116, 104)  # timm's img_mean for the ImageNet mean
N = 4000


def smooth_image(side: int = 48, seed: int = 0) -> np.ndarray:
    """A photo-like uint8 image: low-frequency colour waves plus a little noise, every level range used."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    channels = [128 + 100 * np.sin(xx / 7.0 + c) * np.cos(yy / 11.0 - c) + rng.normal(0, 6, (side, side))
                for c in range(3)]
    return np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8)


def timm_op(name: str):
    return _safe_posterize if name.startswith("Posterize") else timm_aa.NAME_TO_OP[name]


def test_op_lists_and_policy_are_timms():
    assert list(INCREASING_OPS) == timm_aa._RAND_INCREASING_TRANSFORMS
    assert list(PLAIN_OPS) == timm_aa._RAND_TRANSFORMS
    theirs = timm_aa.rand_augment_transform(PAPER, {})
    ours = parse_policy(PAPER)
    assert ours.ops == tuple(op.name for op in theirs.ops) and ours.layers == theirs.num_layers == 2
    assert {op.prob for op in theirs.ops} == {ours.prob} and {op.magnitude for op in theirs.ops} == {ours.magnitude}
    assert {op.magnitude_std for op in theirs.ops} == {ours.magnitude_std} == {0.5}
    assert parse_policy("rand-m7-n3-mstd101-p0.3").magnitude_std == float("inf")
    assert parse_policy("rand-m9-tweights") is None  # weighted op sets stay with timm's PIL RandAugment
    with pytest.raises(LearngeneError, match="unknown section 'x3'"):
        parse_policy("rand-m9-x3")


@pytest.mark.parametrize("name", sorted(set(INCREASING_OPS) | set(PLAIN_OPS)))
def test_level_to_arg_is_timms(name):
    level_fn = timm_aa.LEVEL_TO_ARG[name]
    magnitudes = torch.linspace(0, 10, 101, dtype=torch.float64)
    for negate in (False, True):
        ours = level_to_arg(name, magnitudes, torch.full((101,), negate))
        if level_fn is None:
            continue
        for m, value in zip(magnitudes.tolist(), ours.tolist(), strict=True):
            random.seed(0)
            expected = level_fn(m, {"translate_pct": 0.45})[0]
            if name in SIGNED_OPS:  # timm draws the sign itself; ours is given: compare the unsigned level
                expected = abs(expected - 1) + 1 if name.endswith("Increasing") else abs(expected)
                value = abs(value - 1) + 1 if name.endswith("Increasing") else abs(value)
                if name.endswith("Increasing") and negate:
                    continue  # 1 - level, clamped at 0.1: checked through the PIL comparison below
            assert value == pytest.approx(expected, abs=1e-12), (m, value, expected)


@pytest.mark.parametrize("name", INCREASING_OPS + ("Posterize", "Solarize", "Color", "Contrast", "Brightness",
                                                   "Sharpness"))
def test_each_op_matches_timms_pil_op(name):
    image = smooth_image()
    pil = Image.fromarray(image)
    batch = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    fill = torch.tensor(FILL, dtype=torch.float32).view(1, 3, 1, 1)
    for magnitude in (5.0, 9.0, 10.0):
        for negate in (False, True):
            argument = level_to_arg(name, torch.tensor([magnitude], dtype=torch.float64), torch.tensor([negate]))
            args = () if timm_aa.LEVEL_TO_ARG[name] is None else (argument.item(),)
            if name.startswith("Posterize") or name.startswith("Solarize"):
                args = (int(argument.item()),)
            expected = np.asarray(timm_op(name)(pil, *args, fillcolor=FILL, resample=Image.BICUBIC), np.float64)
            ours = apply_op(name, batch.clone(), argument, fill)[0].permute(1, 2, 0).numpy().astype(np.float64)
            assert ours.min() >= 0 and ours.max() <= 255 and np.array_equal(ours, np.round(ours))
            diff = np.abs(ours - expected)
            where = (name, magnitude, negate)
            if name in AFFINE_OPS:
                assert diff.mean() < 1.5, (where, diff.mean())
                assert (diff > 8).mean() <= 0.03, (where, (diff > 8).mean())
            elif name.removesuffix("Increasing") in ("Color", "Contrast", "Brightness", "Sharpness"):
                assert diff.max() <= 1, (where, diff.max())
            else:
                assert diff.max() == 0, (where, diff.max())


def test_equalize_and_autocontrast_handle_flat_and_two_level_channels():
    flat = np.full((8, 8, 3), 77, np.uint8)
    flat[:4, :, 1] = 200  # channel 1 has two levels, channels 0 and 2 one
    batch = torch.from_numpy(flat).permute(2, 0, 1)[None].float()
    nothing = torch.zeros(1, dtype=torch.float64)
    for name in ("Equalize", "AutoContrast"):
        expected = np.asarray(timm_op(name)(Image.fromarray(flat)), np.float64)
        ours = apply_op(name, batch.clone(), nothing, torch.zeros(1, 3, 1, 1))[0].permute(1, 2, 0).numpy()
        assert np.array_equal(ours, expected), name


def timm_draws(n: int, seed: int = 0) -> tuple[list[int], list[float]]:
    """Op indices and magnitudes timm's RandAugment would draw (its own code path: np.random.choice, then
    AugmentOp's random.random / random.gauss), recorded by wrapping the ops' functions."""
    transform = timm_aa.rand_augment_transform(PAPER, {})
    record: list[tuple[int, float]] = []
    for index, op in enumerate(transform.ops):
        def level(magnitude, hparams, index=index):
            record.append((index, magnitude))
            return ()

        op.level_fn, op.aug_fn = level, (lambda img, *a, **k: img)
    np.random.seed(seed), random.seed(seed)
    image = Image.new("RGB", (4, 4))
    for _ in range(n):
        transform(image)
    return [i for i, _ in record], [m for _, m in record]


def test_op_choice_rate_and_magnitude_follow_the_policy():
    policy = parse_policy(PAPER)
    draw = sample_draw(N, policy, torch.Generator().manual_seed(0))
    ops = draw.ops.flatten()
    applied = ops >= 0
    theirs_ops, theirs_magnitudes = timm_draws(N)
    # each op applied with probability 0.5: 8000 layer draws, 4 standard deviations = 0.022
    assert abs(applied.double().mean().item() - 0.5) < 0.023
    assert abs(len(theirs_ops) / (2 * N) - 0.5) < 0.023
    counts = torch.bincount(ops[applied], minlength=15).numpy()
    assert stats.chisquare(counts).pvalue > 0.001  # uniform over the 15 ops
    theirs_counts = np.bincount(theirs_ops, minlength=15)
    assert stats.chi2_contingency(np.stack([counts, theirs_counts])).pvalue > 0.001
    magnitudes = draw.magnitude.flatten()[applied].numpy()
    assert stats.ks_2samp(magnitudes, theirs_magnitudes).pvalue > 0.001
    assert magnitudes.min() >= 0 and magnitudes.max() == 10.0  # clipped at timm's upper bound
    assert abs(draw.negate.double().mean().item() - 0.5) < 0.023


def test_batched_randaugment_is_deterministic_given_the_generator():
    images = torch.from_numpy(np.stack([smooth_image(32, seed) for seed in range(16)])).permute(0, 3, 1, 2)
    augment = BatchRandAugment(parse_policy(PAPER), FILL)
    first = augment(images, torch.Generator().manual_seed(5))
    again = augment(images, torch.Generator().manual_seed(5))
    other = augment(images, torch.Generator().manual_seed(6))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.dtype == torch.float32 and first.shape == images.shape
    changed = (first != images.float()).flatten(1).any(1)
    assert 0 < changed.sum() < 16  # 2 layers at p 0.5: a quarter of the images untouched on average
    # the GPU crop (roi_align) hands over fractional floats: rounded on entry, integer levels out
    fractional = augment(images.float() + 0.3, torch.Generator().manual_seed(5))
    assert torch.equal(fractional, first)


def test_cached_pipeline_applies_randaugment_on_the_device_and_resumes_its_draws():
    images = torch.from_numpy(np.stack([smooth_image(36, seed) for seed in range(8)])).permute(0, 3, 1, 2)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    plain = BatchAugment(32, mean, std, torch.device("cpu"), seed=1)
    augmented = BatchAugment(32, mean, std, torch.device("cpu"), seed=1, randaugment=parse_policy(PAPER))
    assert augmented.randaugment.fill == FILL
    assert not torch.equal(plain(images, True), augmented(images, True))
    state = augmented.state_dict()
    following = augmented(images, True)
    restored = BatchAugment(32, mean, std, torch.device("cpu"), seed=99, randaugment=parse_policy(PAPER))
    restored.load_state_dict(state)
    assert torch.equal(restored(images, True), following)


def test_affine_grid_equals_torchs():
    from learngene.training.batch_randaugment import affine_grid, pil_affine, to_theta

    theta = to_theta(pil_affine("Rotate", torch.tensor([17.0, -30.0], dtype=torch.float64), 12, 20), 12, 20).float()
    expected = torch.nn.functional.affine_grid(theta, [2, 3, 12, 20], align_corners=False)
    assert torch.allclose(affine_grid(theta, 12, 20), expected, atol=1e-6)


@pytest.mark.parametrize(("policy", "batched"), [(PAPER, True), ("rand-m9-tweights", False), ("none", None)])
def test_the_cached_pipeline_batches_the_policy_it_can(tmp_path, monkeypatch, policy, batched):
    from learngene.training.batch_augment import CachedRandAugment
    from learngene.training.config import TrainConfig
    from learngene.training.data import build_loaders, load_splits

    monkeypatch.setenv("LEARNGENE_CACHE_DIR", str(tmp_path / "cache"))
    cfg = TrainConfig(model="vit_tiny_patch16_224", img_size=32, dataset="digits", batch_size=8, workers=0,
                      device="cpu", randaugment=policy)
    loaders = build_loaders(cfg, load_splits(cfg), (0.5,) * 3, (0.5,) * 3, torch.device("cpu"), data_pipeline="cached")
    in_workers = loaders.train_loader.dataset.transform
    if batched is None:
        assert loaders.preprocess.randaugment is None and in_workers is None
    elif batched:
        assert loaders.preprocess.randaugment.policy == parse_policy(PAPER) and in_workers is None
    else:  # weighted op sets: timm's PIL RandAugment in the loader workers, nothing batched
        assert loaders.preprocess.randaugment is None and isinstance(in_workers, CachedRandAugment)


def test_image_by_image_equals_the_gathered_sub_batches():
    """The CPU path (each image a view of the batch) and the GPU path (one call per op on the gathered images)."""
    images = torch.from_numpy(np.stack([smooth_image(32, seed) for seed in range(24)])).permute(0, 3, 1, 2)
    draw = sample_draw(24, parse_policy(PAPER), torch.Generator().manual_seed(3))
    assert (draw.ops >= 0).sum() > 16  # most ops drawn at least once
    for mode in ("bicubic", "bilinear"):
        one_by_one = BatchRandAugment(parse_policy(PAPER), FILL, mode, per_image=True).apply(images, draw)
        gathered = BatchRandAugment(parse_policy(PAPER), FILL, mode, per_image=False).apply(images, draw)
        if mode == "bicubic":
            assert torch.equal(one_by_one, gathered)
        else:  # translations take the shifted-copies path image by image: float rounding at .5 only
            diff = (one_by_one - gathered).abs()
            assert diff.max() <= 1 and (diff > 0).double().mean() < 0.002


@pytest.mark.parametrize("name", ["TranslateXRel", "TranslateYRel"])
def test_bilinear_translation_by_shifted_copies(name):
    """Against ``grid_sample`` (the general warp) and PIL's own bilinear affine transform, over whole and fractional
    shifts both ways, including shifts past the image (all fill)."""
    from learngene.training.batch_randaugment import pil_affine, to_theta, translate_bilinear, warp

    image = smooth_image(40, 2)
    batch = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    fill = torch.tensor(FILL, dtype=torch.float32).view(1, 3, 1, 1)
    axis = -1 if name == "TranslateXRel" else -2
    for fraction in (0.0, 0.1, -0.237, 0.45, -0.45, 0.5, 1.3):
        argument = torch.tensor([fraction], dtype=torch.float64)
        ours = translate_bilinear(batch, argument, axis, fill)
        general = warp(batch, to_theta(pil_affine(name, argument, 40, 40), 40, 40), fill, "bilinear")
        diff = (ours - general).abs()
        assert diff.max() <= 1 and (diff > 0).double().mean() < 0.005, (fraction, diff.max())
        pixels = fraction * 40
        expected = np.asarray(Image.fromarray(image).transform(
            (40, 40), Image.AFFINE, (1, 0, pixels, 0, 1, 0) if axis == -1 else (1, 0, 0, 0, 1, pixels),
            resample=Image.BILINEAR, fillcolor=FILL), np.float64)
        mine = ours[0].permute(1, 2, 0).numpy().astype(np.float64)
        inside = slice(2, 38)  # PIL switches to the fill colour at the moved edge instead of blending into it
        moved = (slice(None), inside) if axis == -1 else (inside, slice(None))
        if abs(fraction) < 0.9:
            keep = np.ones((40, 40), bool)
            edge = round(-pixels) if pixels < 0 else round(40 - pixels)  # where x + pixels leaves [0, 40)
            for column in range(edge - 2, edge + 3):  # the seam between image and fill
                if 0 <= column < 40:
                    if axis == -1:
                        keep[:, column] = False
                    else:
                        keep[column, :] = False
            assert np.abs(mine - expected)[keep].max() <= 1, (fraction, np.abs(mine - expected)[keep].max())
        else:
            assert np.array_equal(mine[moved], expected[moved])  # moved entirely out: the fill colour

