"""Settings of a probe run and their defaults; light to import (the command line builds its help from them)."""

from __future__ import annotations

from dataclasses import dataclass

from learngene.clustering import PAPER_EPS, PAPER_MIN_HEADS
from learngene.errors import LearngeneError

# --full: every image, every ratio of the issue, 50 null draws.
FULL_WIDTHS = ("2", "1.5", "0.5", "decreasing")
FULL_NULL_DRAWS = 50
DEFAULT_NULL_DRAWS = 20
DEFAULT_SUBSET = 300
DEFAULT_FOLDS = 5
DEFAULT_K = 5
SCORES = ("linear", "knn")
# Rows of a table by default, in order (names registered in learngene.evaluation.designs.ROWS).
DEFAULT_ROWS = ("ancestor", "cluster-learngene", "authors-slicing", "pretrained-prune", "random-heads",
                "heuristic-learngene", "auto-learngene", "heuristic-layers-only", "auto-layers-only", "scratch")


@dataclass(frozen=True)
class ProbeSettings:
    """Everything that decides a probe result (recorded in its JSON).

    Attributes:
        ancestor: ancestor spec (``builtin``, a timm name, ...).
        datasets: built-in dataset names.
        depth: descendant layers L_d.
        widths: width ratios as text (``"2"``) or schedule names (``"decreasing"``).
        null_draws: random head subsets per width: one number for all widths or one per width.
        subset: images per dataset (stratified, fixed); None for all.
        seed: seed of the builds' random parts, the null draws and the CV folds.
        eps, min_heads: clustering thresholds of the Cluster-Learngene designs (the paper's: 10 px, 1).
        rows: registered row names, in table order.
        folds, k: stratified folds of the linear probe; neighbours of k-NN.
        device, bf16, batch_size: where and how features are extracted (bf16 autocast on CUDA only).
        jobs: processes scoring designs while the next ones' features are extracted (scores are the same).
    """

    ancestor: str = "builtin"
    datasets: tuple[str, ...] = ("digits",)
    depth: int = 6
    widths: tuple[str, ...] = ("2",)
    null_draws: tuple[int, ...] = (DEFAULT_NULL_DRAWS,)
    subset: int | None = DEFAULT_SUBSET
    seed: int = 0
    eps: float = PAPER_EPS
    min_heads: int = PAPER_MIN_HEADS
    rows: tuple[str, ...] = DEFAULT_ROWS
    folds: int = DEFAULT_FOLDS
    k: int = DEFAULT_K
    device: str = "cpu"
    bf16: bool = False
    batch_size: int = 32
    jobs: int = 1

    def draws_for(self, index: int) -> int:
        return self.null_draws[0] if len(self.null_draws) == 1 else self.null_draws[index]

    def check(self) -> list:
        """Validate everything that needs no ancestor; returns the parsed widths. Raises LearngeneError."""
        from learngene.clustering import validate_thresholds
        from learngene.evaluation.designs import check_rows, parse_width
        from learngene.evaluation.probe_data import DATASETS

        if not self.datasets or not self.widths:
            raise LearngeneError("give at least one dataset and one width")
        for name in self.datasets:
            if name not in DATASETS:
                raise LearngeneError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
        widths = [parse_width(w) for w in self.widths]
        if len(self.null_draws) not in (1, len(widths)):
            raise LearngeneError(f"give one --null-draws for all widths or one per width ({len(widths)}), "
                                 f"got {len(self.null_draws)}")
        if any(d < 0 for d in self.null_draws):
            raise LearngeneError("--null-draws must be 0 or more")
        check_rows(self.rows)
        validate_thresholds(self.eps, self.min_heads)
        if self.folds < 2 or self.k < 1 or self.batch_size < 1 or self.jobs < 1:
            raise LearngeneError("--folds must be at least 2, --k, --batch-size and --jobs at least 1")
        if self.subset is not None and self.subset < 2:
            raise LearngeneError(f"--subset must be at least 2 (got {self.subset})")
        return widths
