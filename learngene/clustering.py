"""Adaptive density clustering of one layer's heads on the mean-attention-distance axis (method.md steps 2-3).

The paper's Algorithm 1 is DBSCAN on 1-D points with ``eps = Eps`` and ``min_samples = MinHds``; scikit-learn's
``DBSCAN`` has exactly those semantics (a point's neighbourhood includes itself). What this module adds is the
paper's bookkeeping on top: labels renumbered by each cluster's lowest head index, a representative head per
cluster (the member nearest the cluster's mean MAD, ties to the lowest index) and the priority order of clusters
(largest first, ties in label order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import DBSCAN

from learngene.errors import LearngeneError

CENTROID_MODES = ("nearest", "average")
NOISE = -1


def validate_thresholds(eps: float, min_heads: int) -> None:
    """Reject thresholds that have no meaning, naming the fix."""
    if not np.isfinite(eps) or eps <= 0:
        raise LearngeneError(f"eps must be a positive number of pixels (got {eps}); the paper uses 10")
    if int(min_heads) != min_heads or min_heads < 1:
        raise LearngeneError(f"min_heads must be an integer >= 1 (got {min_heads}); the paper uses 1")


def validate_distances(distances: np.ndarray, what: str = "mean attention distances") -> np.ndarray:
    """Check a (L, H) or (H,) table of MADs: numeric, finite, non-empty."""
    array = np.asarray(distances, dtype=np.float64)
    if array.size == 0:
        raise LearngeneError(f"the {what} are empty")
    if not np.all(np.isfinite(array)):
        raise LearngeneError(f"the {what} contain NaN or infinite values; recompute the statistics")
    return array


class HeadClustering(ClusterMixin, BaseEstimator):
    """Cluster one layer's heads by mean attention distance.

    Parameters
    ----------
    eps : float, default=10
        Neighbourhood radius in pixels: heads whose MADs differ by at most ``eps`` are neighbours.
    min_heads : int, default=1
        Neighbours (the head itself included) a head needs to be a core head. ``1`` makes every head core, so the
        result is "sort the MADs and cut where the gap exceeds eps", with no noise.
    centroid : {"nearest", "average"}, default="nearest"
        How the learngene represents a cluster: the weights of its representative head, or the average of its
        members' weights. The representative head (``centroids_``) is the same in both modes.

    Attributes
    ----------
    labels_ : ndarray of shape (H,)
        Cluster of each head, numbered in order of each cluster's lowest head index; -1 is noise.
    clusters_ : list of list of int
        Member heads of each cluster (ascending), clusters in priority order (largest first, stable).
    centroids_ : ndarray of shape (n_clusters,)
        Representative head of each cluster, priority order: the member nearest the cluster's mean MAD, ties to
        the lowest head index.
    cluster_mean_distance_ : ndarray of shape (n_clusters,)
        Mean MAD of each cluster, priority order.
    noise_ : ndarray
        Heads labelled noise (not inherited).
    """

    def __init__(self, eps: float = 10.0, min_heads: int = 1, centroid: str = "nearest"):
        self.eps = eps
        self.min_heads = min_heads
        self.centroid = centroid

    def fit(self, X, y=None):
        """Cluster heads; ``X`` is a (H,) vector of MADs or an (H, 1) column."""
        validate_thresholds(self.eps, self.min_heads)
        if self.centroid not in CENTROID_MODES:
            raise LearngeneError(f"centroid must be one of {CENTROID_MODES} (got {self.centroid!r})")
        distances = validate_distances(np.asarray(X, dtype=np.float64).reshape(-1))
        raw = DBSCAN(eps=float(self.eps), min_samples=int(self.min_heads)).fit(distances[:, None]).labels_
        self.labels_ = _renumber_by_lowest_member(raw)
        n_clusters = int(self.labels_.max()) + 1 if np.any(self.labels_ >= 0) else 0
        members = [np.flatnonzero(self.labels_ == k) for k in range(n_clusters)]
        # Python's sort is stable: equal sizes keep label order.
        priority = sorted(range(n_clusters), key=lambda k: -len(members[k]))
        self.clusters_ = [members[k].tolist() for k in priority]
        self.cluster_mean_distance_ = np.array([distances[members[k]].mean() for k in priority])
        self.centroids_ = np.array(
            [_nearest_to_mean(distances, members[k]) for k in priority], dtype=np.int64
        )
        self.noise_ = np.flatnonzero(self.labels_ == NOISE)
        self.distances_ = distances
        return self

    @property
    def n_clusters_(self) -> int:
        return len(self.clusters_)


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
    def from_estimator(cls, estimator: HeadClustering) -> LayerClusters:
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
    distances: Sequence[Sequence[float]] | np.ndarray, eps: float = 10.0, min_heads: int = 1
) -> list[LayerClusters]:
    """Cluster every layer of an (L, H) MAD table independently; returns one :class:`LayerClusters` per layer."""
    validate_thresholds(eps, min_heads)
    table = validate_distances(distances)
    if table.ndim != 2:
        raise LearngeneError(
            f"mean attention distances must be a table of L layers x H heads, got shape {table.shape}"
        )
    estimator = HeadClustering(eps=eps, min_heads=min_heads)
    return [LayerClusters.from_estimator(estimator.fit(row)) for row in table]
