"""Initialisation comparisons: train one descendant architecture once per init method and seed with one recipe,
through the run manager, and tabulate best top-1 (mean and std over seeds), sizes and throughput.

* :mod:`learngene.compare.plan` - :class:`ComparisonPlan`, :class:`Variant`, :class:`Job` (pure data).
* :mod:`learngene.compare.execute` - :func:`run_comparison` (build, submit, wait, collect; resumable).
* :mod:`learngene.compare.report` - :func:`aggregate`, :func:`write_results` (``results.json`` / ``results.md``).
* :mod:`learngene.compare.commands` - dry runs and the equivalent ``learngene build`` / ``train`` commands.
* :mod:`learngene.compare.full_scale` - the paper's main-table rows as ``learngene compare`` commands.
"""

from learngene.compare.execute import read_job_records, run_comparison
from learngene.compare.plan import (
    ABLATION_VARIANTS,
    ComparisonPlan,
    Job,
    Variant,
    ablation_variants,
    parse_variant,
)
from learngene.compare.report import aggregate, mean_std, write_results

__all__ = [
    "ABLATION_VARIANTS",
    "ComparisonPlan",
    "Job",
    "Variant",
    "ablation_variants",
    "aggregate",
    "mean_std",
    "parse_variant",
    "read_job_records",
    "run_comparison",
    "write_results",
]
