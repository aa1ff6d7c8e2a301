"""Lazy public names for a package (PEP 562), so importing one light submodule does not pay for heavy siblings.

``import learngene.descendant.size`` runs ``learngene/descendant/__init__.py`` first; if that file imported its
public names eagerly, sizing a design would import torch and timm. Each package instead lists ``name -> defining
module`` and gets its module ``__getattr__`` from :func:`lazy_getattr`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` that imports ``exports[name]`` on first use and returns its ``name``."""

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
