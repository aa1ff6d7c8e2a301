"""The paper's main table (Table 2) as ``learngene compare`` commands: one per (method, dataset) cell.

DeiT-S ancestor (``deit_small_patch16_224``), three seeds, and the authors' downstream recipe (method.md step 7):
AdamW, weight decay 0.05, base lr 5e-4 x total batch / 512 (Stanford Cars 5e-3), cosine schedule with 10 warm-up
epochs of 500 (iNaturalist-2019: 5 of 100), RandAugment rand-m9-mstd0.5-inc1, mixup 0.8, CutMix 1.0, label smoothing
0.1, random erasing 0.25, AMP, evaluation at 256 -> 224 centre crop, best top-1 over epochs, and **drop path 0** (their
code has no flag for it). Everything not written here is already the TrainConfig default.

The authors' numbers are the target, so every method is set up as their code runs it (docs/fidelity.md):
Cluster-Learngene with ``parity=authors`` (their S_l lists and FFN groups, their qkv/W_O handling) on 6-layer,
6-head descendants; Heuristic- and Auto-Learngene with their loader's semantics (embeddings inherited) on 12-layer
models, as their code builds them; From-Scratch on the 6-layer descendant; Pretraining-Finetuning on the whole
ancestor; Weight-Transformation (MiniViT's weight multiplexing, ``learngene.descendant.multiplexed``) as Mini-DeiT
builds it: 12 layers sharing blocks in pairs, so 6 distinct blocks are stored, like the 6-layer rows. The authors'
code never builds it from an ancestor, so there is no parity form of this row (docs/fidelity.md).

``docs/full_scale.md`` shows these exact lines; a test keeps the two in step and dry-runs every line.
"""

from __future__ import annotations

import shlex

ANCESTOR = "deit_small_patch16_224"

# The paper's Table 2 rows: method label -> (key used in paths, compare arguments that choose the row).
METHODS = {
    "Pretraining-Finetuning": ("pretraining-finetuning", "--depth 12 --width-ratio 1 --inits ancestor"),
    "From-Scratch": ("from-scratch", "--depth 6 --width-ratio 1 --inits scratch"),
    "Heuristic-Learngene": ("heuristic-learngene", "--depth 12 --width-ratio 1 --inits heuristic-learngene"),
    "Auto-Learngene": ("auto-learngene", "--depth 12 --width-ratio 1 --inits auto-learngene"),
    "Cluster-Learngene": ("cluster-learngene", "--depth 6 --width-ratio 1 --inits '' "
                                               "--variant cluster-learngene-authors:parity=authors"),
    "Weight-Transformation": ("weight-transformation", "--depth 12 --width-ratio 1 --inits weight-transformation"),
}
# Rows of Table 2 without a command (and why), shown in docs/full_scale.md: none left.
METHODS_WITHOUT_COMMAND: dict[str, str] = {}

_RECIPE = "--seeds 0,1,2 --img-size 224 --batch-size 128 --drop-path 0"
_LONG = "--epochs 500 --warmup-epochs 10"
# The paper's Table 2 columns: dataset label -> (key used in paths, compare arguments for the dataset).
DATASETS = {
    "CIFAR-100": ("cifar100", f"{_LONG} --dataset cifar100"),
    "CIFAR-10": ("cifar10", f"{_LONG} --dataset cifar10"),
    "Food-101": ("food101", f"{_LONG} --dataset food101"),
    "Flowers-102": ("flowers102", f"{_LONG} --dataset flowers102"),
    "Stanford Cars": ("stanford-cars", f"{_LONG} --dataset stanford-cars --base-lr 5e-3 --no-download "
                                       "--data-root ~/data/stanford-cars"),
    "CUB-200-2011": ("cub200", f"{_LONG} --dataset cub200 --data-root ~/data/CUB_200_2011/split"),
    "iNaturalist-2019": ("inaturalist2019", "--epochs 100 --warmup-epochs 5 --dataset inaturalist "
                                            "--data-root ~/data/inat2019"),
}


def _command(method: str, dataset: str) -> str:
    method_key, method_args = METHODS[method]
    dataset_key, dataset_args = DATASETS[dataset]
    return (f"learngene compare --ancestor {ANCESTOR} {method_args} {_RECIPE} {dataset_args} "
            f"--out runs/table2/{dataset_key}/{method_key}")


# (method, dataset) -> the command (one line each), in the table's order: methods, then datasets.
FULL_SCALE_COMMANDS = {(method, dataset): _command(method, dataset) for method in METHODS for dataset in DATASETS}


def full_scale_argv(method: str, dataset: str) -> list[str]:
    """The argument list of one cell's command, without the leading ``learngene``."""
    return shlex.split(FULL_SCALE_COMMANDS[(method, dataset)])[1:]
