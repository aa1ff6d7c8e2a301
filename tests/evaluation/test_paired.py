"""The paired-by-seed comparison against a published reference and by its definition."""

from __future__ import annotations

import pytest

from learngene.errors import LearngeneError
from learngene.evaluation.paired import paired_difference

# Student's sleep data (Cushny & Peebles), the textbook paired t-test: extra hours of sleep of ten patients under
# two drugs. R's `t.test(extra ~ group, data = sleep, paired = TRUE)` prints t = -4.0621, df = 9,
# p-value = 0.002833, mean difference -1.58.
DRUG_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
DRUG_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_paired_t_matches_the_published_sleep_data_result():
    result = paired_difference("drug 1", dict(enumerate(DRUG_1)), "drug 2", dict(enumerate(DRUG_2)))
    assert result.mean == pytest.approx(-1.58)
    assert result.t == pytest.approx(-4.0621, abs=1e-4)
    assert result.p == pytest.approx(0.002833, abs=1e-6)
    assert result.wins == 0  # drug 1 never adds more sleep than drug 2 in this data
    assert result.seeds == list(range(10))


def test_pairs_only_seeds_both_rows_ran_and_keeps_their_order():
    result = paired_difference("a", {3: 70.0, 1: 60.0, 2: 65.0}, "b", {1: 58.0, 2: 66.0, 7: 10.0})
    assert result.seeds == [1, 2]
    assert result.differences == [2.0, -1.0]
    assert result.wins == 1


def test_no_t_without_spread_or_with_one_seed():
    same = paired_difference("a", {0: 5.0, 1: 6.0}, "b", {0: 4.0, 1: 5.0})
    assert same.mean == 1.0 and same.sd == 0.0 and same.t is None and same.p is None
    single = paired_difference("a", {0: 5.0}, "b", {0: 4.0})
    assert single.sd is None and single.t is None


def test_rows_without_a_common_seed_are_refused_in_one_line():
    with pytest.raises(LearngeneError, match="share no seed"):
        paired_difference("a", {0: 1.0}, "b", {1: 1.0})
