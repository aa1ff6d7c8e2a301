"""Frozen-feature evaluation of descendant designs before any training (``learngene probe``).

* :mod:`~learngene.evaluation.probe_data` - a fixed stratified subset of a built-in dataset at the model's resolution.
* :mod:`~learngene.evaluation.features` - pooled features (CLS after the final norm) with a per-design disk cache.
* :mod:`~learngene.evaluation.scoring` - linear-probe and k-NN accuracy, and a percentile within a null.
* :mod:`~learngene.evaluation.designs` - the rows (a registry keyed by name) and random head subsets.
* :mod:`~learngene.evaluation.frozen_probe` - one probe table per dataset x width, as JSON.

Not to be confused with :mod:`learngene.probes`, the probe *images* used for attention statistics.
"""
