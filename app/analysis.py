"""Head analysis for the Heads page: clustering, sweeps, similarity, 2-D embeddings, attention maps.

Plain functions over numpy arrays (memoised with ``functools.lru_cache`` where a slider makes them repeat), so they
are unit-testable without Streamlit. UMAP runs in a worker process that never touches Streamlit; callers show a
PCA projection until it is ready.
"""

from __future__ import annotations

import functools
import io
import multiprocessing
import tempfile
import threading
import zipfile
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pandas as pd

from learngene.clustering import NOISE, LayerClusters, cluster_layers

# -- clustering ---------------------------------------------------------------------------------------------------


_LAYER_CACHE: dict[tuple, LayerClusters] = {}
_LAYER_CACHE_LIMIT = 50_000


@functools.lru_cache(maxsize=1024)
def _pair_gaps(row: bytes) -> np.ndarray:
    values = np.frombuffer(row, dtype=np.float64)
    return np.sort(np.abs(values[:, None] - values[None, :])[np.triu_indices(len(values), 1)])


def cluster(mad: np.ndarray, eps: float, min_heads: int) -> list[LayerClusters]:
    """Per-layer clustering of an (L, H) MAD table by the backend, memoised per layer.

    A layer's clustering depends on Eps only through its Eps-neighbourhood graph, i.e. through how many of its
    pairwise MAD gaps are <= Eps. That count is the cache key, so a slider move re-clusters only the layers whose
    graph it changed (usually a few), and moving back costs nothing.
    """
    from learngene.clustering import validate_thresholds

    validate_thresholds(eps, min_heads)
    mad = np.ascontiguousarray(mad, dtype=np.float64)
    if mad.ndim != 2:
        return cluster_layers(mad, eps=eps, min_heads=min_heads)  # the backend explains the problem
    if len(_LAYER_CACHE) > _LAYER_CACHE_LIMIT:
        _LAYER_CACHE.clear()
    result = []
    for row in mad:
        data = row.tobytes()
        key = (data, int(min_heads), int(np.searchsorted(_pair_gaps(data), eps, side="right")))
        layer = _LAYER_CACHE.get(key)
        if layer is None:
            layer = _LAYER_CACHE[key] = cluster_layers(row[None, :], eps=float(eps), min_heads=int(min_heads))[0]
        result.append(layer)
    return result


def label_grid(layers: list[LayerClusters]) -> np.ndarray:
    """(L, H) cluster label of every head, -1 for noise."""
    return np.array([layer.labels for layer in layers], dtype=np.int64)


def centroid_grid(layers: list[LayerClusters], num_heads: int) -> np.ndarray:
    """(L, H) priority rank of each head that is a centroid, -1 otherwise."""
    grid = np.full((len(layers), num_heads), -1, dtype=np.int64)
    for index, layer in enumerate(layers):
        for rank, head in enumerate(layer.centroids):
            grid[index, head] = rank
    return grid


def cluster_counts(layers: list[LayerClusters]) -> list[int]:
    return [len(layer.clusters) for layer in layers]


def centroid_table(layers: list[LayerClusters]) -> pd.DataFrame:
    """One row per cluster, layers in order, clusters in priority order (the list S_l of the paper)."""
    rows = []
    for index, layer in enumerate(layers):
        for rank, (head, members, mean) in enumerate(zip(layer.centroids, layer.clusters, layer.mean_distance, strict=True)):
            label = layer.labels[head]
            rows.append(
                {"layer": index, "priority": rank, "centroid head": head, "cluster": label,
                 "size": len(members), "members": ", ".join(map(str, members)), "mean MAD (px)": round(mean, 1)}
            )
    return pd.DataFrame(rows)


def clustering_json(layers: list[LayerClusters], eps: float, min_heads: int) -> dict:
    return {"eps": eps, "min_heads": min_heads, "layers": [layer.to_dict() for layer in layers]}


@functools.lru_cache(maxsize=32)
def _sweep_cached(table: bytes, shape: tuple[int, int], min_heads: int, eps_values: tuple[float, ...]) -> np.ndarray:
    mad = np.frombuffer(table, dtype=np.float64).reshape(shape)
    eps = np.asarray(eps_values)
    if min_heads == 1:
        # Every head is core: a layer splits wherever the gap between consecutive sorted MADs exceeds Eps
        # (DBSCAN joins points at distance <= eps), so the count is 1 + the number of such gaps.
        gaps = np.diff(np.sort(mad, axis=1), axis=1)  # (L, H-1)
        return 1 + (gaps[None, :, :] > eps[:, None, None]).sum(-1)
    return np.array([[len(layer.clusters) for layer in cluster_layers(mad, e, min_heads)] for e in eps])


def eps_sweep(mad: np.ndarray, min_heads: int, eps_values) -> np.ndarray:
    """(E, L) number of clusters per layer for each Eps value (memoised per MAD table and MinHds)."""
    mad = np.ascontiguousarray(mad, dtype=np.float64)
    return _sweep_cached(mad.tobytes(), mad.shape, int(min_heads), tuple(float(e) for e in eps_values))


def default_sweep_values(mad: np.ndarray) -> np.ndarray:
    """Eps values from 0.5 px to the full spread of MADs, 48 steps: where every threshold bites."""
    spread = float(np.ptp(mad)) if np.size(mad) else 1.0
    return np.unique(np.round(np.linspace(0.5, max(spread, 1.0) * 1.05, 48), 1))


def cluster_order(labels: list[int] | np.ndarray) -> np.ndarray:
    """Head order that puts each cluster's members together (clusters by label, noise last)."""
    labels = np.asarray(labels)
    key = np.where(labels == NOISE, labels.max() + 1, labels)
    return np.lexsort((np.arange(len(labels)), key))


# -- 2-D embedding of all heads -------------------------------------------------------------------------------------


def head_features(stats) -> np.ndarray:
    """One row per head (layer-major): its mean relative-offset attention pattern, square-rooted and centred.

    The square root tempers the peak at offset 0 so the shape of the spread counts; falls back to (MAD, entropy)
    when the statistics file has no patterns.
    """
    pattern = np.asarray(stats.mean_pattern)
    L, H = stats.mean_attention_distance.shape
    if pattern.size:
        features = np.sqrt(np.clip(pattern.reshape(L * H, -1), 0, None))
    else:
        features = np.stack([stats.mean_attention_distance.ravel(), np.nan_to_num(stats.entropy.ravel())], axis=1)
        features = (features - features.mean(0)) / (features.std(0) + 1e-9)
    return features - features.mean(0)


def pca_2d(features: np.ndarray) -> np.ndarray:
    """First two principal components (milliseconds): what is shown while UMAP warms up."""
    features = features - features.mean(0)
    if features.shape[0] < 2:
        return np.zeros((features.shape[0], 2))
    _, _, vt = np.linalg.svd(features, full_matrices=False)
    coords = features @ vt[:2].T
    return coords if coords.shape[1] == 2 else np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))


class UmapWorker:
    """Computes UMAP embeddings in the background; :meth:`result` never blocks (None until ready).

    The first fit pays for importing umap and numba's compilation (~10-25 s on a 2-core machine); later fits take a
    fraction of a second. Fits run in a one-process :class:`~concurrent.futures.ProcessPoolExecutor` (spawned, low
    priority, see :mod:`app.umap_job`): numba's compiler holds the GIL, so in a thread of the app it would stall
    every page render meanwhile; the one process keeps the compiled code for every later fit. One future per key,
    shared by every session; a dead worker process is replaced on the next submission.
    """

    def __init__(self) -> None:
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, key: str, features: np.ndarray) -> Future:
        """Start the embedding of ``features`` under ``key`` unless it was started before (and did not fail
        because the worker process died)."""
        from app.umap_job import lower_priority, umap_2d

        with self._lock:
            future = self._futures.get(key)
            if future is not None and not (future.done() and isinstance(future.exception(), BrokenProcessPool)):
                return future
            if self._pool is None or getattr(self._pool, "_broken", False):
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=lower_priority)
            future = self._futures[key] = self._pool.submit(umap_2d, np.array(features, dtype=np.float64))
            return future

    def result(self, key: str, features: np.ndarray) -> tuple[np.ndarray | None, str | None]:
        """(coordinates, None) when ready, (None, None) while running, (None, message) if it failed."""
        future = self.submit(key, features)
        if not future.done():
            return None, None
        error = future.exception()
        if error is not None:
            return None, f"UMAP failed ({error}); showing PCA"
        return future.result(), None

    def close(self) -> None:
        """Stop the worker process now, without waiting for a fit in progress (tests; the app never needs to)."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._futures.clear()
        if pool is not None:
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()


umap_worker = UmapWorker()


# -- attention maps -------------------------------------------------------------------------------------------------


def query_attention(maps: np.ndarray, head: int, query: int | None, grid: tuple[int, int], num_prefix: int) -> np.ndarray:
    """Attention of one query token over the patch grid, shape (R, C).

    ``query`` None means the first prefix token (CLS), else the patch index (row-major). Models without a prefix
    token show the mean over all queries instead of CLS.
    """
    rows, cols = grid
    head_map = maps[head]  # (N, N)
    if query is None:
        row = head_map[0] if num_prefix > 0 else head_map[num_prefix:].mean(0)
    else:
        row = head_map[num_prefix + query]
    return np.asarray(row[num_prefix:]).reshape(rows, cols)


# -- downloads -----------------------------------------------------------------------------------------------------


def learngene_archive(ancestor, mad: np.ndarray, eps: float, min_heads: int, provenance: dict | None = None) -> bytes:
    """The learngene for these thresholds as a zip of its safetensors weights and JSON description."""
    from learngene.extraction import extract_learngene, save_learngene

    learngene = extract_learngene(ancestor, mad, eps=eps, min_heads=min_heads, provenance=provenance or {})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "learngene"
        save_learngene(learngene, folder, force=True)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(tmp))
    return buffer.getvalue()
