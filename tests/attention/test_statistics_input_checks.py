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


@pytest.mark.parametrize(("call", "message"), [
    # Before: TypeError "slice indices must be integers" / "'<' not supported between 'str' and 'int'".
    (lambda a, p: load_probe_images("builtin", a.summary, num_images=2.5),
     r"num_images must be a whole number of at least 1 \(got 2.5\)"),
    (lambda a, p: load_probe_images("builtin", a.summary, num_images="3"),
     r"num_images must be a whole number of at least 1 \(got '3'\)"),
    (lambda a, p: compute_head_statistics(a.model, p, a.summary, batch_size="8"),
     r"batch_size must be a whole number of at least 1 \(got '8'\)"),
    # Before: torch's RuntimeError listing every device type it knows.
    (lambda a, p: compute_head_statistics(a.model, p, a.summary, device="tpu"), r"unknown device 'tpu'; use auto, cpu"),
])
def test_counts_and_devices_of_the_wrong_kind_get_one_line(tiny, call, message):
    probes = load_probe_images("builtin", tiny.summary, num_images=1)
    with pytest.raises(LearngeneError, match=message):
        call(tiny, probes)
