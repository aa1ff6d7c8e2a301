"""Descendants: describe one, preview its exact size, build it from the learngene or a baseline, save and load it.

* :class:`DescendantSpec` - depth, heads per layer (width ratio, list or schedule), resolution, classes, method.
* :func:`descendant_size`, :func:`scale_table` - parameters, inherited values, MACs/FLOPs, memory estimate,
  from the ancestor's architecture alone (milliseconds).
* :func:`build_descendant` - a timm VisionTransformer initialised by cluster-learngene or a baseline; with
  ``parity="authors"`` exactly as the authors' code does (:mod:`learngene.descendant.parity`, docs/fidelity.md).
* :func:`save_descendant`, :func:`load_descendant` - ``model.safetensors`` + ``config.json``; loading needs only
  timm and PyTorch.

Names are imported lazily (PEP 562): ``import learngene.descendant.size`` (or the spec) runs this file first, and
sizing must not pay for torch and timm, which only building, saving and loading need.
"""

from __future__ import annotations

from learngene.lazy_exports import lazy_getattr

# public name -> module that defines it
_EXPORTS = {
    "HEAD_ORDERS": "learngene.descendant.spec",
    "INIT_METHODS": "learngene.descendant.spec",
    "PARITY_MODES": "learngene.descendant.spec",
    "SCHEDULES": "learngene.descendant.spec",
    "DescendantSpec": "learngene.descendant.spec",
    "DescendantSize": "learngene.descendant.size",
    "descendant_size": "learngene.descendant.size",
    "scale_table": "learngene.descendant.size",
    "Descendant": "learngene.descendant.build",
    "build_descendant": "learngene.descendant.build",
    "create_descendant_model": "learngene.descendant.model",
    "load_descendant": "learngene.descendant.io",
    "read_distances": "learngene.descendant.io",
    "save_descendant": "learngene.descendant.io",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
