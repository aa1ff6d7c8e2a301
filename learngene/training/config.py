"""The training configuration: one dataclass holding everything a run needs, its YAML form and its CLI flags.

Defaults follow the paper's downstream recipe (method.md, step 7): AdamW with weight decay 0.05, base lr 5e-4 scaled
by total batch / 512, cosine schedule with linear warm-up, RandAugment rand-m9-mstd0.5-inc1, mixup 0.8, CutMix 1.0,
label smoothing 0.1, random erasing 0.25, AMP.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from learngene.errors import LearngeneError

AMP_CHOICES = ("auto", "bf16", "fp16", "off")
DEVICE_CHOICES = ("auto", "cpu", "cuda")
# Mirrors learngene.descendant.spec.INIT_METHODS (not imported: that module pulls in torch and timm).
INIT_CHOICES = ("cluster-learngene", "scratch", "heuristic-learngene", "auto-learngene", "pretrained-prune", "ancestor")

# Built-in datasets that need no network, and the torchvision / folder-layout datasets of the paper. Kept here (not in
# data.py) so validation stays cheap: importing this module must not import torchvision.
BUILTIN_DATASETS = ("digits", "lfw-faces")
TORCHVISION_DATASETS = ("cifar10", "cifar100", "flowers102", "food101", "stanford-cars")
FOLDER_DATASETS = ("cub200", "inaturalist")
KNOWN_DATASETS = BUILTIN_DATASETS + TORCHVISION_DATASETS + FOLDER_DATASETS


def _off(value: str | None) -> bool:
    return value is None or str(value).strip().lower() in ("", "none", "off", "false", "0")


@dataclass
class TrainConfig:
    """Every setting of one fine-tuning run; the run directory's ``config.yaml`` is exactly ``to_dict()``.

    Exactly one model source is set: ``descendant`` (a directory written by ``learngene build``), ``model`` (a timm
    model name built with random weights, handy for tests and baselines) or ``ancestor`` (build a descendant at
    start from the build options ``init`` ... ``min_heads``).
    """

    # --- model source -------------------------------------------------------------------------------------------
    descendant: str | None = None
    model: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # extra timm.create_model keyword arguments
    ancestor: str | None = None
    init: str = "cluster-learngene"
    depth: int | None = None
    width_ratio: float | None = None
    heads: list[int] | None = None
    schedule: str | None = None  # "decreasing" | "increasing" heads-per-layer schedules of the paper
    stats: str | None = None
    eps: float | None = None
    min_heads: int | None = None
    # the paper's ablation options of a descendant built at start (same meaning as `learngene build`)
    ffn_groups: str = "auto"  # "auto" | "none" | groups like "6-7,9-11"
    head_order: str = "priority"
    centroid: str = "nearest"
    train_transform: bool = False
    transform_init: str = "default"
    drop_path: float = 0.1
    # --- data ---------------------------------------------------------------------------------------------------
    dataset: str = "digits"
    data_root: str | None = None
    download: bool = True
    val_fraction: float = 0.2
    num_classes: int | None = None
    img_size: int = 224
    # --- schedule -----------------------------------------------------------------------------------------------
    epochs: int = 100
    max_steps: int | None = None
    batch_size: int = 64  # per process
    accum_steps: int = 1
    lr: float | None = None
    base_lr: float = 5e-4
    min_lr: float = 1e-5
    warmup_lr: float = 1e-6
    warmup_epochs: float = 5.0
    weight_decay: float = 0.05
    # --- regularisation and augmentation ------------------------------------------------------------------------
    label_smoothing: float = 0.1
    randaugment: str | None = "rand-m9-mstd0.5-inc1"
    mixup: float = 0.8
    cutmix: float = 1.0
    reprob: float = 0.25
    ema: bool = False
    ema_decay: float = 0.99996
    clip_grad: float | None = None
    # --- devices ------------------------------------------------------------------------------------------------
    amp: str = "auto"
    channels_last: bool = True
    compile: bool = False
    device: str = "auto"
    workers: int | None = None  # None: chosen from the device and the CPU count
    deterministic: bool = False
    seed: int = 0
    # --- logging ------------------------------------------------------------------------------------------------
    log_every: int = 10
    eval_every_epochs: int = 1
    save_every_epochs: int = 1

    # ------------------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (YAML- and ``torch.load(weights_only=True)``-safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a mapping; unknown keys are an error so a typo in a YAML file is not silently ignored."""
        if not isinstance(data, dict):
            raise LearngeneError(f"a training config must be a mapping, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise LearngeneError(f"unknown training config key(s): {', '.join(unknown)}")
        return cls(**data)

    def to_yaml(self, path: str | os.PathLike) -> None:
        """Write ``to_dict()`` as YAML (atomically: a half-written config never appears)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        os.replace(tmp, path)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise LearngeneError(f"training config not found: {path}")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise LearngeneError(f"training config {path} is not valid YAML: {error}".replace("\n", " ")) from None
        return cls.from_dict(data or {})

    # ------------------------------------------------------------------------------------------------------------
    @property
    def randaugment_policy(self) -> str | None:
        """The timm RandAugment policy string, or None when switched off."""
        return None if _off(self.randaugment) else str(self.randaugment)

    @property
    def mixup_active(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    def resolved_lr(self, world_size: int = 1) -> float:
        """Peak learning rate: ``lr`` if given, else ``base_lr`` x total batch / 512 (the DeiT linear scaling)."""
        if self.lr is not None:
            return float(self.lr)
        return self.base_lr * self.batch_size * self.accum_steps * world_size / 512.0

    def validate(self) -> TrainConfig:
        """Reject impossible values before anything launches; returns self so calls can be chained.

        Raises:
            LearngeneError: naming the first bad setting and what would be accepted.
        """
        sources = [name for name in ("descendant", "model", "ancestor") if getattr(self, name)]
        if len(sources) != 1:
            raise LearngeneError(
                "set exactly one model source: --descendant DIR, --model TIMM_NAME or --ancestor SPEC"
                + (f" (got {', '.join(sources)})" if sources else "")
            )
        if self.descendant and not Path(self.descendant).is_dir():
            raise LearngeneError(f"descendant directory not found: {self.descendant}")
        if self.model:
            import timm  # deferred: timm imports torchvision, which is slow

            if not timm.is_model(self.model):
                raise LearngeneError(f"unknown timm model {self.model!r} (see timm.list_models())")
        if self.ancestor and self.init not in INIT_CHOICES:
            raise LearngeneError(f"init must be one of {', '.join(INIT_CHOICES)}, got {self.init!r}")
        if self.schedule is not None and self.schedule not in ("decreasing", "increasing"):
            raise LearngeneError(f"schedule must be decreasing or increasing, got {self.schedule!r}")
        if self.ancestor:
            from learngene.descendant.spec import HEAD_ORDERS, TRANSFORM_INITS
            from learngene.ffn_groups import parse_groups

            for name, value, allowed in (("head_order", self.head_order, HEAD_ORDERS),
                                         ("centroid", self.centroid, ("nearest", "average")),
                                         ("transform_init", self.transform_init, TRANSFORM_INITS)):
                if value not in allowed:
                    raise LearngeneError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
            if str(self.ffn_groups) not in ("auto", "none"):
                parse_groups(str(self.ffn_groups))
        if not isinstance(self.model_kwargs, dict):
            raise LearngeneError("model_kwargs must be a mapping of timm.create_model keyword arguments")

        ds = str(self.dataset or "").strip()
        if not ds:
            raise LearngeneError("no dataset given (--dataset NAME or FOLDER)")
        if ds.lower() not in KNOWN_DATASETS and not Path(ds).expanduser().is_dir():
            raise LearngeneError(
                f"unknown dataset {ds!r}: not a folder and not one of {', '.join(KNOWN_DATASETS)}"
            )
        if ds.lower() in FOLDER_DATASETS and not (self.data_root and Path(self.data_root).is_dir()):
            raise LearngeneError(f"dataset {ds} needs --data-root pointing at its image folder")

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise LearngeneError(message)

        need(0.0 < self.val_fraction < 1.0, f"val_fraction must be in (0, 1), got {self.val_fraction}")
        need(self.num_classes is None or self.num_classes >= 2, f"num_classes must be >= 2, got {self.num_classes}")
        need(self.img_size >= 8, f"img_size must be at least 8 pixels, got {self.img_size}")
        need(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        need(self.max_steps is None or self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(self.accum_steps >= 1, f"accum_steps must be >= 1, got {self.accum_steps}")
        need(
            not self.mixup_active or self.batch_size % 2 == 0,
            f"mixup/CutMix need an even batch size, got {self.batch_size} (or pass --mixup 0 --cutmix 0)",
        )
        need(self.lr is None or self.lr > 0, f"lr must be positive, got {self.lr}")
        need(self.base_lr > 0, f"base_lr must be positive, got {self.base_lr}")
        need(self.min_lr >= 0 and self.warmup_lr >= 0, "min_lr and warmup_lr must be >= 0")
        need(self.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need(0.0 <= self.label_smoothing < 1.0, f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        need(self.mixup >= 0 and self.cutmix >= 0, "mixup and cutmix alphas must be >= 0")
        need(0.0 <= self.reprob <= 1.0, f"reprob must be in [0, 1], got {self.reprob}")
        need(0.0 <= self.drop_path < 1.0, f"drop_path must be in [0, 1), got {self.drop_path}")
        need(0.0 < self.ema_decay < 1.0, f"ema_decay must be in (0, 1), got {self.ema_decay}")
        need(self.clip_grad is None or self.clip_grad > 0, f"clip_grad must be positive, got {self.clip_grad}")
        need(self.amp in AMP_CHOICES, f"amp must be one of {', '.join(AMP_CHOICES)}, got {self.amp!r}")
        need(self.device in DEVICE_CHOICES, f"device must be one of {', '.join(DEVICE_CHOICES)}, got {self.device!r}")
        need(self.workers is None or self.workers >= 0, f"workers must be >= 0, got {self.workers}")
        need(self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}")
        need(self.eval_every_epochs >= 1, f"eval_every_epochs must be >= 1, got {self.eval_every_epochs}")
        need(self.save_every_epochs >= 1, f"save_every_epochs must be >= 1, got {self.save_every_epochs}")
        if self.randaugment_policy is not None and not self.randaugment_policy.startswith("rand-"):
            raise LearngeneError(f"randaugment must look like 'rand-m9-mstd0.5-inc1' or 'none', got {self.randaugment!r}")
        return self


# ---------------------------------------------------------------------------------------------------------------------
# Command-line flags
# ---------------------------------------------------------------------------------------------------------------------
def _optional_float(text: str) -> float | None:
    return None if _off(text) else float(text)


def _optional_int(text: str) -> int | None:
    # "0" is a real value here (--workers 0 = load in the main process), so only words mean "unset".
    return None if str(text).strip().lower() in ("", "none", "auto", "off") else int(text)


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers, got {text!r}") from None


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add one flag per :class:`TrainConfig` field (defaults None so ``config_from_args`` can layer them).

    ``--config FILE`` loads a YAML config first; explicit flags override it; unspecified flags keep the dataclass
    defaults.
    """
    d = TrainConfig()
    parser = _SuppressDefaults(parser)
    g = parser.add_argument_group("model")
    g.add_argument("--config", help="YAML config to start from (flags override it)")
    g.add_argument("--descendant", help="descendant directory written by `learngene build`")
    g.add_argument("--model", help="timm model name built with random weights (e.g. vit_tiny_patch16_224)")
    g.add_argument("--model-arg", dest="model_kwargs", action="append", type=_key_value, metavar="KEY=VALUE",
                   help="extra timm.create_model argument, repeatable (e.g. depth=2)")
    g.add_argument("--ancestor", help="build a descendant from this ancestor at start")
    g.add_argument("--init", choices=INIT_CHOICES, help=f"descendant initialisation (default {d.init})")
    g.add_argument("--depth", type=int, help="descendant layers")
    g.add_argument("--width-ratio", type=float, help="heads per layer = ancestor heads / ratio")
    g.add_argument("--heads", type=_int_list, help="per-layer head counts, e.g. 6,6,4,4")
    g.add_argument("--schedule", choices=("decreasing", "increasing"), help="heads-per-layer schedule")
    g.add_argument("--stats", help="head statistics file to cluster from")
    g.add_argument("--eps", type=float, help="clustering Eps in pixels")
    g.add_argument("--min-heads", type=int, help="clustering MinHds")
    g.add_argument("--ffn-groups", help="FFN groups sharing a centroid: auto (default) | none | e.g. 6-7,9-11")
    g.add_argument("--head-order", help="priority (default) | original | ascending-mad | descending-mad")
    g.add_argument("--centroid", help="nearest (default) | average")
    g.add_argument("--train-transform", action=argparse.BooleanOptionalAction,
                   help="keep the FFN transformation T in the graph and train it")
    g.add_argument("--transform-init", help="T's initialisation: default (the authors') | identity")
    g.add_argument("--drop-path", type=float, help=f"stochastic depth rate (default {d.drop_path})")

    g = parser.add_argument_group("data")
    g.add_argument("--dataset", help=f"one of {', '.join(KNOWN_DATASETS)} or an image folder (default {d.dataset})")
    g.add_argument("--data-root", help="where torchvision datasets live or are downloaded to")
    g.add_argument("--no-download", dest="download", action="store_false",
                   help="never download a torchvision dataset")
    g.add_argument("--val-fraction", type=float, help=f"validation share of a single folder (default {d.val_fraction})")
    g.add_argument("--num-classes", type=int, help="expected number of classes (default: from the data)")
    g.add_argument("--img-size", type=int, help=f"input resolution (default {d.img_size})")

    g = parser.add_argument_group("schedule")
    g.add_argument("--epochs", type=int, help=f"default {d.epochs}")
    g.add_argument("--max-steps", type=_optional_int, help="stop after this many optimizer steps")
    g.add_argument("--batch-size", type=int, help=f"per-process batch (default {d.batch_size})")
    g.add_argument("--accum-steps", type=int, help="gradient accumulation steps")
    g.add_argument("--lr", type=_optional_float, help="peak lr (default: base-lr x total batch / 512)")
    g.add_argument("--base-lr", type=float, help=f"default {d.base_lr}")
    g.add_argument("--min-lr", type=float, help=f"final cosine lr (default {d.min_lr})")
    g.add_argument("--warmup-lr", type=float, help=f"lr at step 0 (default {d.warmup_lr})")
    g.add_argument("--warmup-epochs", type=float, help=f"default {d.warmup_epochs}")
    g.add_argument("--weight-decay", type=float, help=f"default {d.weight_decay}")

    g = parser.add_argument_group("regularisation")
    g.add_argument("--label-smoothing", type=float, help=f"default {d.label_smoothing}")
    g.add_argument("--randaugment", help=f"timm policy or 'none' (default {d.randaugment})")
    g.add_argument("--mixup", type=float, help=f"mixup alpha, 0 = off (default {d.mixup})")
    g.add_argument("--cutmix", type=float, help=f"CutMix alpha, 0 = off (default {d.cutmix})")
    g.add_argument("--reprob", type=float, help=f"random erasing probability (default {d.reprob})")
    g.add_argument("--ema", action=argparse.BooleanOptionalAction, help="keep an EMA of the weights")
    g.add_argument("--ema-decay", type=float, help=f"default {d.ema_decay}")
    g.add_argument("--clip-grad", type=_optional_float, help="max gradient norm (default: no clipping)")

    g = parser.add_argument_group("devices")
    g.add_argument("--amp", choices=AMP_CHOICES, help="mixed precision (auto: bf16 where supported on CUDA)")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction)
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, help="torch.compile the model")
    g.add_argument("--device", choices=DEVICE_CHOICES)
    g.add_argument("--workers", type=_optional_int, help="data-loading workers per process")
    g.add_argument("--deterministic", action=argparse.BooleanOptionalAction)
    g.add_argument("--seed", type=int)

    g = parser.add_argument_group("logging")
    g.add_argument("--log-every", type=int, help=f"optimizer steps between train lines (default {d.log_every})")
    g.add_argument("--eval-every-epochs", type=int)
    g.add_argument("--save-every-epochs", type=int)
    return parser.parser


class _SuppressDefaults:
    """Wraps a parser so every added flag defaults to ``argparse.SUPPRESS`` (absent flags leave no attribute)."""

    def __init__(self, parser: argparse.ArgumentParser | Any) -> None:
        self.parser = parser

    def add_argument_group(self, *args: Any, **kwargs: Any) -> _SuppressDefaults:
        return _SuppressDefaults(self.parser.add_argument_group(*args, **kwargs))

    def add_argument(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["default"] = argparse.SUPPRESS
        return self.parser.add_argument(*args, **kwargs)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Layer dataclass defaults < ``--config`` YAML < explicit flags, then validate.

    Flags added by :func:`add_train_arguments` default to ``argparse.SUPPRESS``, so an attribute is present on
    ``args`` only when the user gave the flag; that is what lets an explicit ``--lr none`` override a YAML value.

    Raises:
        LearngeneError: for an unreadable config file or a bad value.
    """
    config_path = getattr(args, "config", None)
    data = TrainConfig.from_yaml(config_path).to_dict() if config_path else TrainConfig().to_dict()
    for name in list(data):
        if not hasattr(args, name):
            continue
        value = getattr(args, name)
        if name == "model_kwargs":
            value = {**data["model_kwargs"], **dict(value or [])}
        data[name] = value
    return TrainConfig.from_dict(data).validate()
