"""Scores of frozen features: a linear probe, k-NN, and where one score falls within a null distribution."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

# One fixed C for every row: tuning it per row would give each design its own advantage.
LINEAR_C = 1.0
LINEAR_MAX_ITER = 2000
DEFAULT_FOLDS = 5
DEFAULT_K = 5


def linear_probe_accuracy(features: np.ndarray, labels: np.ndarray, *, folds: int = DEFAULT_FOLDS,
                          seed: int = 0, c: float = LINEAR_C) -> float:
    """Stratified k-fold accuracy of a logistic regression on standardised features (pooled over folds).

    The folds are capped by the smallest class, so a tiny subset still gets a valid split.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels)
    splits = max(2, min(folds, int(np.bincount(labels).min())))
    cv = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=LINEAR_MAX_ITER))
    with warnings.catch_warnings():
        # Near-constant features (scratch, random embeddings) may not converge; the score is still what it is.
        warnings.simplefilter("ignore", ConvergenceWarning)
        predicted = cross_val_predict(model, features, labels, cv=cv)
    return float(np.mean(predicted == labels))


def knn_accuracy(features: np.ndarray, labels: np.ndarray, *, k: int = DEFAULT_K) -> float:
    """Leave-one-out k-NN accuracy with cosine similarity (the DINO k-NN protocol, unweighted votes).

    A tied vote goes to the tied class whose neighbours rank nearer (the smaller sum of ranks).
    """
    x = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    n = len(labels)
    if n < 2:
        raise ValueError("k-NN needs at least two samples")
    k = min(k, n - 1)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    similarity = x @ x.T
    np.fill_diagonal(similarity, -np.inf)  # leave one out: a sample is never its own neighbour
    neighbours = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    classes = np.unique(labels)
    index = {c: i for i, c in enumerate(classes)}
    # Votes dominate; the rank term (< 1 in total) only separates tied votes.
    rank_bonus = (k - np.arange(k)) / (k * (k + 1))
    correct = 0
    for i in range(n):
        score = np.zeros(len(classes))
        for rank, j in enumerate(neighbours[i]):
            score[index[labels[j]]] += 1.0 + rank_bonus[rank]
        correct += classes[int(np.argmax(score))] == labels[i]
    return correct / n


def percentile_within(value: float, null: Sequence[float]) -> float:
    """Percentile (0-100) of ``value`` within ``null``: share of null values below it, ties counted half."""
    null = np.asarray(list(null), dtype=np.float64)
    if null.size == 0:
        return float("nan")
    below = float(np.sum(null < value))
    ties = float(np.sum(null == value))
    return 100.0 * (below + 0.5 * ties) / null.size


def score_features(features: np.ndarray, labels: np.ndarray, folds: int = DEFAULT_FOLDS, seed: int = 0,
                   k: int = DEFAULT_K) -> dict[str, float]:
    """Both scores of one design's features (a top-level function, so a process pool can run it)."""
    return {"linear": linear_probe_accuracy(features, labels, folds=folds, seed=seed),
            "knn": knn_accuracy(features, labels, k=k)}


def _one_thread() -> None:
    # Many workers each running multi-threaded BLAS would oversubscribe the cores.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def scoring_pool(jobs: int) -> ProcessPoolExecutor:
    """Worker processes for :func:`score_features` (spawned: safe after CUDA is initialised in the parent)."""
    import multiprocessing

    return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread)
