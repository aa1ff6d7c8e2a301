"""Groups of adjacent layers that share one FFN centroid (method.md step 4).

The paper gives no rule; the authors hard-coded groups per ancestor. This module validates user-given groups and
proposes groups with a documented rule:

    Two adjacent layers *match* when, ignoring singleton clusters, they have the same number of clusters (at
    least one) and their sorted cluster-mean MADs agree pairwise within ``eps``. A maximal run of matching
    adjacent layers becomes a group, split into consecutive chunks of at most ``max_size`` layers (the authors'
    groups never exceed 3 layers, and the transformation's output width grows with the group size).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from learngene.clustering import LayerClusters
from learngene.errors import LearngeneError

# The authors' hard-coded groups, for reference and comparison (layer indices, 0-based).
AUTHOR_GROUPS = {
    "deit_base_patch16_224": [[6, 7], [9, 10, 11]],
    "deit_small_patch16_224": [[9, 10, 11]],
    "deit_tiny_patch16_224": [[1, 2], [10, 11]],
}


def validate_groups(groups: Sequence[Sequence[int]], num_layers: int) -> list[list[int]]:
    """Check user-given groups: runs of >= 2 adjacent, in-range layers, no layer in two groups."""
    seen: set[int] = set()
    result = []
    for group in groups:
        layers = sorted(int(layer) for layer in group)
        if len(layers) < 2:
            raise LearngeneError(f"an FFN group needs at least 2 layers, got {list(group)}")
        if layers != list(range(layers[0], layers[0] + len(layers))):
            raise LearngeneError(f"an FFN group must be adjacent layers, got {list(group)}")
        if layers[0] < 0 or layers[-1] >= num_layers:
            raise LearngeneError(f"FFN group {list(group)} is outside layers 0..{num_layers - 1}")
        if seen & set(layers):
            raise LearngeneError(f"layer(s) {sorted(seen & set(layers))} appear in two FFN groups")
        seen.update(layers)
        result.append(layers)
    return sorted(result)


def parse_groups(text: str) -> list[list[int]]:
    """Parse ``"6-7,9-11"`` or ``"6:7;9:10:11"`` style text into lists of layers (validation is separate)."""
    groups = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                start, end = (int(x) for x in part.split("-"))
                groups.append(list(range(start, end + 1)))
            else:
                groups.append([int(x) for x in part.split(":")])
        except ValueError as error:
            raise LearngeneError(f"cannot read FFN group {part!r}: write groups like '6-7,9-11'") from error
    return groups


def groups_from_text(value):
    """FFN groups as the library takes them: ``"auto"`` and None stay, ``"none"`` is None, other text such as
    ``"9-11"`` or ``"6-7,9-11"`` (the ``--ffn-groups`` form) is parsed; lists of layers are returned as they are.

    Without this a string was iterated character by character ("9-11" -> a one-layer group ['9']).
    """
    if not isinstance(value, str) or value == "auto":
        return value
    if value.strip().lower() == "none":
        return None
    return parse_groups(value)


def _signature(layer: LayerClusters) -> np.ndarray:
    """Sorted mean MADs of the layer's clusters with more than one member."""
    return np.sort([m for c, m in zip(layer.clusters, layer.mean_distance, strict=True) if len(c) > 1])


def layers_match(a: LayerClusters, b: LayerClusters, eps: float) -> bool:
    sig_a, sig_b = _signature(a), _signature(b)
    return len(sig_a) > 0 and len(sig_a) == len(sig_b) and bool(np.all(np.abs(sig_a - sig_b) <= eps))


def propose_groups(layers: Sequence[LayerClusters], eps: float = 10.0, max_size: int | None = 3) -> list[list[int]]:
    """Propose FFN groups from per-layer clusterings with the rule in this module's docstring."""
    if max_size is not None and max_size < 2:
        raise LearngeneError("max_size of an FFN group must be at least 2")
    if not all(isinstance(layer, LayerClusters) for layer in layers):
        # A MAD table here was iterated row by row and failed inside numpy ("truth value of an array ...").
        raise LearngeneError(
            "propose_groups takes each layer's clustering: pass learngene.cluster_layers(mad_table, eps, min_heads)"
        )
    groups: list[list[int]] = []
    run = [0] if layers else []
    for index in range(1, len(layers) + 1):
        if index < len(layers) and layers_match(layers[index - 1], layers[index], eps):
            run.append(index)
            continue
        groups.extend(_split_run(run, max_size))
        run = [index]
    return groups


def _split_run(run: list[int], max_size: int | None) -> list[list[int]]:
    if len(run) < 2:
        return []
    size = max_size or len(run)
    chunks = [run[i : i + size] for i in range(0, len(run), size)]
    return [chunk for chunk in chunks if len(chunk) >= 2]
