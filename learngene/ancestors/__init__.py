"""Ancestor ViTs: the built-in offline model, timm hub models, local weights files, random models.

Names are imported lazily (PEP 562) so that ``from learngene.ancestors import AncestorSummary`` stays torch-free;
loading an ancestor imports torch and timm.
"""

from __future__ import annotations

from learngene.lazy_exports import lazy_getattr

# public name -> module that defines it
_EXPORTS = {
    "AncestorSummary": "learngene.ancestors.summary",
    "Ancestor": "learngene.ancestors.loading",
    "load_ancestor": "learngene.ancestors.loading",
    "parse_spec": "learngene.ancestors.summary",
    "summarize": "learngene.ancestors.loading",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
