import numpy as np
import pytest
from sklearn.cluster import DBSCAN

from learngene import HeadClustering, LearngeneError, cluster_layers


def partition(labels):
    """Clusters as a set of frozensets (label numbering ignored), and the noise set."""
    labels = np.asarray(labels)
    clusters = {frozenset(np.flatnonzero(labels == k)) for k in set(labels.tolist()) - {-1}}
    return clusters, frozenset(np.flatnonzero(labels == -1))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("min_heads", [1, 2, 3])
def test_same_partition_as_sklearn_dbscan(seed, min_heads):
    rng = np.random.default_rng(seed)
    mad = rng.uniform(0, 130, size=int(rng.integers(3, 16)))
    eps = float(rng.uniform(3, 25))
    ours = HeadClustering(eps=eps, min_heads=min_heads).fit(mad)
    reference = DBSCAN(eps=eps, min_samples=min_heads).fit(mad[:, None]).labels_
    # Border heads reachable from two clusters may go either way; 1-D DBSCAN with the same visiting order agrees.
    assert partition(ours.labels_) == partition(reference)
    if min_heads == 1:
        assert len(ours.noise_) == 0


def test_min_heads_one_cuts_sorted_mads_at_gaps_larger_than_eps():
    mad = np.array([5.0, 100.0, 14.0, 30.0, 111.0, 22.0])
    model = HeadClustering(eps=10).fit(mad)
    # sorted: 5, 14, 22, 30 | 100, 111 -> gaps 9, 8, 8 then 70, then 11 > 10
    assert partition(model.labels_)[0] == {frozenset({0, 2, 3, 5}), frozenset({1}), frozenset({4})}


def test_labels_are_numbered_by_lowest_member_and_noise_is_minus_one():
    mad = np.array([100.0, 1.0, 2.0, 3.0, 101.0, 60.0])
    model = HeadClustering(eps=5, min_heads=2).fit(mad)
    assert model.labels_.tolist() == [0, 1, 1, 1, 0, -1]
    assert model.noise_.tolist() == [5]


def test_priority_is_largest_cluster_first_and_stable_for_ties():
    mad = np.array([50.0, 0.0, 51.0, 100.0, 1.0, 101.0, 2.0])
    model = HeadClustering(eps=5).fit(mad)
    # clusters by label: {0,2} (label 0), {1,4,6} (label 1), {3,5} (label 2)
    assert model.clusters_ == [[1, 4, 6], [0, 2], [3, 5]]
    assert len(model.centroids_) == 3 and model.centroids_[0] == 4  # 1.0 is the mean of 0, 1, 2


def test_two_member_clusters_tie_and_go_to_the_lower_head_index():
    mad = np.array([40.0, 10.0, 30.0, 20.0])
    model = HeadClustering(eps=10.5).fit(np.array([20.0, 10.0]))
    assert model.centroids_.tolist() == [0]  # both equidistant from 15: lowest index wins
    model = HeadClustering(eps=10.5).fit(mad)  # one cluster, mean 25: 20 (head 3) and 30 (head 2) tie
    assert model.centroids_.tolist() == [2]


def test_floating_point_near_ties_go_to_the_lowest_index():
    mad = np.array([0.1 + 0.2, 0.3, 0.7, 0.0])  # mean-gaps differ only by rounding
    model = HeadClustering(eps=1).fit(np.array([0.1, 0.1 + 0.2, 0.5]))
    assert model.centroids_.tolist() == [1]
    assert HeadClustering(eps=1).fit(mad).centroids_.tolist() == [0]


def test_estimator_params_round_trip_for_the_ui_sliders():
    model = HeadClustering(eps=4.0, min_heads=2, centroid="average")
    assert model.get_params() == {"eps": 4.0, "min_heads": 2, "centroid": "average"}
    model.set_params(eps=12.5)
    assert model.eps == 12.5


@pytest.mark.parametrize("kwargs, message", [
    (dict(eps=0), "eps"), (dict(eps=-1), "eps"), (dict(eps=float("nan")), "eps"),
    (dict(min_heads=0), "min_heads"), (dict(min_heads=1.5), "min_heads"), (dict(centroid="median"), "centroid"),
])
def test_bad_parameters_are_rejected_at_fit(kwargs, message):
    with pytest.raises(LearngeneError, match=message):
        HeadClustering(**kwargs).fit(np.array([1.0, 2.0]))


def test_nan_and_wrong_shapes_are_rejected():
    with pytest.raises(LearngeneError, match="NaN"):
        cluster_layers([[1.0, float("nan")]])
    with pytest.raises(LearngeneError, match="L layers x H heads"):
        cluster_layers([1.0, 2.0])


def test_builtin_ancestor_clusters_differ_from_a_random_model(builtin_stats):
    layers = cluster_layers(builtin_stats.mean_attention_distance, eps=10, min_heads=1)
    real_clusters = sum(len(layer.clusters) for layer in layers)
    # A random ViT gives every head nearly the same MAD: one cluster per layer.
    random_like = np.full_like(builtin_stats.mean_attention_distance, 117.0)
    random_like += np.random.default_rng(0).normal(0, 0.5, random_like.shape)
    assert sum(len(layer.clusters) for layer in cluster_layers(random_like)) == random_like.shape[0]
    assert real_clusters > 1.5 * random_like.shape[0]


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("min_heads", [1, 2, 3, 4])
def test_numpy_dbscan_gives_sklearns_labels_exactly_even_at_the_eps_boundary(seed, min_heads):
    from learngene.clustering import dbscan_1d

    rng = np.random.default_rng(seed)
    # Whole-pixel MADs and eps make many gaps exactly eps; fractional ones exercise the squared-gap test.
    size = int(rng.integers(1, 17))
    mad = rng.integers(0, 40, size=size).astype(float) if seed % 2 else rng.uniform(0, 130, size=size)
    eps = float(rng.integers(1, 8)) if seed % 2 else float(rng.uniform(0.5, 25))
    reference = DBSCAN(eps=eps, min_samples=min_heads).fit(mad[:, None]).labels_
    assert dbscan_1d(mad, eps, min_heads).tolist() == reference.tolist()


def test_clustering_without_the_estimator_does_not_import_sklearn():
    import subprocess
    import sys

    code = ("import sys; from learngene.clustering import cluster_layers; cluster_layers([[1.0, 30.0]]); "
            "print(any(m == 'sklearn' or m.startswith('sklearn.') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# --- bad input a researcher could plausibly pass: one LearngeneError, never a silent or obscure result ---


def test_head_clustering_refuses_a_whole_table_instead_of_clustering_all_layers_as_one():
    table = np.array([[10.0, 11.0, 60.0], [30.0, 31.0, 90.0]])
    # Before: the (2, 3) table was flattened and the heads of both layers clustered together.
    with pytest.raises(LearngeneError, match=r"clusters one layer.*\(2, 3\).*cluster_layers"):
        HeadClustering().fit(table)
    assert HeadClustering().fit(table[0][:, None]).labels_.tolist() == [0, 0, 1]  # an (H, 1) column still works


@pytest.mark.parametrize("fit", [
    lambda: cluster_layers([[10.0, 11.0, 60.0]], eps=10, min_heads=4),
    lambda: HeadClustering(min_heads=4).fit([10.0, 11.0, 60.0]),
])
def test_min_heads_above_the_head_count_is_refused_not_turned_into_all_noise(fit):
    # Before: every head of every layer labelled noise, so the learngene inherited no head at all.
    with pytest.raises(LearngeneError, match=r"min_heads 4 is more than the 3 heads.*from 1 to 3"):
        fit()


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(eps="10"), r"eps must be a positive number of pixels \(got '10'\)"),
    (dict(eps=None), r"eps must be a positive number of pixels \(got None\)"),
    (dict(min_heads=float("nan")), r"min_heads must be an integer >= 1 \(got nan\)"),
    (dict(min_heads=True), r"min_heads must be an integer >= 1 \(got True\)"),
])
def test_thresholds_that_are_not_numbers_get_the_threshold_message(kwargs, message):
    # Before: numpy's TypeError (isfinite of a string or None) and int(nan)'s ValueError.
    with pytest.raises(LearngeneError, match=message):
        cluster_layers([[10.0, 11.0, 60.0]], **kwargs)


@pytest.mark.parametrize("table", [[[1.0, 2.0], [3.0]], [["a", "b"]]])
def test_a_ragged_or_non_numeric_table_is_refused_in_one_line(table):
    # Before: numpy's "inhomogeneous shape" / "could not convert string to float" ValueError.
    with pytest.raises(LearngeneError, match=r"must be a table of numbers, one row per layer of equal length"):
        cluster_layers(table)


def test_negative_distances_are_refused_not_clustered():
    # Before: clustered like any other numbers; a MAD is a distance in pixels, so this is not a MAD table.
    with pytest.raises(LearngeneError, match=r"distances in pixels and cannot be negative \(the smallest is -60\)"):
        cluster_layers([[10.0, -11.0, -60.0]])
    assert cluster_layers([[0.0, 1.0, 60.0]])[0].centroids == [0, 2]  # zero is a distance
