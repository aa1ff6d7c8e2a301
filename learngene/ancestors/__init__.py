"""Ancestor ViTs: the built-in offline model, timm hub models, local weights files, random models."""

from learngene.ancestors.loading import Ancestor, AncestorSummary, load_ancestor, parse_spec, summarize

__all__ = ["Ancestor", "AncestorSummary", "load_ancestor", "parse_spec", "summarize"]
