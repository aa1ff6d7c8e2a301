"""compute_head_statistics refuses a model, summary and probe set that do not belong together."""

import pytest

from learngene import LearngeneError, load_ancestor
from learngene.attention.statistics import compute_head_statistics
from learngene.probes import load_probe_images


@pytest.fixture(scope="module")
def tiny():
    return load_ancestor("random:vit_tiny_patch16_224", img_size=32)


def test_a_summary_of_another_ancestor_is_refused_not_returned_as_a_wrong_shaped_table(tiny):
    other = load_ancestor("random:vit_small_patch16_224", img_size=32)
    probes = load_probe_images("builtin", tiny.summary, num_images=1)
    # Before: a (12, 6) table of garbage for a 12 x 3 model (the running sums are sized from the summary).
    with pytest.raises(LearngeneError, match=r"12 layers x 3 heads but the summary describes 12 x 6"):
        compute_head_statistics(tiny.model, probes, other.summary, device="cpu")


def test_probe_images_prepared_for_another_resolution_are_refused_in_one_line(tiny):
    probes = load_probe_images("builtin", load_ancestor("random:vit_tiny_patch16_224", img_size=48).summary,
                               num_images=1)
    # Before: timm's AssertionError "Input height (48) doesn't match model (32)".
    with pytest.raises(LearngeneError, match=r"prepared at 48 px but the ancestor takes 32 px"):
        compute_head_statistics(tiny.model, probes, tiny.summary, device="cpu")


def test_matching_inputs_still_give_one_row_per_layer_and_one_column_per_head(tiny):
    probes = load_probe_images("builtin", tiny.summary, num_images=1)
    stats = compute_head_statistics(tiny.model, probes, tiny.summary, device="cpu")
    assert stats.mean_attention_distance.shape == (12, 3)
