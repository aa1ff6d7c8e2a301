"""Paired-by-seed comparison of two initialisations: per-seed differences, their mean, and a paired t-test.

Two runs that share a seed share everything the seed decides (the classifier's initial weights, the data order,
the augmentation draws), so the run-to-run noise that the seed brings cancels in their difference. A paired
t-test on the per-seed differences is therefore far more sensitive than comparing the two rows' means with their
standard deviations (Welch), which is what three seeds of a noisy row cannot resolve.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from learngene.errors import LearngeneError


@dataclass(frozen=True)
class PairedDifference:
    """``row`` minus ``reference``, seed by seed.

    Attributes:
        seeds: the seeds both rows ran, ascending.
        differences: ``row - reference`` per seed (same order as ``seeds``).
        mean, sd: mean and sample standard deviation (n - 1) of the differences.
        t: the paired t statistic, mean / (sd / sqrt(n)); None when n < 2 or every difference is equal.
        p: its two-sided p-value with n - 1 degrees of freedom; None with ``t``.
        wins: seeds where ``row`` scored strictly higher than ``reference``.
    """

    row: str
    reference: str
    seeds: list[int]
    differences: list[float]
    mean: float
    sd: float | None
    t: float | None
    p: float | None
    wins: int

    def to_dict(self) -> dict:
        return asdict(self)


def paired_difference(row: str, scores: dict[int, float], reference: str,
                      reference_scores: dict[int, float]) -> PairedDifference:
    """Compare ``scores`` (seed -> score of ``row``) with ``reference_scores`` on the seeds both have.

    Raises:
        LearngeneError: when the two rows share no seed.
    """
    from scipy import stats

    seeds = sorted(set(scores) & set(reference_scores))
    if not seeds:
        raise LearngeneError(f"{row} and {reference} share no seed; run both with the same --seeds")
    differences = [float(scores[s]) - float(reference_scores[s]) for s in seeds]
    n = len(differences)
    mean = sum(differences) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1)) if n > 1 else None
    t = p = None
    if sd:  # n >= 2 and not every difference equal (a zero spread has no t)
        t = mean / (sd / math.sqrt(n))
        p = float(2 * stats.t.sf(abs(t), df=n - 1))
    return PairedDifference(row=row, reference=reference, seeds=seeds, differences=differences, mean=mean, sd=sd,
                            t=t, p=p, wins=sum(d > 0 for d in differences))
