"""The paper's main table as ``learngene compare`` commands: one per downstream dataset.

DeiT-S ancestor (``deit_small_patch16_224``), 6-layer descendants keeping the ancestor's 6 heads per layer, every
init method, three seeds, and the authors' recipe (method.md step 7): AdamW, weight decay 0.05, base lr 5e-4 x total
batch / 512 (Stanford Cars 5e-3), cosine schedule with 10 warm-up epochs of 500 (iNaturalist-2019: 5 of 100),
RandAugment rand-m9-mstd0.5-inc1, mixup 0.8, CutMix 1.0, label smoothing 0.1, random erasing 0.25, AMP, evaluation
at 256 -> 224 centre crop, best top-1 over epochs. Everything not written here is already the TrainConfig default.

``docs/full_scale.md`` shows these exact lines; a test keeps the two in step and dry-runs every line.
"""

from __future__ import annotations

import shlex

ANCESTOR = "deit_small_patch16_224"
INITS = "cluster-learngene,scratch,heuristic-learngene,auto-learngene,pretrained-prune"

_COMMON = (
    f"learngene compare --ancestor {ANCESTOR} --depth 6 --width-ratio 1 --inits {INITS} --seeds 0,1,2 "
    "--img-size 224 --batch-size 128 --epochs 500 --warmup-epochs 10"
)

# dataset label -> the command (one line each; the order is the paper's table order).
FULL_SCALE_COMMANDS = {
    "CIFAR-100": f"{_COMMON} --dataset cifar100 --out runs/compare/cifar100",
    "CIFAR-10": f"{_COMMON} --dataset cifar10 --out runs/compare/cifar10",
    "Food-101": f"{_COMMON} --dataset food101 --out runs/compare/food101",
    "Flowers-102": f"{_COMMON} --dataset flowers102 --out runs/compare/flowers102",
    "Stanford Cars": f"{_COMMON} --dataset stanford-cars --base-lr 5e-3 --no-download "
                     "--data-root ~/data/stanford-cars --out runs/compare/stanford-cars",
    "CUB-200-2011": f"{_COMMON} --dataset cub200 --data-root ~/data/CUB_200_2011/split --out runs/compare/cub200",
    "iNaturalist-2019": (
        f"{_COMMON.replace('--epochs 500 --warmup-epochs 10', '--epochs 100 --warmup-epochs 5')} "
        "--dataset inaturalist --data-root ~/data/inat2019 --out runs/compare/inaturalist2019"
    ),
}


def full_scale_argv(label: str) -> list[str]:
    """The argument list of one row's command, without the leading ``learngene``."""
    return shlex.split(FULL_SCALE_COMMANDS[label])[1:]
