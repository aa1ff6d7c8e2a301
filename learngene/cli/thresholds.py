"""The clustering-threshold flags (``--eps``, ``--min-heads``), defined once for every command that clusters heads."""

from __future__ import annotations

import argparse

from learngene.clustering import PAPER_EPS, PAPER_MIN_HEADS


def add_threshold_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--eps", type=float, default=PAPER_EPS,
                        help=f"Eps: clustering radius in pixels of mean attention distance (default {PAPER_EPS:g})")
    parser.add_argument("--min-heads", type=int, default=PAPER_MIN_HEADS,
                        help=f"MinHds: heads a core head needs within Eps, itself included (default {PAPER_MIN_HEADS})")
