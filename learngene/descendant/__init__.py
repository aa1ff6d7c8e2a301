"""Descendants: describe one, preview its exact size, build it from the learngene or a baseline, save and load it.

* :class:`DescendantSpec` - depth, heads per layer (width ratio, list or schedule), resolution, classes, method.
* :func:`descendant_size`, :func:`scale_table` - parameters, inherited values, MACs/FLOPs, memory estimate,
  from the ancestor's architecture alone (milliseconds).
* :func:`build_descendant` - a timm VisionTransformer initialised by cluster-learngene or a baseline; with
  ``parity="authors"`` exactly as the authors' code does (:mod:`learngene.descendant.parity`, docs/fidelity.md).
* :func:`save_descendant`, :func:`load_descendant` - ``model.safetensors`` + ``config.json``; loading needs only
  timm and PyTorch.
"""

from learngene.descendant.build import Descendant, build_descendant
from learngene.descendant.io import load_descendant, read_distances, save_descendant
from learngene.descendant.model import create_descendant_model
from learngene.descendant.size import DescendantSize, descendant_size, scale_table
from learngene.descendant.spec import HEAD_ORDERS, INIT_METHODS, PARITY_MODES, SCHEDULES, DescendantSpec

__all__ = [
    "HEAD_ORDERS",
    "INIT_METHODS",
    "PARITY_MODES",
    "SCHEDULES",
    "Descendant",
    "DescendantSize",
    "DescendantSpec",
    "build_descendant",
    "create_descendant_model",
    "descendant_size",
    "load_descendant",
    "read_distances",
    "save_descendant",
    "scale_table",
]
