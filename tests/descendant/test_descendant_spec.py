"""DescendantSpec resolution: width ratios, schedules, explicit heads, and every bad input named clearly."""

from __future__ import annotations

import pytest

from learngene.descendant import DescendantSpec
from learngene.descendant.arch import summary_without_weights
from learngene.errors import LearngeneError


@pytest.fixture(scope="module")
def small():
    """deit_small shape: 12 layers x 6 heads, patch 16, 224 px, 1000 classes."""
    return summary_without_weights("random:deit_small_patch16_224")


@pytest.mark.parametrize("ratio, heads", [(2, 3), (1.5, 4), (1, 6), (0.5, 12), (4, 1), (6, 1)])
def test_width_ratio_floors_h_over_w(small, ratio, heads):
    spec = DescendantSpec(depth=6, width_ratio=ratio).resolve(small)
    assert list(spec.heads) == [heads] * 6


def test_defaults_are_the_ancestors_architecture(small):
    spec = DescendantSpec().resolve(small)
    assert (spec.depth, spec.heads, spec.img_size, spec.num_classes) == (12, (6,) * 12, 224, 1000)


def test_schedules_follow_thirds_of_the_depth(small):
    # w = 2, 1.5, 1 over the thirds: 3, 4, 6 heads for H = 6.
    assert list(DescendantSpec(depth=6, schedule="decreasing").resolve(small).heads) == [3, 3, 4, 4, 6, 6]
    assert list(DescendantSpec(depth=6, schedule="increasing").resolve(small).heads) == [6, 6, 4, 4, 3, 3]
    assert list(DescendantSpec(depth=4, schedule="decreasing").resolve(small).heads) == [3, 3, 4, 6]


def _authors_schedule(num_heads: int, depth: int, decreasing: bool) -> list[int]:
    """The authors' SAVisionTransformer: width ratio by absolute layer index, H_d = int(H // w)."""
    ratios = [(2.0 if i < 4 else (1.5 if i < 8 else 1.0)) if decreasing else (1.0 if i < 4 else (1.5 if i < 8 else 2.0))
              for i in range(depth)]
    return [int(num_heads // w) for w in ratios]


@pytest.mark.parametrize("depth", [6, 9, 10, 11, 12])
@pytest.mark.parametrize("decreasing", [True, False])
def test_by_index_schedules_follow_the_authors_rule(small, depth, decreasing):
    name = "decreasing-by-index" if decreasing else "increasing-by-index"
    assert list(DescendantSpec(depth=depth, schedule=name).resolve(small).heads) == _authors_schedule(6, depth, decreasing)
    # parity mode turns this project's schedule names into the authors' rule, and records which rule it used
    parity = DescendantSpec(depth=depth, schedule=name.removesuffix("-by-index"), parity="authors").resolve(small)
    assert list(parity.heads) == _authors_schedule(6, depth, decreasing) and parity.schedule == name


def test_the_two_schedule_rules_differ_on_a_short_descendant(small):
    assert list(DescendantSpec(depth=6, schedule="decreasing-by-index").resolve(small).heads) == [3, 3, 3, 3, 4, 4]
    assert list(DescendantSpec(depth=6, schedule="decreasing").resolve(small).heads) == [3, 3, 4, 4, 6, 6]


def test_explicit_heads_and_resolution_is_idempotent(small):
    spec = DescendantSpec(depth=3, heads=[1, 7, 2], img_size=96, num_classes=5).resolve(small)
    assert spec.heads == (1, 7, 2) and spec.img_size == 96 and spec.num_classes == 5
    assert spec.resolve(small) == spec
    assert DescendantSpec.from_dict(spec.to_dict()) == spec


def test_heads_beside_an_agreeing_width_ratio_are_accepted(small):
    """An edited copy of a resolved spec keeps both; that is only an error when they disagree."""
    spec = DescendantSpec(depth=4, width_ratio=2, heads=[3, 3, 3, 3], init="scratch").resolve(small)
    assert spec.heads == (3, 3, 3, 3)
    with pytest.raises(LearngeneError, match="gives \\[3, 3, 3, 3\\]"):
        DescendantSpec(depth=4, width_ratio=2, heads=[3, 3, 3, 2]).resolve(small)


def test_backbone_ancestor_defaults_to_1000_classes():
    builtin = summary_without_weights("builtin")
    assert builtin.num_classes == 0
    assert DescendantSpec().resolve(builtin).num_classes == 1000


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(depth=13), "depth must be between 1 and the ancestor's 12"),
        (dict(depth=0), "depth must be between 1"),
        (dict(depth=2, heads=[3, 0]), "at least one head"),
        (dict(depth=2, heads=[3, -1]), "at least one head"),
        (dict(depth=3, heads=[3, 3]), "2 entries but the descendant has 3 layers"),
        (dict(width_ratio=7), "leaves no head"),
        (dict(width_ratio=0), "positive number"),
        (dict(width_ratio=-1), "positive number"),
        (dict(num_classes=0), "number of classes must be between 1"),
        (dict(num_classes=-3), "number of classes must be between 1"),
        (dict(img_size=100), "multiple of the patch size 16"),
        (dict(width_ratio=2, heads=[6] * 12), "only one of width ratio, heads list or schedule"),
        (dict(width_ratio=2, schedule="increasing"), "only one of width ratio, heads list or schedule"),
        (dict(schedule="sideways"), "schedule must be one of"),
        (dict(init="magic"), "init must be one of"),
        (dict(head_order="random"), "head_order must be one of"),
        (dict(init="pretrained-prune", width_ratio=0.5), "cannot have more than its 6 heads"),
        (dict(init="ancestor", depth=6), "keeps the ancestor's architecture"),
        (dict(parity="exact"), "parity must be one of none, authors"),
        (dict(parity="authors", width_ratio=0.75), "must be a multiple of the ancestor's 6"),
        (dict(parity="authors", centroid="average"), "--parity authors fixes centroid"),
        (dict(parity="authors", ffn_groups=[[3, 4]]), "uses the authors' FFN groups"),
        (dict(parity="authors", init="auto-learngene-layers-only"), "use auto-learngene instead"),
    ],
)
def test_bad_specs_raise_one_clear_line(small, kwargs, words):
    with pytest.raises(LearngeneError) as error:
        DescendantSpec(**kwargs).resolve(small)
    message = str(error.value)
    assert words in message and "\n" not in message


def test_parity_refuses_an_ancestor_it_has_no_settings_for():
    with pytest.raises(LearngeneError) as error:
        DescendantSpec(parity="authors").resolve(summary_without_weights("random:vit_small_patch16_224"))
    message = str(error.value)
    assert "deit_base_patch16_224, deit_small_patch16_224, deit_tiny_patch16_224" in message and "\n" not in message


# --- values a researcher could plausibly pass: one LearngeneError naming the field, never int()'s ValueError ---


@pytest.mark.parametrize(("fields", "message"), [
    (dict(depth=float("nan")), r"depth must be between 1 and"),
    (dict(num_classes=float("nan")), r"number of classes must be between 1 and"),
    (dict(img_size=float("nan")), r"image size must be a positive multiple of the patch size"),
    (dict(depth=2, heads=[float("nan"), 1]), r"every layer needs at least one head \(got nan"),
    (dict(depth=2, heads=["a", 1]), r"every layer needs at least one head \(got a"),
    (dict(width_ratio="x"), r"the width ratio must be a positive number \(got x\)"),
    (dict(heads=10), r"heads must be a list with one head count per layer \(got 10\).*keywords"),
    (dict(ffn_groups=[[11, 12]]), r"FFN group \[11, 12\] is outside layers 0..8"),
    (dict(ffn_groups=[[0, 2]]), r"an FFN group must be adjacent layers"),
    (dict(ffn_groups=[["a", "b"]]), r"ffn_groups must be 'auto', None, text like '6-7,9-11'"),
    # Before: sized without complaint, then torch.manual_seed's TypeError/RuntimeError at build time.
    (dict(seed="a"), r"seed must be a whole number from -2\*\*63 to 2\*\*63 - 1 \(got 'a'\)"),
    (dict(seed=2**70), r"seed must be a whole number"),
])
def test_bad_fields_are_refused_in_one_line(tiny_ancestor, fields, message):
    with pytest.raises(LearngeneError, match=message):
        DescendantSpec(**fields).resolve(tiny_ancestor.summary)


def test_positional_fields_are_refused_with_the_keyword_form():
    # DescendantSpec(6, 2, 10) put 10 into heads: before, TypeError "'int' object is not iterable".
    with pytest.raises(LearngeneError, match=r"DescendantSpec\(depth=6, width_ratio=2, num_classes=10\)"):
        DescendantSpec(6, 2, 10)


@pytest.mark.parametrize(("text", "groups"), [("3-4", ((3, 4),)), ("0-1,3-5", ((0, 1), (3, 4, 5))), ("none", None)])
def test_ffn_groups_take_the_command_lines_text_form(tiny_ancestor, text, groups):
    # Before: "3-4" was iterated character by character (a one-layer group '3'); "none" raised int()'s ValueError.
    spec = DescendantSpec(ffn_groups=text)
    assert spec.ffn_groups == groups
    assert spec.resolve(tiny_ancestor.summary).ffn_groups == groups
