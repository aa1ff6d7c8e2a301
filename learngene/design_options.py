"""The names of every descendant design option, in one torch-free module.

The descendant spec validates against these, and the training config, the command line and the app offer them;
keeping them here (instead of in :mod:`learngene.descendant.spec`, which imports torch and timm) lets the cheap
config and CLI code import the one source instead of keeping mirrors.
"""

from __future__ import annotations

INIT_METHODS = (
    "cluster-learngene",
    "scratch",
    "heuristic-learngene",
    "auto-learngene",
    "pretrained-prune",
    "ancestor",
    "heuristic-learngene-layers-only",
    "auto-learngene-layers-only",
    "weight-transformation",
)
# The layer-copying baselines. The plain names follow the authors' loader (the copied layers plus the patch
# embedding, class token, position embedding and final norm); the ``-layers-only`` names copy the layers alone, as
# the paper's prose describes them.
LAYER_BASELINES = ("heuristic-learngene", "auto-learngene")
LAYERS_ONLY_BASELINES = ("heuristic-learngene-layers-only", "auto-learngene-layers-only")
# Weight-Transformation (MiniViT's weight multiplexing, the paper's Table 2 baseline): this many consecutive layers
# share one ancestor block's attention and FFN (Mini-DeiT shares 2, halving the distinct blocks of a 12-layer DeiT).
WEIGHT_TRANSFORMATION = "weight-transformation"
DEFAULT_SHARE_LAYERS = 2
# ``none``: this project's reading of the paper. ``authors``: reproduce the authors' code (learngene.descendant.parity).
PARITY_MODES = ("none", "authors")
HEAD_ORDERS = ("priority", "original", "ascending-mad", "descending-mad")
CENTROIDS = ("nearest", "average")
TRANSFORM_INITS = ("default", "identity")
# Width ratio per third. Named after the width ratio: "decreasing" runs w = 2, 1.5, 1 from the first third to the
# last, so the *head count* grows with depth; "increasing" is the reverse. Two rules cut the thirds:
# - "decreasing" / "increasing" (this project): thirds of the *descendant's* depth, so every descendant gets all
#   three widths (6 layers of DeiT-S: [3, 3, 4, 4, 6, 6]);
# - "decreasing-by-index" / "increasing-by-index" (the authors' code): thirds of the *ancestor's* depth by absolute
#   layer index (12 layers: w = 2 for layers 0-3, 1.5 for 4-7, 1 for 8-11), so a 6-layer DeiT-S descendant gets
#   [3, 3, 3, 3, 4, 4].
SCHEDULES = {
    "decreasing": (2.0, 1.5, 1.0),
    "increasing": (1.0, 1.5, 2.0),
    "decreasing-by-index": (2.0, 1.5, 1.0),
    "increasing-by-index": (1.0, 1.5, 2.0),
}
BY_INDEX_SUFFIX = "-by-index"
SCHEDULE_HELP = (
    "decreasing (W = 2, 1.5, 1 over the thirds of the descendant's depth) | increasing (1, 1.5, 2) | "
    "decreasing-by-index / increasing-by-index (the authors' rule: thirds of the ancestor's layer index, "
    "W = 2 for layers 0-3, 1.5 for 4-7, 1 for 8-11)"
)
