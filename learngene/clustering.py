"""Adaptive density clustering of one layer's heads on the mean-attention-distance axis (method.md steps 2-3).

The paper's Algorithm 1 is DBSCAN on 1-D points with ``eps = Eps`` and ``min_samples = MinHds`` (a point's
neighbourhood includes itself). :func:`dbscan_1d` is scikit-learn's ``DBSCAN`` for 1-D points in numpy alone (same
neighbourhood test, same visiting order; the tests compare the two), so that ``learngene cluster`` and the app need
not import scikit-learn; the scikit-learn estimator :class:`HeadClustering` (in :mod:`learngene.head_clustering`,
importable from here) is loaded only when asked for. What this module adds is the paper's bookkeeping on top: labels renumbered by each cluster's lowest head index, a representative head per
cluster (the member nearest the cluster's mean MAD, ties to the lowest index) and the priority order of clusters
(largest first, ties in label order).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from learngene.errors import LearngeneError
from learngene.whole_numbers import is_whole

CENTROID_MODES = ("nearest", "average")
NOISE = -1
# The paper's thresholds (method.md step 2): every command, the app and the probe default to them.
PAPER_EPS, PAPER_MIN_HEADS = 10.0, 1


def validate_thresholds(eps: float, min_heads: int, num_heads: int | None = None) -> None:
    """Reject thresholds that have no meaning, naming the fix.

    With ``num_heads`` (the heads per layer), a ``min_heads`` above it is refused too: no head could be a core
    head, so every head of every layer would be noise and the learngene would hold no head at all.
    """
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not np.isfinite(eps) or eps <= 0:
        raise LearngeneError(f"eps must be a positive number of pixels (got {_shown(eps)}); the paper uses 10")
    if not is_whole(min_heads) or min_heads < 1:
        raise LearngeneError(f"min_heads must be an integer >= 1 (got {_shown(min_heads)}); the paper uses 1")
    if num_heads is not None and min_heads > num_heads:
        raise LearngeneError(
            f"min_heads {min_heads} is more than the {num_heads} heads of a layer, so every head would be noise "
            f"and nothing inherited; use a value from 1 to {num_heads} (the paper uses 1)"
        )


def _shown(value) -> str:
    """A number as the user wrote it (10, 0.5); anything else quoted, so that '10' (a string) reads as one."""
    return str(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else repr(value)


def validate_distances(distances: np.ndarray, what: str = "mean attention distances") -> np.ndarray:
    """Check a (L, H) or (H,) table of MADs: numeric, finite, non-negative, non-empty."""
    try:
        array = np.asarray(distances, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise LearngeneError(
            f"the {what} must be a table of numbers, one row per layer of equal length ({error})"
        ) from None
    if array.size == 0:
        raise LearngeneError(f"the {what} are empty")
    if not np.all(np.isfinite(array)):
        raise LearngeneError(f"the {what} contain NaN or infinite values; recompute the statistics")
    if np.any(array < 0):
        # A distance in pixels is never negative: such a table is not MADs (log-values, centred data, a typo).
        raise LearngeneError(
            f"the {what} are distances in pixels and cannot be negative (the smallest is {array.min():g}); "
            "pass the mean attention distances themselves, or recompute the statistics"
        )
    return array


def dbscan_1d(distances: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN labels of 1-D points, as ``sklearn.cluster.DBSCAN(eps, min_samples).fit(x[:, None]).labels_``.

    Same neighbourhood test as scikit-learn's tree search (squared gap <= eps squared), same order: clusters grow
    from the core points in index order, and a border point joins the first cluster that reaches it.
    """
    x = np.asarray(distances, dtype=np.float64).reshape(-1)
    gaps = x[:, None] - x[None, :]
    neighbours = [np.flatnonzero(row) for row in gaps * gaps <= float(eps) * float(eps)]
    is_core = np.array([len(n) >= min_samples for n in neighbours], dtype=bool)
    labels = np.full(len(x), NOISE, dtype=np.intp)
    label = 0
    for seed in range(len(x)):
        if labels[seed] != NOISE or not is_core[seed]:
            continue
        stack = [seed]
        while stack:
            point = stack.pop()
            if labels[point] != NOISE:
                continue
            labels[point] = label
            if is_core[point]:
                stack.extend(int(v) for v in neighbours[point] if labels[v] == NOISE)
        label += 1
    return labels


def cluster_heads(distances: np.ndarray, eps: float, min_heads: int) -> dict:
    """One layer's clustering as arrays: ``labels``, ``clusters``, ``centroids``, ``mean_distance``, ``noise``."""
    labels = _renumber_by_lowest_member(dbscan_1d(distances, eps, int(min_heads)))
    n_clusters = int(labels.max()) + 1 if np.any(labels >= 0) else 0
    members = [np.flatnonzero(labels == k) for k in range(n_clusters)]
    # Python's sort is stable: equal sizes keep label order.
    priority = sorted(range(n_clusters), key=lambda k: -len(members[k]))
    return {
        "labels": labels,
        "clusters": [members[k].tolist() for k in priority],
        "centroids": np.array([_nearest_to_mean(distances, members[k]) for k in priority], dtype=np.int64),
        "mean_distance": np.array([distances[members[k]].mean() for k in priority]),
        "noise": np.flatnonzero(labels == NOISE),
    }


def _renumber_by_lowest_member(raw_labels: np.ndarray) -> np.ndarray:
    """Relabel clusters 0, 1, ... in order of their lowest head index (sklearn numbers by first *core* head)."""
    labels = np.full_like(raw_labels, NOISE)
    next_label = 0
    mapping: dict[int, int] = {}
    for head, raw in enumerate(raw_labels):
        if raw == NOISE:
            continue
        if raw not in mapping:
            mapping[raw] = next_label
            next_label += 1
        labels[head] = mapping[raw]
    return labels


def _nearest_to_mean(distances: np.ndarray, members: np.ndarray) -> int:
    """Member whose MAD is nearest the members' mean; near-ties (floating point) go to the lowest index."""
    values = distances[members]
    gaps = np.abs(values - values.mean())
    tolerance = 1e-9 * max(1.0, float(np.abs(values).max()))
    return int(members[np.flatnonzero(gaps <= gaps.min() + tolerance)[0]])


@dataclass(frozen=True)
class LayerClusters:
    """The clustering of one layer, in the plain form the CLI, the app and the learngene store."""

    labels: list[int]
    clusters: list[list[int]]  # priority order
    centroids: list[int]  # priority order: the list S_l of method.md step 5
    mean_distance: list[float]  # per cluster, priority order
    noise: list[int]

    @classmethod
    def from_arrays(cls, result: dict) -> LayerClusters:
        """From :func:`cluster_heads`'s result."""
        return cls(
            labels=result["labels"].tolist(),
            clusters=[list(c) for c in result["clusters"]],
            centroids=result["centroids"].tolist(),
            mean_distance=result["mean_distance"].tolist(),
            noise=result["noise"].tolist(),
        )

    @classmethod
    def from_estimator(cls, estimator) -> LayerClusters:
        """From a fitted :class:`~learngene.head_clustering.HeadClustering`."""
        return cls(
            labels=estimator.labels_.tolist(),
            clusters=[list(c) for c in estimator.clusters_],
            centroids=estimator.centroids_.tolist(),
            mean_distance=estimator.cluster_mean_distance_.tolist(),
            noise=estimator.noise_.tolist(),
        )

    def to_dict(self) -> dict:
        return {
            "labels": self.labels,
            "clusters": self.clusters,
            "centroids": self.centroids,
            "mean_distance": self.mean_distance,
            "noise": self.noise,
        }


def cluster_layers(
    distances: Sequence[Sequence[float]] | np.ndarray, eps: float = PAPER_EPS, min_heads: int = PAPER_MIN_HEADS
) -> list[LayerClusters]:
    """Cluster every layer of an (L, H) MAD table independently; returns one :class:`LayerClusters` per layer."""
    validate_thresholds(eps, min_heads)
    table = validate_distances(distances)
    if table.ndim != 2:
        raise LearngeneError(
            f"mean attention distances must be a table of L layers x H heads, got shape {table.shape}"
        )
    validate_thresholds(eps, min_heads, num_heads=table.shape[1])
    return [LayerClusters.from_arrays(cluster_heads(row, eps, min_heads)) for row in table]


def __getattr__(name: str):
    # The scikit-learn estimator lives apart so that importing this module does not import scikit-learn.
    if name == "HeadClustering":
        from learngene.head_clustering import HeadClustering

        return HeadClustering
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
