"""Size preview: a descendant's parameters, inherited values, MACs and training memory, without building it.

Counting rules (method.md "Parameter and FLOP counts"):

* ``params`` equals ``sum(p.numel() for p in model.parameters())`` of the built, saved descendant exactly.
* ``inherited_params`` (slot-inherited) counts the descendant's values initialised from the ancestor: copied,
  resampled (the position embedding at another resolution) or produced by the FFN transformation T from a
  centroid. Under cluster-learngene every head slot counts, even when several slots copy the same centroid, because
  each slot is an independent parameter holding copied values. The new classifier and any random layer or slot do
  not count.
* ``inherited_distinct_params`` (distinct-inherited) counts the distinct ancestor values behind them: a centroid
  copied into several slots counts once, a group centroid behind several layers' T outputs counts once. This is
  what the learngene has to store, the paper's I-Params sense. It depends on the number of clusters per layer, so a
  preview without statistics (and without ``parity="authors"``, whose S_l are fixed) gives None.
* ``weight-transformation`` (:mod:`learngene.descendant.multiplexed`): a shared attention and FFN counts once in
  ``params`` and in both inherited counts; each layer's norms and layer scale count per layer in ``params`` and
  slot-inherited, once per group in distinct-inherited (a group's layers copy the same ancestor norms); the (H, H)
  head-mixing matrices count in ``params`` only (they start as the identity, not from the ancestor), and their
  matmuls (2 H H N N per layer) in the MACs.
* ``trainable_params`` is ``params`` plus T's parameters when T is kept and trained.
* MACs per image count every matmul explicitly: the patch-embedding convolution, per layer the qkv projection
  (N C 3 H_d D), q k^T (H_d N N D), A v (H_d N N D), the output projection (N H_d D C) and the FFN (2 N C M),
  and the classifier (C K). FLOPs are 2 x MACs. Norms, softmax, GELU and bias additions are not counted (they
  are a fraction of a percent, and FLOP counters such as ``torch.utils.flop_counter`` leave them out too).
* The training-memory figure is an *estimate*; see :func:`train_memory_estimate`.

Nothing here imports torch: for the architectures :data:`learngene.descendant.arch.KNOWN_VITS` writes out, a size
is pure arithmetic (``learngene size`` answers in a fraction of a second); other architectures are read off a timm
model on the meta device once. The counting below is the same either way and does not branch on where the facts
came from; an init method that changes the model's shapes needs its own terms here, whichever path is taken. Two
cases import torch because their counts live beside their torch code: ``parity="authors"``
(:mod:`learngene.descendant.parity`) and ``weight-transformation`` (:mod:`learngene.descendant.multiplexed`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from learngene.ancestors.summary import AncestorSummary
from learngene.descendant.arch import DEIT_REFERENCES, ArchFacts, arch_facts, deit_facts
from learngene.descendant.spec import LAYERS_ONLY_BASELINES, SCHEDULES, DescendantSpec
from learngene.errors import LearngeneError

if TYPE_CHECKING:  # sizing is arithmetic: torch is imported only when a loaded Ancestor is passed in
    from learngene.ancestors import Ancestor

# How many ancestor layers the layer-inheriting baselines take (the paper's baselines).
HEURISTIC_LAST_LAYERS = 3
AUTO_FIRST_LAYERS = 6
# Bytes per parameter kept while training with AdamW: fp32 weights, fp32 gradients, two fp32 moments. Autocast
# (AMP) keeps fp32 master weights too, so this is the same with and without AMP; only activations shrink.
_STATE_BYTES_PER_PARAM = 4 + 4 + 8


@dataclass(frozen=True)
class DescendantSize:
    """Size of one descendant. Counts are integers; ``*_estimate_bytes`` are approximations (see module doc)."""

    depth: int
    heads_per_layer: list[int]
    img_size: int
    num_classes: int
    tokens: int
    params: int
    inherited_params: int
    inherited_distinct_params: int | None
    trainable_params: int
    transform_params: int
    macs: int
    flops: int
    macs_breakdown: dict[str, int]
    batch_size: int
    train_memory_fp32_estimate_bytes: int
    train_memory_amp_estimate_bytes: int
    ancestor_params: int
    init: str
    notes: list[str] = field(default_factory=list)

    @property
    def inherited_fraction(self) -> float:
        return self.inherited_params / self.params if self.params else 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["inherited_fraction"] = self.inherited_fraction
        data["inherited_slot_params"] = self.inherited_params  # the explicit name beside the distinct count
        return data


def _facts(ancestor: Ancestor | AncestorSummary) -> tuple[AncestorSummary, ArchFacts]:
    if isinstance(ancestor, AncestorSummary):
        return ancestor, arch_facts(ancestor)
    if not hasattr(ancestor, "summary") or not hasattr(ancestor, "model"):
        raise LearngeneError(
            f"descendant_size needs an Ancestor or its AncestorSummary, got {type(ancestor).__name__}; "
            "e.g. learngene.load_ancestor('builtin').summary"
        )
    return ancestor.summary, ArchFacts.from_model(ancestor.model)


def facts_for_spec(facts: ArchFacts, spec: DescendantSpec) -> ArchFacts:
    """The facts of the model ``spec`` builds: a parity cluster-learngene descendant has no qkv bias."""
    if spec.parity == "authors" and spec.init == "cluster-learngene":
        return facts.without_qkv_bias()
    return facts


def count_params(
    facts: ArchFacts, heads: list[int], img_size: int, num_classes: int, share_layers: int | None = None
) -> int:
    """Exact parameter count of a descendant with ``heads[l]`` heads in layer l (``share_layers``: a
    weight-transformation descendant whose groups of that many layers share one attention and FFN)."""
    head = facts.embed_dim * num_classes + num_classes if num_classes > 0 else 0
    if share_layers is None:
        blocks = len(heads) * facts.block_fixed_params + sum(heads) * facts.per_head_params
    else:
        from learngene.descendant.multiplexed import transformation_params

        blocks = _shared_block_params(facts, heads, share_layers) + len(heads) * facts.layer_own_params
        blocks += sum(transformation_params(1, h) for h in heads)
    return facts.embed_params + facts.pos_embed_params(img_size) + blocks + facts.final_params + head


def _shared_block_params(facts: ArchFacts, heads: list[int], share_layers: int) -> int:
    """The attention and FFN weights of a weight-transformation descendant: one set per group of layers."""
    group_heads = heads[::share_layers]
    return len(group_heads) * (facts.block_fixed_params - facts.layer_own_params) + sum(group_heads) * facts.per_head_params


def count_macs(
    facts: ArchFacts, heads: list[int], img_size: int, num_classes: int, share_layers: int | None = None
) -> dict[str, int]:
    """Multiply-accumulates per image, by part (see the module docstring for the formula); a weight-transformation
    descendant (``share_layers``) adds its head mixing before and after the softmax."""
    C, D, M, P = facts.embed_dim, facts.head_dim, facts.mlp_hidden, facts.patch_size
    grid = (img_size // P) ** 2
    N = grid + facts.num_prefix_tokens
    parts = {"patch_embed": grid * C * facts.in_chans * P * P, "qkv": 0, "attn_scores": 0, "attn_values": 0,
             "proj": 0, "ffn": 0}
    for H in heads:
        A = H * D  # attention width of this layer
        parts["qkv"] += N * C * 3 * A
        parts["attn_scores"] += H * N * N * D  # q k^T
        parts["attn_values"] += H * N * N * D  # A v
        parts["proj"] += N * A * C
        parts["ffn"] += 2 * N * C * M
    if share_layers is not None:
        parts["head_mixing"] = sum(2 * H * H * N * N for H in heads)
    parts["head"] = C * num_classes
    return parts


def train_memory_estimate(facts: ArchFacts, heads: list[int], img_size: int, params: int, batch_size: int) -> tuple[int, int]:
    """Approximate bytes to train with AdamW at ``batch_size``: (fp32, AMP).

    Model state: 16 bytes per parameter (fp32 weights, gradients and two AdamW moments; AMP keeps fp32 master
    weights, so the same). Activations autograd keeps per image and layer, in elements, on the explicit attention
    path: N (5 C + 4 H_d D + 2 M) + H_d N^2 (layer inputs and norms, q/k/v, attention output, FFN hidden before and
    after GELU, the attention probabilities), plus the image and the embedded tokens. 4 bytes each in fp32, 2 with
    AMP. Not counted: the CUDA context, allocator fragmentation and temporary buffers; fused attention keeps
    less than the H_d N^2 term. Treat the result as an order of magnitude.
    """
    C, D, M = facts.embed_dim, facts.head_dim, facts.mlp_hidden
    N = (img_size // facts.patch_size) ** 2 + facts.num_prefix_tokens
    per_image = facts.in_chans * img_size * img_size + 2 * N * C
    per_image += sum(N * (5 * C + 4 * H * D + 2 * M) + H * N * N for H in heads)
    state = _STATE_BYTES_PER_PARAM * params
    return state + 4 * batch_size * per_image, state + 2 * batch_size * per_image


def inherited_count(
    facts: ArchFacts, summary: AncestorSummary, spec: DescendantSpec, centroids_per_layer: list[int] | None = None
) -> int:
    """Values the method initialises from the ancestor (see the module docstring)."""
    heads = list(spec.heads)
    shared = facts.embed_params + facts.pos_embed_params(spec.img_size) + facts.final_params
    if spec.init == "scratch":
        return 0
    if spec.share_layers is not None:  # weight-transformation: shared weights once, own norms per layer
        return shared + _shared_block_params(facts, heads, spec.share_layers) + len(heads) * facts.layer_own_params
    if spec.init == "cluster-learngene" and spec.parity == "authors":
        from learngene.descendant.parity import authors_distinct_and_slot_counts

        return authors_distinct_and_slot_counts(facts, summary, spec)[0]
    if spec.init in ("cluster-learngene", "pretrained-prune", "ancestor"):
        slots = list(heads)
        if spec.init == "cluster-learngene" and centroids_per_layer is not None:
            # A layer whose heads are all noise (min_heads > 1) has no centroid: its slots start random.
            slots = [h if c > 0 else 0 for h, c in zip(heads, centroids_per_layer[: len(heads)], strict=True)]
        return shared + len(heads) * facts.block_fixed_params + sum(slots) * facts.per_head_params
    layers = inherited_layers(spec.init, len(heads), summary.num_layers)
    blocks = sum(facts.block_fixed_params + min(heads[d], summary.num_heads) * facts.per_head_params for d in layers)
    return blocks if spec.init in LAYERS_ONLY_BASELINES else shared + blocks


def distinct_count(
    facts: ArchFacts, summary: AncestorSummary, spec: DescendantSpec, centroids_per_layer: list[int] | None = None,
    groups: list[list[int]] | None = None,
) -> int | None:
    """Distinct ancestor values behind the inherited ones (see the module docstring); None when they depend on
    clusters or automatic FFN groups not known yet."""
    if spec.share_layers is not None:  # a group's layers copy the same ancestor norms: count them once
        shared = facts.embed_params + facts.pos_embed_params(spec.img_size) + facts.final_params
        groups = len(spec.heads) // spec.share_layers
        return shared + _shared_block_params(facts, list(spec.heads), spec.share_layers) + groups * facts.layer_own_params
    if spec.init != "cluster-learngene":
        return inherited_count(facts, summary, spec)  # no value is written twice
    if spec.parity == "authors":
        from learngene.descendant.parity import authors_distinct_and_slot_counts

        return authors_distinct_and_slot_counts(facts, summary, spec)[1]
    if groups is None:
        if spec.ffn_groups is None:
            groups = []
        elif isinstance(spec.ffn_groups, tuple):
            groups = [list(g) for g in spec.ffn_groups]
    if centroids_per_layer is None or groups is None:
        return None
    C, M = facts.embed_dim, facts.mlp_hidden
    ffn = 2 * C * M + M + C
    heads = list(spec.heads)
    total = facts.embed_params + facts.pos_embed_params(spec.img_size) + facts.final_params
    total += len(heads) * facts.block_fixed_params
    total -= ffn * sum(max(0, len([x for x in g if x < spec.depth]) - 1) for g in groups)
    total += sum(min(h, c) * facts.per_head_params for h, c in zip(heads, centroids_per_layer, strict=False))
    return total


def inherited_layers(init: str, depth: int, ancestor_depth: int) -> dict[int, int]:
    """For the layer-inheriting baselines: descendant layer -> ancestor layer it copies."""
    init = init.removesuffix("-layers-only")
    if init == "heuristic-learngene":
        n = min(HEURISTIC_LAST_LAYERS, depth, ancestor_depth)
        return {depth - n + i: ancestor_depth - n + i for i in range(n)}
    if init == "auto-learngene":
        n = min(AUTO_FIRST_LAYERS, depth, ancestor_depth)
        return {i: i for i in range(n)}
    return {}


def transform_param_count(groups: list[list[int]]) -> int:
    """Parameters of one T per group of k layers: Linear(1 -> k) and Linear(k -> k), with biases."""
    return sum(2 * len(g) + len(g) * len(g) + len(g) for g in groups)


def descendant_groups(groups: list[list[int]], depth: int) -> list[list[int]]:
    """The FFN groups that reach into the descendant's first ``depth`` layers, whole.

    As in the authors' code a group the depth cuts keeps its full T; its layers inside the depth take T's first
    outputs (depth 10 with {9, 10, 11}: layer 9 gets T(FFN9)[0]). Callers skip the layers >= ``depth``.
    """
    return [list(g) for g in groups if g and min(g) < depth]


# What must agree between the ancestor a learngene was extracted from and the one a descendant is built from: the
# learngene supplies every inherited tensor, so these decide whether its tensors fit the descendant at all.
_LEARNGENE_ARCH_FIELDS = ("arch", "num_layers", "num_heads", "embed_dim", "head_dim", "mlp_hidden_dim", "patch_size")


def check_learngene_ancestor(extracted_from: AncestorSummary, summary: AncestorSummary) -> None:
    """Refuse a learngene of another ancestor (its tensors would not fit, or would silently stand in for this one's).

    The resolution may differ (the position embedding is resampled); the weights fingerprint is compared when both
    summaries have one (pretrained weights; a ``random:`` ancestor has none).
    """
    differ = [f"{name} {getattr(extracted_from, name)} vs {getattr(summary, name)}"
              for name in _LEARNGENE_ARCH_FIELDS if getattr(extracted_from, name) != getattr(summary, name)]
    theirs, ours = extracted_from.weights_sha256, summary.weights_sha256
    if theirs and ours and theirs != ours:
        differ.append(f"weights {theirs} vs {ours}")
    if differ:
        raise LearngeneError(
            f"the learngene was extracted from ancestor {extracted_from.spec!r}, not from {summary.spec!r} "
            f"({'; '.join(differ)}); extract it from this ancestor (learngene.extract_learngene or `learngene extract`)"
        )


def descendant_size(
    ancestor: Ancestor | AncestorSummary,
    spec: DescendantSpec,
    *,
    batch_size: int = 64,
    learngene=None,
) -> DescendantSize:
    """Size a descendant from the ancestor's architecture alone (milliseconds, no model is built).

    Args:
        ancestor: an :class:`Ancestor` or just its :class:`AncestorSummary`.
        spec: the descendant; resolved against the ancestor here if it is not already.
        batch_size: batch for the training-memory estimate.
        learngene: the :class:`~learngene.extraction.Learngene` the build will use, when known. It makes two
            cluster-learngene figures exact that depend on the head statistics: layers left without a centroid
            (all heads noise) and, with ``train_transform``, the automatic FFN groups that T's size depends on.
    """
    summary, facts = _facts(ancestor)
    if not isinstance(spec, DescendantSpec):
        raise LearngeneError(
            f"descendant_size needs a DescendantSpec, got {type(spec).__name__}; e.g. "
            "DescendantSpec(depth=6, width_ratio=2, num_classes=10)"
        )
    spec = spec.resolve(summary)
    if learngene is not None:
        check_learngene_ancestor(learngene.ancestor, summary)
    facts = facts_for_spec(facts, spec)
    heads = list(spec.heads)
    params = count_params(facts, heads, spec.img_size, spec.num_classes, spec.share_layers)
    notes = []
    centroids = [len(layer.centroids) for layer in learngene.layers] if learngene is not None else None
    inherited = inherited_count(facts, summary, spec, centroids)
    distinct = distinct_count(facts, summary, spec, centroids, learngene.ffn_groups if learngene is not None else None)
    if distinct is None:
        notes.append("distinct inherited values depend on the head clusters (known once statistics are computed)")
    transform = 0
    if spec.init == "cluster-learngene" and spec.train_transform:
        if learngene is not None:
            transform = transform_param_count(descendant_groups(learngene.ffn_groups, spec.depth))
        elif isinstance(spec.ffn_groups, tuple):
            transform = transform_param_count(descendant_groups([list(g) for g in spec.ffn_groups], spec.depth))
        elif spec.ffn_groups == "auto":
            notes.append("T's parameters depend on the automatic FFN groups, known once statistics are computed")
    macs = count_macs(facts, heads, spec.img_size, spec.num_classes, spec.share_layers)
    total_macs = sum(macs.values())
    fp32, amp = train_memory_estimate(facts, heads, spec.img_size, params + transform, batch_size)
    return DescendantSize(
        depth=spec.depth, heads_per_layer=heads, img_size=spec.img_size, num_classes=spec.num_classes,
        tokens=(spec.img_size // facts.patch_size) ** 2 + facts.num_prefix_tokens,
        params=params, inherited_params=inherited, inherited_distinct_params=distinct,
        trainable_params=params + transform, transform_params=transform,
        macs=total_macs, flops=2 * total_macs, macs_breakdown=macs, batch_size=batch_size,
        train_memory_fp32_estimate_bytes=fp32, train_memory_amp_estimate_bytes=amp,
        ancestor_params=summary.num_params, init=spec.init, notes=notes,
    )


TABLE_DEPTHS = (4, 6, 9, 12)
TABLE_RATIOS = (2.0, 1.5, 1.0, 0.5)


def scale_table(
    ancestor: Ancestor | AncestorSummary,
    *,
    depths: tuple[int, ...] = TABLE_DEPTHS,
    ratios: tuple[float, ...] = TABLE_RATIOS,
    schedules: tuple[str, ...] = tuple(SCHEDULES),
    img_size: int | None = None,
    num_classes: int | None = None,
    init: str = "cluster-learngene",
    parity: str = "none",
) -> list[dict]:
    """Sizes of a grid of descendants of one ancestor, beside the ancestor and the DeiT Ti/S/B references.

    Depths above the ancestor's are skipped. Every row has ``kind`` (descendant | ancestor | reference),
    ``label``, ``depth``, ``width_ratio`` (a number or a schedule name), ``heads_per_layer``, ``params``,
    ``inherited_params`` (slot-inherited), ``inherited_distinct_params`` (None where it depends on the clusters),
    ``inherited_fraction``, ``macs``, ``flops`` and ``params_vs_ancestor`` /
    ``macs_vs_ancestor`` (ratios to the ancestor at the same resolution and classes). The references are at
    their own 224 px with 1000 classes.
    """
    summary, facts = _facts(ancestor)
    base = DescendantSpec(img_size=img_size, num_classes=num_classes, init="ancestor").resolve(summary)

    def row(kind: str, label: str, spec: DescendantSpec, width) -> dict:
        heads = list(spec.heads)
        spec_facts = facts_for_spec(facts, spec)
        params = count_params(spec_facts, heads, spec.img_size, spec.num_classes, spec.share_layers)
        macs = sum(count_macs(spec_facts, heads, spec.img_size, spec.num_classes, spec.share_layers).values())
        inherited = inherited_count(spec_facts, summary, spec)
        return {"kind": kind, "label": label, "depth": spec.depth, "width_ratio": width, "heads_per_layer": heads,
                "params": params, "inherited_params": inherited,
                "inherited_distinct_params": distinct_count(spec_facts, summary, spec),
                "inherited_fraction": inherited / params, "macs": macs, "flops": 2 * macs}

    rows = [row("ancestor", f"ancestor ({summary.arch})", base, 1.0)]
    for depth in (d for d in depths if d <= summary.num_layers):
        variants = [(r, DescendantSpec(width_ratio=r)) for r in ratios]
        variants += [(s, DescendantSpec(schedule=s)) for s in schedules]
        for width, variant in variants:
            try:
                spec = DescendantSpec(
                    depth=depth, width_ratio=variant.width_ratio, schedule=variant.schedule,
                    img_size=base.img_size, num_classes=base.num_classes, init=init, parity=parity,
                ).resolve(summary)
            except LearngeneError:  # e.g. pretrained-prune cannot have more heads than the ancestor
                continue
            rows.append(row("descendant", f"L={depth}, w={width}", spec, width))
    for label, dim, heads, depth in DEIT_REFERENCES:
        ref_facts = deit_facts(dim)
        params = count_params(ref_facts, [heads] * depth, 224, 1000)
        macs = sum(count_macs(ref_facts, [heads] * depth, 224, 1000).values())
        rows.append({"kind": "reference", "label": label, "depth": depth, "width_ratio": None,
                     "heads_per_layer": [heads] * depth, "params": params, "inherited_params": 0,
                     "inherited_distinct_params": 0,
                     "inherited_fraction": 0.0, "macs": macs, "flops": 2 * macs})
    ancestor_params, ancestor_macs = rows[0]["params"], rows[0]["macs"]
    for r in rows:
        r["params_vs_ancestor"] = r["params"] / ancestor_params
        r["macs_vs_ancestor"] = r["macs"] / ancestor_macs
    return rows
