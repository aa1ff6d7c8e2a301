"""The UMAP worker process's functions: import only numpy and umap (not Streamlit or torch), so the spawned process
starts light. Run by :class:`app.analysis.UmapWorker`'s process pool."""

from __future__ import annotations

import os

import numpy as np


def lower_priority() -> None:
    """Pool initializer: the app's renders come first on a small machine."""
    try:
        os.nice(10)
    except OSError:
        pass


def umap_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D UMAP of the rows of ``features`` (deterministic for a given seed)."""
    import umap

    neighbours = max(2, min(15, features.shape[0] - 1))
    reducer = umap.UMAP(n_neighbors=neighbours, min_dist=0.3, random_state=seed, n_jobs=1)
    return np.asarray(reducer.fit_transform(features))
