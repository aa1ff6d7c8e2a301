"""learngene: Cluster-Learngene for Vision Transformers, as a library, a command line and an app backend.

The public API is imported lazily so that ``import learngene`` stays cheap (the CLI and the app import only what
they use).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "LearngeneError": "learngene.errors",
    "Ancestor": "learngene.ancestors",
    "AncestorSummary": "learngene.ancestors",
    "load_ancestor": "learngene.ancestors",
    "ProbeSet": "learngene.probes",
    "load_probe_images": "learngene.probes",
    "mean_attention_distance": "learngene.attention.distance",
    "HeadStatistics": "learngene.attention.statistics",
    "compute_head_statistics": "learngene.attention.statistics",
    "attention_maps": "learngene.attention.statistics",
    "head_similarity": "learngene.attention.similarity",
    "HeadClustering": "learngene.clustering",
    "LayerClusters": "learngene.clustering",
    "cluster_layers": "learngene.clustering",
    "propose_groups": "learngene.ffn_groups",
    "Learngene": "learngene.extraction",
    "extract_learngene": "learngene.extraction",
    "save_learngene": "learngene.extraction",
    "load_learngene": "learngene.extraction",
    "DescendantSpec": "learngene.descendant",
    "descendant_size": "learngene.descendant",
    "scale_table": "learngene.descendant",
    "build_descendant": "learngene.descendant",
    "save_descendant": "learngene.descendant",
    "load_descendant": "learngene.descendant",
    "TrainConfig": "learngene.training",
    "RunManager": "learngene.runs",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'learngene' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
