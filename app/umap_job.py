"""The UMAP fit, in its own module so the worker process imports only numpy and umap (not Streamlit or torch)."""

from __future__ import annotations

import numpy as np


def umap_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D UMAP of the rows of ``features`` (deterministic for a given seed)."""
    import umap

    neighbours = max(2, min(15, features.shape[0] - 1))
    reducer = umap.UMAP(n_neighbors=neighbours, min_dist=0.3, random_state=seed, n_jobs=1)
    return reducer.fit_transform(features)
