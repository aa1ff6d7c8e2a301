"""The descendant spec: what to build (depth, heads per layer, resolution, classes) and how to initialise it.

A :class:`DescendantSpec` is written by the user with optional fields ("the ancestor's depth", "width ratio 2");
:meth:`DescendantSpec.resolve` checks it against one ancestor and returns a copy where every architectural field is
concrete (``depth``, ``heads`` with one entry per layer, ``img_size``, ``num_classes``). Only resolved specs are
built, sized or saved, so what a user previews is exactly what gets built.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from learngene.ancestors import AncestorSummary

# The option names live in one torch-free module (the training config and the CLI offer them too).
from learngene.design_options import (  # noqa: E402,F401 - re-exported
    BY_INDEX_SUFFIX,
    CENTROIDS,
    DEFAULT_SHARE_LAYERS,
    HEAD_ORDERS,
    INIT_METHODS,
    LAYER_BASELINES,
    LAYERS_ONLY_BASELINES,
    PARITY_MODES,
    SCHEDULE_HELP,
    SCHEDULES,
    TRANSFORM_INITS,
    WEIGHT_TRANSFORMATION,
)
from learngene.errors import LearngeneError
from learngene.whole_numbers import is_whole as _is_whole

# The classifier must have at least one class; the upper bound only catches typos (an extra zero or two).
MAX_CLASSES = 1_000_000
# A head-less ancestor (a feature backbone such as the built-in one) is sized with an ImageNet-1k classifier, like
# the DeiT reference sizes it is compared against.
DEFAULT_CLASSES_FOR_BACKBONE = 1000


def heads_from_ratio(num_heads: int, width_ratio: float) -> int:
    """H_d = floor(H / w); the tiny tolerance keeps e.g. 6 / 1.5 from flooring to 3.999... -> 3."""
    return int(math.floor(num_heads / width_ratio + 1e-9))


def schedule_ratios(depth: int, schedule: str, ancestor_depth: int) -> list[float]:
    """Width ratio per layer for a named schedule.

    Layer l uses the ratio of its third: floor(3 l / L_d) for this project's rules, floor(3 l / L) (L the
    ancestor's depth, i.e. the absolute layer index) for the ``-by-index`` rules of the authors' code.
    """
    ratios = SCHEDULES[schedule]
    span = ancestor_depth if schedule.endswith(BY_INDEX_SUFFIX) else depth
    return [ratios[min(2, (3 * layer) // span)] for layer in range(depth)]


def schedule_heads(num_heads: int, depth: int, schedule: str, ancestor_depth: int | None = None) -> list[int]:
    """Heads per layer for a named schedule (see :func:`schedule_ratios`); H_d = floor(H / w) per layer."""
    ratios = schedule_ratios(depth, schedule, depth if ancestor_depth is None else ancestor_depth)
    return [heads_from_ratio(num_heads, ratio) for ratio in ratios]


@dataclass(frozen=True)
class DescendantSpec:
    """A descendant ViT and its initialisation.

    Attributes:
        depth: number of layers L_d (the first L_d layers of the plan); None means the ancestor's depth.
        width_ratio: H_d = floor(H / w) heads in every layer; w < 1 gives more heads than the ancestor.
        heads: explicit heads per layer (length ``depth``); excludes ``width_ratio`` and ``schedule``.
        schedule: ``decreasing`` (w = 2, 1.5, 1 over the thirds of the depth), ``increasing`` (1, 1.5, 2), or
            their ``-by-index`` forms (the authors' rule, thirds of the ancestor's layer index); see SCHEDULES.
        img_size: input resolution in pixels (a multiple of the patch size); None means the ancestor's.
        num_classes: classifier outputs; None means the ancestor's (1000 when the ancestor has no classifier).
        init: one of :data:`INIT_METHODS`.
        ffn_groups: FFN groups for cluster-learngene: ``"auto"`` (the rule in learngene.ffn_groups), explicit
            groups of ancestor layers, or None for no groups (every layer copies its own FFN).
        head_order: order of a layer's centroids before slot assignment: ``priority`` (largest cluster first,
            the paper), ``original`` (ancestor head index), ``ascending-mad`` or ``descending-mad``.
        centroid: ``nearest`` (representative head's weights) or ``average`` (members' mean weights).
        train_transform: keep the FFN transformation T in the graph and train it (else applied once).
        transform_init: ``default`` (PyTorch's Linear init, as the authors' code) or ``identity`` (every output
            starts equal to its input, so the group's layers start as exact copies of the centroid).
        seed: seed for every random part (new classifier, random layers, T), so builds are reproducible.
        parity: ``none`` (default) or ``authors``: reproduce the authors' code for DeiT-Ti/S/B ancestors (their
            hard-coded S_l lists and FFN groups, their qkv slicing, no qkv bias, their W_O handling, T applied once
            with default init, the ``-by-index`` schedules); see learngene.descendant.parity and docs/fidelity.md.
        share_layers: for ``weight-transformation`` only: consecutive layers that share one ancestor block's
            attention and FFN (None means :data:`DEFAULT_SHARE_LAYERS`, Mini-DeiT's 2); the depth must be a
            multiple of it. Stays None for every other method.
        resolved: set by :meth:`resolve`: every architectural field is concrete and ``heads`` is authoritative
            (``width_ratio`` / ``schedule`` then only record how the heads were chosen).
    """

    depth: int | None = None
    width_ratio: float | None = None
    heads: tuple[int, ...] | None = None
    schedule: str | None = None
    img_size: int | None = None
    num_classes: int | None = None
    init: str = "cluster-learngene"
    ffn_groups: str | tuple[tuple[int, ...], ...] | None = "auto"
    head_order: str = "priority"
    centroid: str = "nearest"
    train_transform: bool = False
    transform_init: str = "default"
    seed: int = 0
    parity: str = "none"
    share_layers: int | None = None
    resolved: bool = False

    def __post_init__(self):
        # Accept lists from callers and JSON, store tuples so the spec stays hashable and immutable.
        if self.heads is not None and not isinstance(self.heads, tuple):
            if isinstance(self.heads, (str, bytes)) or not isinstance(self.heads, Sequence):
                raise LearngeneError(
                    f"heads must be a list with one head count per layer (got {self.heads!r}); the same count in "
                    "every layer is width_ratio. Fields are keywords: DescendantSpec(depth=6, width_ratio=2, "
                    "num_classes=10)"
                )
            object.__setattr__(self, "heads", tuple(self.heads))
        from learngene.ffn_groups import groups_from_text

        groups = groups_from_text(self.ffn_groups)  # "9-11", "none": the --ffn-groups text works here too
        if isinstance(groups, Sequence) and not isinstance(groups, str):
            try:
                groups = tuple(tuple(int(x) for x in g) for g in groups)
            except (TypeError, ValueError):
                raise LearngeneError(
                    f"ffn_groups must be 'auto', None, text like '6-7,9-11' or lists of layer indices (got "
                    f"{self.ffn_groups!r})"
                ) from None
        object.__setattr__(self, "ffn_groups", groups)

    def resolve(self, ancestor: AncestorSummary) -> DescendantSpec:
        """Check the spec against ``ancestor`` and fill in every architectural field.

        Raises:
            LearngeneError: naming the bad field and how to fix it.
        """
        self._check_options()
        if isinstance(self.ffn_groups, tuple):  # out of range or not adjacent: refused before sizing, not at build
            from learngene.ffn_groups import validate_groups

            validate_groups(self.ffn_groups, ancestor.num_layers)
        if self.parity == "authors":
            from learngene.descendant.parity import check_parity_spec

            check_parity_spec(self, ancestor)
        depth = ancestor.num_layers if self.depth is None else self.depth
        if not _is_whole(depth) or not 1 <= depth <= ancestor.num_layers:
            raise LearngeneError(
                f"depth must be between 1 and the ancestor's {ancestor.num_layers} layers (got {self.depth}); "
                "a descendant uses the first L_d layers of the ancestor"
            )
        depth = int(depth)
        schedule = self.schedule
        if self.parity == "authors" and schedule is not None and not schedule.endswith(BY_INDEX_SUFFIX):
            schedule += BY_INDEX_SUFFIX  # the authors' code has only the absolute-index rule
        heads = replace(self, schedule=schedule)._resolve_heads(ancestor.num_heads, depth, ancestor.num_layers)
        if self.parity == "authors":
            from learngene.descendant.parity import check_parity_heads

            check_parity_heads(heads, ancestor.num_heads)
        img_size = self._resolve_img_size(ancestor)
        num_classes = self._resolve_classes(ancestor)
        if self.init == "ancestor" and (depth != ancestor.num_layers or any(h != ancestor.num_heads for h in heads)):
            raise LearngeneError(
                f"--init ancestor keeps the ancestor's architecture ({ancestor.num_layers} layers x "
                f"{ancestor.num_heads} heads); drop --depth/--width-ratio/--heads or pick another method"
            )
        if self.init == "pretrained-prune" and max(heads) > ancestor.num_heads:
            raise LearngeneError(
                f"pretrained-prune keeps the ancestor's first H_d heads, so a layer cannot have more than its "
                f"{ancestor.num_heads} heads (got {max(heads)}); use a width ratio >= 1"
            )
        share_layers = self._resolve_share_layers(depth, heads, ancestor)
        return replace(
            self, depth=depth, heads=tuple(heads), schedule=schedule, img_size=img_size, num_classes=num_classes,
            share_layers=share_layers, resolved=True,
        )

    def _resolve_share_layers(self, depth: int, heads: list[int], ancestor: AncestorSummary) -> int | None:
        """The group size of a weight-transformation descendant, checked against its depth and heads."""
        if self.init != WEIGHT_TRANSFORMATION:
            if self.share_layers is not None:
                raise LearngeneError(
                    f"share_layers only applies to --init {WEIGHT_TRANSFORMATION} (init is {self.init}); drop it"
                )
            return None
        share = DEFAULT_SHARE_LAYERS if self.share_layers is None else self.share_layers
        if not _is_whole(share) or not 1 <= share <= depth:
            raise LearngeneError(
                f"share_layers must be a whole number between 1 and the depth {depth} (got {self.share_layers})"
            )
        share = int(share)
        if depth % share:
            lower, upper = depth - depth % share, depth - depth % share + share
            fits = f"--depth {lower} or {upper}" if lower and upper <= ancestor.num_layers else f"--depth {lower or upper}"
            raise LearngeneError(
                f"weight-transformation shares each block across {share} consecutive layers, so the depth must be a "
                f"multiple of {share} (got {depth}); use {fits}"
            )
        if any(h != ancestor.num_heads for h in heads):
            raise LearngeneError(
                f"weight-transformation shares whole ancestor blocks, so every layer keeps the ancestor's "
                f"{ancestor.num_heads} heads (got {heads}); drop --width-ratio/--heads or use --width-ratio 1"
            )
        if self.parity == "authors":
            raise LearngeneError(
                "--parity authors has nothing to reproduce for weight-transformation (the authors' code never builds "
                "it from an ancestor; see docs/fidelity.md); drop --parity"
            )
        return share

    def _check_options(self) -> None:
        choices = (
            ("init", self.init, INIT_METHODS),
            ("head_order", self.head_order, HEAD_ORDERS),
            ("centroid", self.centroid, CENTROIDS),
            ("transform_init", self.transform_init, TRANSFORM_INITS),
            ("parity", self.parity, PARITY_MODES),
        )
        for name, value, allowed in choices:
            if value not in allowed:
                raise LearngeneError(f"{name} must be one of {', '.join(allowed)} (got {value!r})")
        if not _is_whole(self.seed) or not -(2**63) <= self.seed < 2**63:  # what torch.manual_seed takes
            raise LearngeneError(f"seed must be a whole number from -2**63 to 2**63 - 1 (got {self.seed!r})")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise LearngeneError(f"schedule must be one of {', '.join(SCHEDULES)} (got {self.schedule!r})")
        if isinstance(self.ffn_groups, str) and self.ffn_groups != "auto":
            raise LearngeneError(f"ffn_groups must be 'auto', a list of layer groups or None (got {self.ffn_groups!r})")
        if self.width_ratio is not None and self.schedule is not None:
            raise LearngeneError("give only one of width ratio, heads list or schedule (got width ratio and schedule)")

    def _resolve_heads(self, num_heads: int, depth: int, ancestor_depth: int) -> list[int]:
        if self.heads is None:
            return self._heads_from_width(num_heads, depth, ancestor_depth)
        heads = self._explicit_heads(depth)
        # A heads list beside a width ratio or schedule is fine when they agree (a resolved spec keeps the ratio
        # on record beside the heads it produced, and an edited copy of it keeps both); otherwise it is ambiguous.
        if not self.resolved and (self.width_ratio is not None or self.schedule is not None):
            implied = self._heads_from_width(num_heads, depth, ancestor_depth)
            if implied != heads:
                kind = "width ratio" if self.width_ratio is not None else "schedule"
                raise LearngeneError(
                    f"give only one of width ratio, heads list or schedule (got heads {heads} and a {kind} that "
                    f"gives {implied})"
                )
        return heads

    def _explicit_heads(self, depth: int) -> list[int]:
        heads = list(self.heads)
        if len(heads) != depth:
            raise LearngeneError(
                f"the heads list has {len(heads)} entries but the descendant has {depth} layers; give one "
                "head count per layer"
            )
        bad = [h for h in heads if not _is_whole(h) or h < 1]
        if bad:
            raise LearngeneError(f"every layer needs at least one head (got {bad[0]} in the heads list)")
        return [int(h) for h in heads]

    def _heads_from_width(self, num_heads: int, depth: int, ancestor_depth: int) -> list[int]:
        if self.schedule is not None:
            return schedule_heads(num_heads, depth, self.schedule, ancestor_depth)
        try:
            ratio = 1.0 if self.width_ratio is None else float(self.width_ratio)
        except (TypeError, ValueError):
            ratio = math.nan  # "x", a list: refused below with the width-ratio message, not float()'s
        if not math.isfinite(ratio) or ratio <= 0:
            raise LearngeneError(f"the width ratio must be a positive number (got {self.width_ratio})")
        count = heads_from_ratio(num_heads, ratio)
        if count < 1:
            raise LearngeneError(
                f"width ratio {ratio:g} leaves no head (floor({num_heads} / {ratio:g}) = 0); use a ratio of at most "
                f"{num_heads}"
            )
        return [count] * depth

    def _resolve_img_size(self, ancestor: AncestorSummary) -> int:
        size = ancestor.img_size if self.img_size is None else self.img_size
        if not _is_whole(size) or size < ancestor.patch_size or size % ancestor.patch_size:
            raise LearngeneError(
                f"the image size must be a positive multiple of the patch size {ancestor.patch_size} (got "
                f"{self.img_size})"
            )
        return int(size)

    def _resolve_classes(self, ancestor: AncestorSummary) -> int:
        if self.num_classes is None:
            return ancestor.num_classes if ancestor.num_classes > 0 else DEFAULT_CLASSES_FOR_BACKBONE
        if not _is_whole(self.num_classes) or not 1 <= self.num_classes <= MAX_CLASSES:
            raise LearngeneError(
                f"the number of classes must be between 1 and {MAX_CLASSES:,} (got {self.num_classes})"
            )
        return int(self.num_classes)

    def to_dict(self) -> dict:
        """JSON-able form (tuples as lists); round-trips through :meth:`from_dict`."""
        data = asdict(self)
        data["heads"] = list(self.heads) if self.heads is not None else None
        if isinstance(self.ffn_groups, tuple):
            data["ffn_groups"] = [list(g) for g in self.ffn_groups]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> DescendantSpec:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
