"""timm's RandAugment as batched tensor ops on the training device (the ``cached`` pipeline).

The policy is parsed from timm's config string (``rand-m9-mstd0.5-inc1``, the paper's: 2 ops per image drawn with
replacement from timm's 15 ``inc1`` ops, each applied with probability 0.5 at a magnitude drawn from N(9, 0.5)
clipped to [0, 10], with a random sign for the signed ops). Parameters are drawn per image on the CPU from one
``torch.Generator`` (a few numbers per image, so the device never waits for the host and a checkpoint can store the
generator's state); on a GPU each op then runs once per batch on the sub-batch of images that drew it, on a CPU
image by image on views of the batch (see :class:`BatchRandAugment`'s ``per_image``), with the same results:

- lookup-table ops (auto-contrast, equalize, solarize, solarize-add): one 256-entry table per image and channel,
  built from that image's histogram where the op needs one, all applied with a single ``gather``; invert and
  posterize as arithmetic on the levels (255 - x; floor(x / 2^(8 - bits)) 2^(8 - bits), exact in float32), which
  costs a quarter of a table lookup on a CPU. These equal PIL exactly (integer arithmetic as in ``ImageOps``);
- blend ops (brightness, contrast, colour/saturation, sharpness): ``PIL.ImageEnhance``'s blend with its degenerate
  image (black, the rounded mean grey, the ITU-R 601 luma, the 3x3 ``SMOOTH`` filter with the border kept), in float32
  and truncated like ``Image.blend``. Equal to PIL except where float32 rounding lands on the other side of an
  integer: at most 1 grey level;
- affine ops (rotate, shear-x/y, translate-x/y relative): every image of the layer that drew one of them goes through
  one ``affine_grid`` + ``grid_sample`` with PIL's coordinate convention (pixel centres at +0.5, rotation about the
  image centre, out-of-image pixels filled with the mean colour, timm's ``img_mean``). **Differences from PIL**:
  timm resamples bicubically with PIL's kernel (a = -0.5) and clamps neighbours at the image edge; here the
  interpolation is torch's bicubic (a = -0.75; ``bilinear`` selectable, a little softer, and what
  :class:`~learngene.training.batch_augment.BatchAugment` uses on a CPU, where it costs about two thirds as much),
  and pixels within half a pixel of the image edge blend towards the fill colour instead of switching to it
  (bilinear translations run as two shifted copies blended, :func:`translate_bilinear`: the same resampling). On a
  smooth test image the results differ by about 1 grey level on average, and by more than 8 levels on about 1-2 %
  of the pixels (the borders of the moved image); the tests state the bounds.

Every op returns integer-valued float32 in [0, 255] (as PIL's uint8), so ops compose as in timm. Images are rounded
to integers on entry (the GPU crop returns fractional values). Policies this module cannot batch (``t``: weighted op
sets) return ``None`` from :func:`parse_policy`; the caller then keeps timm's PIL RandAugment.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from learngene.errors import LearngeneError

LEVEL_DENOM = 10.0  # timm's _LEVEL_DENOM: magnitude M maps to M / 10 of each op's range

# timm's op lists (``_RAND_INCREASING_TRANSFORMS`` for inc1, ``_RAND_TRANSFORMS`` otherwise), in timm's order: the
# op index drawn per image is a position in this list, as in timm's ``np.random.choice``.
INCREASING_OPS = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing", "SolarizeAdd",
    "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY",
    "TranslateXRel", "TranslateYRel",
)
PLAIN_OPS = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color", "Contrast",
    "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel",
)
AFFINE_OPS = frozenset({"Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"})
LUT_OPS = frozenset({"AutoContrast", "Equalize", "Solarize", "SolarizeIncreasing", "SolarizeAdd"})
LEVEL_OPS = frozenset({"Invert", "Posterize", "PosterizeIncreasing"})  # arithmetic on the levels (:func:`level_op`)
BLEND_OPS = frozenset({"Color", "ColorIncreasing", "Contrast", "ContrastIncreasing", "Brightness",
                       "BrightnessIncreasing", "Sharpness", "SharpnessIncreasing"})
SIGNED_OPS = frozenset({"Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel", "ColorIncreasing",
                        "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing"})
TRANSLATE_PCT = 0.45  # timm's default translate_pct
INTERPOLATIONS = ("bilinear", "bicubic")


@dataclass(frozen=True)
class RandAugmentPolicy:
    """A parsed ``rand-...`` config string (timm's keys m, n, p, mstd, mmax, inc)."""

    magnitude: float = 10.0
    layers: int = 2
    prob: float = 0.5
    magnitude_std: float = 0.0
    magnitude_max: float = LEVEL_DENOM
    increasing: bool = False

    @property
    def ops(self) -> tuple[str, ...]:
        return INCREASING_OPS if self.increasing else PLAIN_OPS


def parse_policy(text: str) -> RandAugmentPolicy | None:
    """timm's ``rand_augment_transform`` config string -> policy, or None when it names a weighted op set (``t...``)
    that is not batched here.

    Raises:
        LearngeneError: an unknown section (timm would stop on an assertion).
    """
    sections = text.split("-")
    if sections[0] != "rand":
        raise LearngeneError(f"randaugment must look like 'rand-m9-mstd0.5-inc1' or 'none', got {text!r}")
    values: dict[str, float] = {}
    for section in sections[1:]:
        if section.startswith("t"):
            return None
        parts = re.split(r"(\d.*)", section)
        if len(parts) < 2:
            continue
        key, value = parts[:2]
        if key not in ("m", "n", "p", "mstd", "mmax", "inc"):
            raise LearngeneError(f"randaugment {text!r} has an unknown section {section!r} (timm's sections: m, n, p, "
                                 "mstd, mmax, inc, t)")
        values[key] = float(value)
    std = values.get("mstd", 0.0)
    return RandAugmentPolicy(
        magnitude=float(int(values.get("m", LEVEL_DENOM))),
        layers=int(values.get("n", 2)),
        prob=values.get("p", 0.5),
        magnitude_std=math.inf if std > 100 else std,
        magnitude_max=float(int(values["mmax"])) if "mmax" in values else LEVEL_DENOM,
        increasing=bool(int(values.get("inc", 0))),
    )


@dataclass
class RandAugmentDraw:
    """Per-image parameters of one batch, all (layers, count) on the CPU.

    Attributes:
        ops: index into ``policy.ops`` per layer and image, -1 where the layer is skipped (probability 1 - p).
        magnitude: the drawn magnitude, clipped to [0, magnitude_max].
        negate: the sign flip of timm's ``_randomly_negate`` (used by the signed ops only).
    """

    ops: torch.Tensor
    magnitude: torch.Tensor
    negate: torch.Tensor


def sample_draw(count: int, policy: RandAugmentPolicy, generator: torch.Generator) -> RandAugmentDraw:
    """Draw ``count`` images' op choices, magnitudes and signs as timm's ``RandAugment``/``AugmentOp`` would."""
    shape = (policy.layers, count)
    choice = torch.floor(torch.rand(shape, generator=generator, dtype=torch.float64) * len(policy.ops)).long()
    applied = torch.rand(shape, generator=generator, dtype=torch.float64) <= policy.prob
    if math.isinf(policy.magnitude_std):
        magnitude = torch.rand(shape, generator=generator, dtype=torch.float64) * policy.magnitude
    elif policy.magnitude_std > 0:
        magnitude = policy.magnitude + policy.magnitude_std * torch.randn(shape, generator=generator,
                                                                          dtype=torch.float64)
    else:
        magnitude = torch.full(shape, policy.magnitude, dtype=torch.float64)
    magnitude = magnitude.clamp(0.0, policy.magnitude_max)
    negate = torch.rand(shape, generator=generator, dtype=torch.float64) > 0.5
    return RandAugmentDraw(torch.where(applied, choice, torch.full_like(choice, -1)), magnitude, negate)


def level_to_arg(name: str, magnitude: torch.Tensor, negate: torch.Tensor) -> torch.Tensor:
    """timm's ``LEVEL_TO_ARG`` maps, vectorised in float64 with the same operations (so the same roundings).

    Returns the op's argument per image: degrees, shear factor, translate fraction, enhance factor, bits to keep,
    solarize threshold or solarize-add amount (zeros for the ops without one).
    """
    level = magnitude / LEVEL_DENOM
    sign = torch.where(negate, -1.0, 1.0).double()
    if name == "Rotate":
        return sign * (level * 30.0)
    if name in ("ShearX", "ShearY"):
        return sign * (level * 0.3)
    if name in ("TranslateXRel", "TranslateYRel"):
        return sign * (level * TRANSLATE_PCT)
    if name in ("Posterize", "PosterizeIncreasing"):
        bits = torch.floor(level * 4)
        return 4 - bits if name == "PosterizeIncreasing" else bits
    if name in ("Solarize", "SolarizeIncreasing"):
        threshold = torch.clamp(torch.floor(level * 256), max=256)
        return 256 - threshold if name == "SolarizeIncreasing" else threshold
    if name == "SolarizeAdd":
        return torch.clamp(torch.floor(level * 110), max=128)
    if name in BLEND_OPS:
        if name.endswith("Increasing"):
            return torch.clamp(1.0 + sign * (level * 0.9), min=0.1)
        return level * 1.8 + 0.1
    return torch.zeros_like(magnitude)


def to_device(tensor: torch.Tensor, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A small host tensor (parameters, indices) onto the device without a sync: the default blocking copy waits for
    every kernel already queued on the stream; ``cudaMemcpyAsync`` from pageable memory only stages the bytes."""
    return tensor.to(device=device, dtype=dtype, non_blocking=True)


# ---------------------------------------------------------------------------------------------------------------------
# Lookup-table ops: (n, C, 256) tables, applied together by one gather
# ---------------------------------------------------------------------------------------------------------------------
def pixel_index(images: torch.Tensor) -> torch.Tensor:
    """(n, C, H, W) integer-valued float -> its levels as int64 (n * C, H * W): the index of the table lookups and
    histograms (computed once per image and op: converting float to int64 is the costliest pass of a lookup)."""
    return images.reshape(images.shape[0] * images.shape[1], -1).long()


def _histograms(images: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
    """(n, C, H, W) integer-valued float -> int64 (n, C, 256) counts (``index``: its :func:`pixel_index`).

    ``scatter_add_`` into a fixed-size table rather than ``bincount``, which on CUDA reads the input's maximum back
    to the host (a sync per call) and on a CPU is several times slower.
    """
    n, c = images.shape[:2]
    index = pixel_index(images) if index is None else index
    counts = torch.zeros(n * c, 256, dtype=torch.long, device=images.device)
    ones = torch.ones(1, 1, dtype=torch.long, device=images.device).expand_as(index)  # no pixel-sized buffer
    return counts.scatter_add_(1, index, ones).view(n, c, 256)


def equalize_lut(histogram: torch.Tensor) -> torch.Tensor:
    """``ImageOps.equalize``'s table per channel from its histogram (n, C, 256), in integers as PIL computes it."""
    levels = torch.arange(256, device=histogram.device)
    nonzero = histogram > 0
    last = torch.where(nonzero, levels, torch.full_like(levels, -1)).amax(dim=-1, keepdim=True)  # highest used level
    last_count = histogram.gather(-1, last.clamp_min(0))
    step = (histogram.sum(-1, keepdim=True) - last_count) // 255
    before = torch.cumsum(histogram, -1) - histogram  # pixels below each level
    safe_step = step.clamp_min(1)
    lut = ((safe_step // 2 + before) // safe_step).clamp_max(255)
    identity = (nonzero.sum(-1, keepdim=True) <= 1) | (step == 0)
    return torch.where(identity, levels.expand_as(lut), lut)


def autocontrast_lut(images: torch.Tensor) -> torch.Tensor:
    """``ImageOps.autocontrast`` (no cutoff) per channel: stretch [min, max] to [0, 255], truncating like PIL."""
    low = images.amin(dim=(2, 3)).double()[..., None]
    high = images.amax(dim=(2, 3)).double()[..., None]
    levels = torch.arange(256, device=images.device, dtype=torch.float64)
    scale = 255.0 / (high - low).clamp_min(1.0)
    lut = torch.trunc(levels * scale + (-low * scale)).clamp(0, 255)
    return torch.where(high <= low, levels.expand_as(lut), lut).long()


def lut_for(name: str, images: torch.Tensor, argument: torch.Tensor,
            index: torch.Tensor | None = None) -> torch.Tensor:
    """int64 (n, C, 256) table of a lookup-table op for each image (``argument`` (n,) on the images' device;
    ``index``: the images' :func:`pixel_index`, if already computed)."""
    n, c = images.shape[:2]
    levels = torch.arange(256, device=images.device).expand(n, c, 256)
    arg = argument.long().view(n, 1, 1)
    if name == "AutoContrast":
        return autocontrast_lut(images)
    if name == "Equalize":
        return equalize_lut(_histograms(images, index))
    if name in ("Solarize", "SolarizeIncreasing"):
        return torch.where(levels < arg, levels, 255 - levels)
    if name == "SolarizeAdd":
        return torch.where(levels < 128, (levels + arg).clamp_max(255), levels)
    raise ValueError(f"{name} is not a lookup-table op")


def level_op(name: str, images: torch.Tensor, argument: torch.Tensor) -> torch.Tensor:
    """Invert and posterize on integer-valued float (n, C, H, W) with per-image ``argument`` (n,) (bits to keep).

    ``ImageOps``' tables as arithmetic, exact in float32 (integers below 2^24, divisions by powers of two).
    Posterize keeps the top ``bits`` bits: floor(x / 2^(8 - bits)) 2^(8 - bits); 0 bits gives a black image, as
    Pillow < 13 did (learngene's guarded PIL op does the same).
    """
    if name == "Invert":
        return 255.0 - images
    if name in ("Posterize", "PosterizeIncreasing"):
        step = torch.exp2(8.0 - argument.to(images.dtype).clamp(0, 8)).view(-1, 1, 1, 1)
        return torch.floor(images / step).mul_(step)
    raise ValueError(f"{name} is not a level op")


def apply_luts(images: torch.Tensor, luts: torch.Tensor, out: torch.Tensor | None = None,
               index: torch.Tensor | None = None) -> torch.Tensor:
    """Map every pixel of (n, C, H, W) integer-valued float through its image's and channel's table (n, C, 256),
    into ``out`` (contiguous, may be ``images`` itself: the index is a copy) or a new tensor (``index``: the
    images' :func:`pixel_index`, if already computed)."""
    n, c, h, w = images.shape
    index = pixel_index(images) if index is None else index
    tables = luts.reshape(n * c, 256).to(images.dtype)
    if out is None:
        return tables.gather(1, index).view(n, c, h, w)
    torch.gather(tables, 1, index, out=out.view(n * c, h * w))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Blend ops (PIL.ImageEnhance)
# ---------------------------------------------------------------------------------------------------------------------
def luma(images: torch.Tensor) -> torch.Tensor:
    """PIL's ``convert("L")``: (19595 R + 38470 G + 7471 B + 0x8000) >> 16, exact in float32 (< 2^24)."""
    weights = to_device(torch.tensor([19595.0, 38470.0, 7471.0]), images.device, images.dtype).view(1, 3, 1, 1)
    return torch.floor(((images * weights).sum(1, keepdim=True) + 32768.0) / 65536.0)


def smooth(images: torch.Tensor) -> torch.Tensor:
    """PIL's ``filter(SMOOTH)``: 3x3 kernel (all 1, centre 5) / 13 rounded to the nearest level, the one-pixel border
    copied. Summed from shifted slices (a 3x3 box sum plus 4 x the centre): several times faster on a CPU than a
    single-channel ``conv2d``; sums of at most 13 x 255 are exact in float32 and k / 13 never ends in .5."""
    rows = images[..., :-2, :] + images[..., 1:-1, :] + images[..., 2:, :]
    box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    inner = box.add_(images[..., 1:-1, 1:-1], alpha=4.0).div_(13.0)
    out = images.clone()
    out[..., 1:-1, 1:-1] = torch.floor(inner.add_(0.5)).clamp_(0, 255)
    return out


def degenerate(name: str, images: torch.Tensor) -> torch.Tensor:
    """The image ``ImageEnhance`` blends away from (factor 0) for each blend op."""
    if name.startswith("Brightness"):
        return torch.zeros_like(images)
    if name.startswith("Color"):
        return luma(images).expand_as(images)
    if name.startswith("Contrast"):
        mean = luma(images).double().mean(dim=(1, 2, 3))
        return torch.floor(mean + 0.5).to(images.dtype).view(-1, 1, 1, 1).expand_as(images)
    if name.startswith("Sharpness"):
        return smooth(images)
    raise ValueError(f"{name} is not a blend op")


def blend(base: torch.Tensor, images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``Image.blend(base, images, factor)``: base + factor (images - base), clipped to [0, 255] and truncated."""
    # in place after the one subtraction (the same float operations as written above, so the same result)
    return (images - base).mul_(factor.to(images.dtype).view(-1, 1, 1, 1)).add_(base).clamp_(0, 255).floor_()


# ---------------------------------------------------------------------------------------------------------------------
# Affine ops: one grid_sample per layer
# ---------------------------------------------------------------------------------------------------------------------
def pil_affine(name: str, argument: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """float64 (n, 2, 3) maps from output to input pixel coordinates, as the matrices timm hands to PIL.

    Coordinates are PIL's continuous ones (pixel centres at +0.5, origin at the top-left corner).
    """
    n = argument.shape[0]
    matrix = torch.zeros(n, 2, 3, dtype=torch.float64)
    matrix[:, 0, 0] = matrix[:, 1, 1] = 1.0
    if name == "Rotate":
        # Image.rotate(degrees): counter-clockwise about the centre; input = R (output - c) + c
        angle = -torch.deg2rad(argument)
        cos, sin = torch.cos(angle), torch.sin(angle)
        cx, cy = width / 2.0, height / 2.0
        matrix[:, 0, 0], matrix[:, 0, 1], matrix[:, 1, 0], matrix[:, 1, 1] = cos, sin, -sin, cos
        matrix[:, 0, 2] = cx - (cos * cx + sin * cy)
        matrix[:, 1, 2] = cy - (-sin * cx + cos * cy)
    elif name == "ShearX":
        matrix[:, 0, 1] = argument
    elif name == "ShearY":
        matrix[:, 1, 0] = argument
    elif name == "TranslateXRel":
        matrix[:, 0, 2] = argument * width
    elif name == "TranslateYRel":
        matrix[:, 1, 2] = argument * height
    else:
        raise ValueError(f"{name} is not an affine op")
    return matrix


def to_theta(matrix: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """PIL pixel-coordinate maps (n, 2, 3) -> ``affine_grid`` thetas in normalised coordinates (align_corners=False).

    With p = D (u + 1), D = diag(W/2, H/2): u_in = D^-1 A D u_out + D^-1 (A D 1 + t) - 1.
    """
    scale = torch.tensor([width / 2.0, height / 2.0], dtype=torch.float64)
    a, t = matrix[:, :, :2], matrix[:, :, 2]
    linear = a * scale[None, None, :] / scale[None, :, None]
    shift = ((a * scale[None, None, :]).sum(-1) + t) / scale[None, :] - 1.0
    return torch.cat([linear, shift[..., None]], dim=-1)


def affine_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``F.affine_grid(theta, (n, C, H, W), align_corners=False)`` by broadcasting instead of a batched matmul
    (which on a CPU costs more than the resampling it feeds)."""
    xs = (torch.arange(width, device=theta.device, dtype=theta.dtype) * 2 + 1) / width - 1
    ys = (torch.arange(height, device=theta.device, dtype=theta.dtype) * 2 + 1) / height - 1
    t = theta[:, :, :, None, None]  # (n, 2, 3, 1, 1)
    coords = t[:, :, 0] * xs[None, None, None, :] + t[:, :, 1] * ys[None, None, :, None] + t[:, :, 2]  # (n, 2, H, W)
    return coords.permute(0, 2, 3, 1)


def translate_bilinear(images: torch.Tensor, argument: torch.Tensor, axis: int, fill: torch.Tensor) -> torch.Tensor:
    """TranslateX/YRel (``axis`` -1 / -2) resampled bilinearly, as two shifted copies blended: PIL's matrix reads
    output pixel x from input x + t (t = ``argument`` x the side), so out(x) = (1 - f) g(x + k) + f g(x + k + 1)
    with k = floor(t), f = t - k, and g the image inside it and ``fill`` outside. This is what ``warp(..., mode=
    "bilinear")`` computes (its samples fall on pixel centres along the other axis), for a third of its cost on a
    CPU; results can differ from it by one level where float rounding lands on the other side of .5."""
    side = images.shape[axis]
    out = torch.empty_like(images)
    for index, shift in enumerate((argument.double() * side).tolist()):
        whole = math.floor(shift)
        fraction = shift - whole
        image = images[index]

        def shifted(offset: int, image: torch.Tensor = image) -> torch.Tensor:
            moved = fill[0].expand_as(image).clone()
            low, high = max(0, -offset), min(side, side - offset)
            if low < high:
                moved.narrow(axis, low, high - low).copy_(image.narrow(axis, low + offset, high - low))
            return moved

        out[index] = torch.lerp(shifted(whole), shifted(whole + 1), fraction) if fraction else shifted(whole)
    return out.round_()  # a convex blend of levels: already in [0, 255]


def warp(images: torch.Tensor, theta: torch.Tensor, fill: torch.Tensor, mode: str = "bicubic") -> torch.Tensor:
    """Resample (n, C, H, W) through ``theta`` (n, 2, 3), out-of-image pixels ``fill`` (1, C, 1, 1); rounded."""
    grid = affine_grid(to_device(theta, images.device, images.dtype), images.shape[-2], images.shape[-1])
    out = F.grid_sample(images - fill, grid, mode=mode, padding_mode="zeros", align_corners=False).add_(fill)
    # bilinear weights are convex: the levels stay in [0, 255]; bicubic overshoots and is clipped as PIL does
    return out.round_() if mode == "bilinear" else out.round_().clamp_(0, 255)


# ---------------------------------------------------------------------------------------------------------------------
# The transform
# ---------------------------------------------------------------------------------------------------------------------
def apply_op(name: str, images: torch.Tensor, argument: torch.Tensor, fill: torch.Tensor,
             mode: str = "bicubic") -> torch.Tensor:
    """One op on a sub-batch with per-image arguments (float64 (n,) on the CPU, from :func:`level_to_arg`)."""
    if name in LUT_OPS:
        return apply_luts(images, lut_for(name, images, to_device(argument, images.device)))
    if name in LEVEL_OPS:
        return level_op(name, images, to_device(argument, images.device))
    if name in BLEND_OPS:
        return blend(degenerate(name, images), images, to_device(argument, images.device))
    if name in ("TranslateXRel", "TranslateYRel") and mode == "bilinear":
        return translate_bilinear(images, argument, -1 if name == "TranslateXRel" else -2, fill)
    if name in AFFINE_OPS:
        h, w = images.shape[-2:]
        return warp(images, to_theta(pil_affine(name, argument, h, w), h, w), fill, mode)
    raise ValueError(f"unknown op {name}")


class BatchRandAugment:
    """RandAugment for whole batches: (B, C, H, W) uint8 or float -> integer-valued float32 in [0, 255].

    Args:
        policy: a parsed policy (:func:`parse_policy`).
        fill: the colour of pixels moved in from outside the image (timm: the dataset mean x 255, rounded).
        interpolation: ``bicubic`` (default, as timm) or ``bilinear`` for the affine ops.
        per_image: run each op image by image on views of the batch instead of once on the gathered sub-batch of
            the images that drew it; None (default): image by image on a CPU. A layer of a 32-image batch gives
            each of the 15 ops one or two images, so on a CPU the gather and scatter of the sub-batch cost more
            than they save, while on a GPU one launch per op and sub-batch is what makes the ops cheap.
    """

    def __init__(self, policy: RandAugmentPolicy, fill: Sequence[float] = (128, 128, 128),
                 interpolation: str = "bicubic", per_image: bool | None = None) -> None:
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
        self.policy, self.interpolation, self.per_image = policy, interpolation, per_image
        self.fill = tuple(float(v) for v in fill)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(images, sample_draw(images.shape[0], self.policy, generator))

    def apply(self, images: torch.Tensor, draw: RandAugmentDraw) -> torch.Tensor:
        """Apply the drawn layers in order; within a layer each image has at most one op, so the ops' sub-batches
        are disjoint and run one after the other on the same tensor."""
        if images.dtype == torch.uint8:  # channels-first float32 (one pass: convert and transpose)
            out = images.to(torch.float32, memory_format=torch.contiguous_format)
        else:
            out = torch.round(images.float()).clamp_(0, 255).contiguous()
        fill = to_device(torch.tensor(self.fill), out.device, out.dtype).view(1, -1, 1, 1)
        ops = self.policy.ops
        per_image = self.per_image if self.per_image is not None else out.device.type == "cpu"
        for layer in range(draw.ops.shape[0]):
            chosen = draw.ops[layer]
            args = {}
            for k in torch.unique(chosen[chosen >= 0]).tolist():
                rows = torch.nonzero(chosen == k).flatten()
                args[ops[k]] = (rows, level_to_arg(ops[k], draw.magnitude[layer, rows], draw.negate[layer, rows]))
            if per_image:
                self._image_by_image(out, args, fill)
                continue
            self._lut_group(out, {n: a for n, a in args.items() if n in LUT_OPS})
            for name in (n for n in args if n in BLEND_OPS or n in LEVEL_OPS):
                rows, argument = args[name]
                index = to_device(rows, out.device)
                out.index_copy_(0, index, apply_op(name, out.index_select(0, index), argument, fill))
            self._affine_group(out, {n: a for n, a in args.items() if n in AFFINE_OPS}, fill)
        return out

    def _image_by_image(self, out: torch.Tensor, args: dict[str, tuple[torch.Tensor, torch.Tensor]],
                        fill: torch.Tensor) -> None:
        """Each image that drew an op, as a view of the batch (a layer's images are disjoint, so order is free).
        The thetas of a resampled op are built once for all its images (a few dozen small float64 ops)."""
        h, w = out.shape[-2:]
        shifted = ("TranslateXRel", "TranslateYRel") if self.interpolation == "bilinear" else ()
        for name, (rows, argument) in args.items():
            warped = name in AFFINE_OPS and name not in shifted
            thetas = to_theta(pil_affine(name, argument, h, w), h, w) if warped else None
            for position, row in enumerate(rows.tolist()):
                view, value = out[row:row + 1], argument[position:position + 1]
                if name in LUT_OPS:  # gathered straight into the batch
                    index = pixel_index(view)
                    apply_luts(view, lut_for(name, view, value, index), out=view, index=index)
                elif warped:
                    view.copy_(warp(view, thetas[position:position + 1], fill, self.interpolation))
                else:
                    view.copy_(apply_op(name, view, value, fill, self.interpolation))

    def _lut_group(self, out: torch.Tensor, args: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        if not args:
            return
        rows = torch.cat([r for r, _ in args.values()])
        index = to_device(rows, out.device)
        sub = out.index_select(0, index)  # on a CPU several times faster than advanced indexing
        luts, start = [], 0
        for name, (r, argument) in args.items():
            luts.append(lut_for(name, sub[start:start + len(r)], to_device(argument, out.device)))
            start += len(r)
        out.index_copy_(0, index, apply_luts(sub, torch.cat(luts)))

    def _affine_group(self, out: torch.Tensor, args: dict[str, tuple[torch.Tensor, torch.Tensor]],
                      fill: torch.Tensor) -> None:
        if not args:
            return
        h, w = out.shape[-2:]
        rows = torch.cat([r for r, _ in args.values()])
        theta = torch.cat([to_theta(pil_affine(name, argument, h, w), h, w) for name, (_, argument) in args.items()])
        index = to_device(rows, out.device)
        out.index_copy_(0, index, warp(out.index_select(0, index), theta, fill, self.interpolation))
