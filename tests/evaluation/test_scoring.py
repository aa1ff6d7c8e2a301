"""Scores against hand-made answers and, where tie-breaking cannot differ, against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learngene.evaluation.scoring import knn_accuracy, linear_probe_accuracy, percentile_within


def test_percentile_counts_values_below_and_half_the_ties():
    null = [0.1, 0.2, 0.3, 0.3, 0.4]
    assert percentile_within(0.3, null) == pytest.approx(100 * (2 + 0.5 * 2) / 5)  # 60
    assert percentile_within(0.05, null) == 0.0
    assert percentile_within(0.9, null) == 100.0
    assert percentile_within(0.25, null) == pytest.approx(40.0)
    assert math.isnan(percentile_within(0.5, []))


def test_knn_hand_made_leave_one_out():
    # Two tight groups on the unit circle; one point of group "1" sits inside group "0": leave-one-out 3-NN
    # misclassifies exactly that point, and a group-0 point is never fooled by one stray neighbour.
    angles = np.array([0.0, 0.05, 0.1, 0.15, 0.07, 1.5, 1.55, 1.6, 1.65])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    features = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    assert knn_accuracy(features, labels, k=3) == pytest.approx(8 / 9)


def test_knn_tie_goes_to_the_nearer_class():
    # k = 2 with one neighbour of each class: the nearer neighbour's class wins.
    features = np.array([[1.0, 0.0], [1.0, 0.1], [1.0, 0.3], [0.0, 1.0], [-1.0, 0.0], [-1.0, -0.1]])
    labels = np.array([0, 0, 1, 1, 1, 1])
    # point 0: neighbours 1 (class 0, nearer) and 2 (class 1) -> 0, correct; point 1: 0 (class 0) and 2 -> 0,
    # correct; point 2: 1 (class 0, nearer) and 0 (class 0) -> 0, wrong; points 3-5 see class-1 points.
    assert knn_accuracy(features, labels, k=2) == pytest.approx(5 / 6)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_knn_matches_scikit_learn_when_votes_cannot_tie(k):
    from sklearn.model_selection import LeaveOneOut, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=80)
    features = rng.normal(size=(80, 6)) + labels[:, None] * 0.8
    reference = cross_val_predict(KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute"),
                                  features, labels, cv=LeaveOneOut())
    assert knn_accuracy(features, labels, k=k) == pytest.approx(np.mean(reference == labels))


def test_linear_probe_separates_separable_data_and_not_noise():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 30)
    separable = rng.normal(size=(90, 8)) + 5.0 * np.eye(8)[labels]
    assert linear_probe_accuracy(separable, labels) == 1.0
    noise = rng.normal(size=(90, 8))
    assert linear_probe_accuracy(noise, labels) < 0.6
    assert linear_probe_accuracy(noise, labels, seed=3) == linear_probe_accuracy(noise, labels, seed=3)


def test_linear_probe_folds_are_capped_by_the_smallest_class():
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1])  # 2 samples of class 1: 2 folds, not 5
    features = np.c_[labels, np.zeros(8)] + 0.01 * np.arange(8)[:, None]
    assert linear_probe_accuracy(features, labels, folds=5) == 1.0
