"""The rows of a probe table: a registry of named row kinds, each turning one width setting into designs.

A *design* is one model whose frozen features get scored: a descendant built by :func:`build_descendant`, a copy
of the Cluster-Learngene descendant with other heads written into its slots (the random null), or the ancestor
itself. Rows are registered by name in :data:`ROWS`, so a row that depends on an option added later (the
authors'-code slicing, the authors' loader semantics of Heuristic/Auto) is one :func:`register_row` call,
usually through :func:`spec_row`, with nothing else to change.

The random null (``random-heads``) keeps everything Cluster-Learngene inherits (embeddings, norms, FFNs, T) and
the *shape* of its head choice: per layer, the distinct ancestor heads Cluster-Learngene places into the slots are
replaced by as many distinct heads drawn uniformly without replacement from that ancestor layer, and each slot
takes the draw that replaced its source. So the heads-per-layer counts, and at w < 1 the pattern of repeated
heads, are the same; only which heads differs.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from learngene.ancestors import Ancestor
from learngene.clustering import PAPER_EPS, PAPER_MIN_HEADS
from learngene.descendant import DescendantSpec, build_descendant
from learngene.descendant.spec import SCHEDULES
from learngene.errors import LearngeneError
from learngene.head_weights import read_head, write_head
from learngene.paths import cache_dir

# The descendant's classifier is never used (features are taken before it); one output keeps every design of a
# width identical across datasets, so its features cache is shared by them.
PROBE_CLASSES = 1
# Offsets the null's random stream from any other use of the seed.
NULL_STREAM = 14
MAD_VERSION = 1


@dataclass(frozen=True)
class Width:
    """One width setting of a table: a ratio ``w`` (H_d = floor(H / w)) or a named schedule."""

    name: str
    ratio: float | None = None
    schedule: str | None = None


def parse_width(text: str) -> Width:
    """``"2"`` -> ratio 2; ``"decreasing"`` -> the schedule. Raises LearngeneError for anything else."""
    text = str(text).strip()
    if text in SCHEDULES:
        return Width(name=text, schedule=text)
    try:
        ratio = float(text)
    except ValueError:
        raise LearngeneError(
            f"a width must be a positive number or one of {', '.join(SCHEDULES)} (got {text!r})"
        ) from None
    return Width(name=f"{ratio:g}", ratio=ratio)


@dataclass
class Design:
    """One model to score: its row, its draw (null rows), and how to make it (model, facts to record)."""

    row: str
    label: str
    make: Callable[[], tuple[nn.Module, dict]]
    draw: int | None = None


@dataclass(frozen=True)
class TableRequest:
    """What the row builders need to know about the table being filled."""

    width: Width
    null_draws: int


@dataclass(frozen=True)
class RowKind:
    """A named row: ``designs(context, request)`` lists its designs (one, or several for a null)."""

    name: str
    label: str
    description: str
    designs: Callable[[ProbeContext, TableRequest], list[Design]]
    is_null: bool = False
    # The descendant design this row scores as itself (its spec's init and parity), or None for references and nulls.
    init: str | None = None
    parity: str = "none"


ROWS: dict[str, RowKind] = {}


def register_row(kind: RowKind) -> RowKind:
    """Add (or replace) a row kind; ``--rows`` and the benchmark offer every registered name."""
    ROWS[kind.name] = kind
    return kind


@dataclass
class ProbeContext:
    """The ancestor plus everything built from it once and shared by every row of every table.

    Attributes:
        mad: (L, H) mean attention distances to cluster with; None computes them on the built-in probe images
            (cached on disk per ancestor weights).
        eps, min_heads: the clustering thresholds of the Cluster-Learngene designs (the paper's by default).
    """

    ancestor: Ancestor
    depth: int
    seed: int = 0
    eps: float = PAPER_EPS
    min_heads: int = PAPER_MIN_HEADS
    device: str = "cpu"
    progress: Callable[[str], None] | None = None
    mad: np.ndarray | None = None
    _learngene: object | None = None
    _cluster: dict = field(default_factory=dict)

    def spec(self, width: Width, **fields) -> DescendantSpec:
        """A resolved spec of this context's depth and ``width`` (``fields`` override init and the rest)."""
        spec = DescendantSpec(depth=self.depth, width_ratio=width.ratio, schedule=width.schedule,
                              num_classes=PROBE_CLASSES, seed=self.seed, **fields)
        return spec.resolve(self.ancestor.summary)

    def distances(self) -> np.ndarray:
        """(L, H) mean attention distances on the built-in probe images, cached on disk per ancestor weights."""
        if self.mad is None:
            self.mad = _cached_distances(self.ancestor, self.device, self.progress)
        return self.mad

    def learngene(self):
        if self._learngene is None:
            from learngene.extraction import extract_learngene

            self._learngene = extract_learngene(self.ancestor, self.distances(), eps=self.eps,
                                                min_heads=self.min_heads)
        return self._learngene

    def build(self, spec: DescendantSpec):
        # Parity builds use the authors' fixed S_l lists: no clustering of ours goes into them.
        learngene = self.learngene() if spec.init == "cluster-learngene" and spec.parity != "authors" else None
        return build_descendant(self.ancestor, spec, learngene=learngene)

    def cluster(self, width: Width):
        """The Cluster-Learngene descendant of ``width`` (built once; null rows copy it)."""
        if width not in self._cluster:
            self._cluster[width] = self.build(self.spec(width, init="cluster-learngene"))
        return self._cluster[width]


def _cached_distances(ancestor: Ancestor, device: str, progress) -> np.ndarray:
    from learngene.atomic import write_json_atomic
    from learngene.attention.statistics import compute_head_statistics
    from learngene.evaluation.features import model_digest
    from learngene.probes import load_probe_images

    probes = load_probe_images("builtin", ancestor.summary)
    key = hashlib.sha256(f"{MAD_VERSION}|{model_digest(ancestor.model)}|{probes.description}".encode()).hexdigest()
    path = cache_dir() / "probe-features" / f"mad-{key[:32]}.json"
    if path.is_file():
        try:
            return np.asarray(json.loads(path.read_text())["distances"], dtype=np.float64)
        except (OSError, ValueError, KeyError):
            pass  # unreadable: compute again
    if progress is not None:
        progress(f"computing head statistics on {len(probes)} built-in probe images (cached afterwards)")
    stats = compute_head_statistics(ancestor.model, probes, ancestor.summary, device=device)
    distances = np.asarray(stats.mean_attention_distance, dtype=np.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"probe": probes.description, "distances": distances.tolist()})
    return distances


# --------------------------------------------------------------------------------------------- head choices


def random_head_sources(sources: list[list[int | None]], num_heads: int,
                        rng: np.random.Generator) -> list[list[int | None]]:
    """Per layer, replace the distinct source heads by as many distinct heads drawn from ``num_heads``.

    Slots that shared a source share its replacement; random (None) slots stay random.
    """
    drawn = []
    for layer in sources:
        distinct = list(dict.fromkeys(s for s in layer if s is not None))
        if len(distinct) > num_heads:
            raise ValueError(f"a layer uses {len(distinct)} distinct heads but the ancestor has {num_heads}")
        chosen = rng.choice(num_heads, size=len(distinct), replace=False).tolist()
        mapping = dict(zip(distinct, chosen, strict=True))
        drawn.append([None if s is None else int(mapping[s]) for s in layer])
    return drawn


def write_head_sources(model: nn.Module, ancestor: nn.Module, sources: list[list[int | None]]) -> None:
    """Write ancestor head ``sources[l][i]`` of ancestor layer l into slot i of descendant layer l (q/k/v rows,
    their biases and W_O columns, as inheritance does); None leaves a slot as it is."""
    for layer, row in enumerate(sources):
        source_attn = ancestor.blocks[layer].attn
        for slot, head in enumerate(row):
            if head is not None:
                write_head(model.blocks[layer].attn, slot, read_head(source_attn, head))


def with_heads(context: ProbeContext, width: Width, sources: list[list[int | None]]) -> tuple[nn.Module, dict]:
    """A copy of the Cluster-Learngene descendant whose head slots come from ``sources`` instead."""
    model = copy.deepcopy(context.cluster(width).model)
    write_head_sources(model, context.ancestor.model, sources)
    return model, {"heads": [len(row) for row in sources], "head_sources": sources}


def _facts(descendant) -> dict:
    return {"heads": list(descendant.spec.heads), "head_sources": descendant.config["head_sources"]}


# --------------------------------------------------------------------------------------------- the rows


def spec_row(name: str, label: str, description: str, **spec_fields) -> RowKind:
    """A row built by :func:`build_descendant` from this table's spec with ``spec_fields`` (e.g. ``init``)."""

    def designs(context: ProbeContext, request: TableRequest) -> list[Design]:
        def make():
            descendant = context.build(context.spec(request.width, **spec_fields))
            return descendant.model, _facts(descendant)

        return [Design(row=name, label=label, make=make)]

    return RowKind(name=name, label=label, description=description, designs=designs,
                   init=spec_fields.get("init"), parity=spec_fields.get("parity", "none"))


def _ancestor_designs(context: ProbeContext, request: TableRequest) -> list[Design]:
    summary = context.ancestor.summary
    facts = {"heads": summary.heads_per_layer, "layers": summary.num_layers}
    return [Design(row="ancestor", label="full ancestor", make=lambda: (context.ancestor.model, facts))]


def _cluster_designs(context: ProbeContext, request: TableRequest) -> list[Design]:
    def make():
        descendant = context.cluster(request.width)
        return copy.deepcopy(descendant.model), _facts(descendant)

    return [Design(row="cluster-learngene", label="Cluster-Learngene", make=make)]


def _null_designs(context: ProbeContext, request: TableRequest) -> list[Design]:
    def make(draw: int):
        sources = context.cluster(request.width).config["head_sources"]
        rng = np.random.default_rng([context.seed, NULL_STREAM, draw])
        return with_heads(context, request.width, random_head_sources(sources, context.ancestor.summary.num_heads, rng))

    return [Design(row="random-heads", label=f"random heads #{draw}", draw=draw, make=lambda d=draw: make(d))
            for draw in range(request.null_draws)]


def _first_heads_designs(context: ProbeContext, request: TableRequest) -> list[Design]:
    def make():
        heads = context.spec(request.width).heads
        num = context.ancestor.summary.num_heads
        if max(heads) > num:
            raise LearngeneError(f"first-heads needs at most the ancestor's {num} heads per layer")
        return with_heads(context, request.width, [list(range(h)) for h in heads])

    return [Design(row="first-heads", label="first H_d heads, cluster inheritance", make=make)]


register_row(RowKind("ancestor", "full ancestor", "the ancestor itself, all layers (reference)", _ancestor_designs))
register_row(RowKind("cluster-learngene", "Cluster-Learngene", "priority weight-sharing of head centroids",
                     _cluster_designs, init="cluster-learngene"))
register_row(spec_row("pretrained-prune", "prune (first H_d heads)",
                      "the ancestor's first L_d layers with their first H_d heads", init="pretrained-prune"))
register_row(RowKind("random-heads", "random heads (null)",
                     "Cluster-Learngene with random heads of the same shape per layer", _null_designs, is_null=True))
register_row(RowKind("first-heads", "first heads, cluster inheritance",
                     "Cluster-Learngene with slots i <- head i (isolates the head choice from prune's FFNs)",
                     _first_heads_designs))
register_row(spec_row("heuristic-learngene", "Heuristic-Learngene", "the ancestor's last 3 layers plus its patch "
                      "embedding, tokens, position embedding and final norm (the authors' loader)",
                      init="heuristic-learngene"))
register_row(spec_row("auto-learngene", "Auto-Learngene", "the ancestor's first 6 layers plus its embeddings and "
                      "final norm (the authors' loader)", init="auto-learngene"))
register_row(spec_row("heuristic-layers-only", "Heuristic-Learngene (layers only)", "the ancestor's last 3 layers, "
                      "everything else random (the paper's prose)", init="heuristic-learngene-layers-only"))
register_row(spec_row("auto-layers-only", "Auto-Learngene (layers only)", "the ancestor's first 6 layers, "
                      "everything else random (the paper's prose)", init="auto-learngene-layers-only"))
register_row(spec_row("authors-slicing", "Cluster-Learngene (authors' code)", "the authors' S_l lists, qkv chunks "
                      "without bias and W_O columns (--parity authors; DeiT-Ti/S/B ancestors only)",
                      init="cluster-learngene", parity="authors"))
register_row(spec_row("scratch", "scratch", "random init of the descendant architecture", init="scratch"))
register_row(spec_row("weight-transformation", "Weight-Transformation", "MiniViT-style multiplexing: each pair of "
                      "layers shares one ancestor block (width 1 and an even depth only; skipped otherwise)",
                      init="weight-transformation"))

NULL_ROW = "random-heads"
CLUSTER_ROW = "cluster-learngene"


def row_for_design(init: str, parity: str = "none") -> str | None:
    """The registered row that scores a descendant of this init and parity as itself, or None."""
    return next((kind.name for kind in ROWS.values() if (kind.init, kind.parity) == (init, parity)), None)


def check_rows(names) -> list[str]:
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise LearngeneError(f"unknown row {unknown[0]!r}; choose from {', '.join(ROWS)}")
    return list(names)
