"""The UMAP worker process: imports only numpy and umap (not Streamlit or torch) and serves fits over a pipe."""

from __future__ import annotations

import os

import numpy as np


def umap_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D UMAP of the rows of ``features`` (deterministic for a given seed)."""
    import umap

    neighbours = max(2, min(15, features.shape[0] - 1))
    reducer = umap.UMAP(n_neighbors=neighbours, min_dist=0.3, random_state=seed, n_jobs=1)
    return np.asarray(reducer.fit_transform(features))


def serve(connection) -> None:
    """Answer each feature matrix received with ``(coords, None)`` or ``(None, message)``; stop when the app goes."""
    try:
        os.nice(10)  # the app's renders come first on a small machine
    except OSError:
        pass
    while True:
        try:
            features = connection.recv()
        except (EOFError, OSError):
            return
        try:
            connection.send((umap_2d(features), None))
        except Exception as error:  # reported to the page, which keeps showing PCA
            connection.send((None, f"UMAP failed: {error}"))
