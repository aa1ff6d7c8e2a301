"""The scikit-learn estimator for one layer's head clustering (kept apart: scikit-learn is slow to import).

The algorithm and its bookkeeping are :mod:`learngene.clustering`'s; this class gives them scikit-learn's estimator
interface (``fit``, ``get_params``, ``set_params``) for the app's sliders and for users' pipelines.
"""

from __future__ import annotations

from sklearn.base import BaseEstimator, ClusterMixin

from learngene.clustering import CENTROID_MODES, cluster_heads, validate_distances, validate_thresholds
from learngene.errors import LearngeneError


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
        distances = validate_distances(X)
        if distances.ndim > 2 or (distances.ndim == 2 and distances.shape[1] != 1):
            # Flattening an (L, H) table would cluster the heads of every layer together: a silent wrong result.
            raise LearngeneError(
                f"HeadClustering clusters one layer: X must be its (H,) MADs or an (H, 1) column, got shape "
                f"{distances.shape}; cluster a whole L x H table with learngene.cluster_layers"
            )
        distances = distances.reshape(-1)
        validate_thresholds(self.eps, self.min_heads, num_heads=len(distances))
        result = cluster_heads(distances, self.eps, self.min_heads)
        self.labels_ = result["labels"]
        self.clusters_ = result["clusters"]
        self.cluster_mean_distance_ = result["mean_distance"]
        self.centroids_ = result["centroids"]
        self.noise_ = result["noise"]
        self.distances_ = distances
        return self

    @property
    def n_clusters_(self) -> int:
        return len(self.clusters_)
