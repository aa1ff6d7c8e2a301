"""The training configuration: one dataclass holding everything a run needs, its YAML form and its CLI flags.

Defaults follow the paper's downstream recipe (method.md, step 7): AdamW with weight decay 0.05, base lr 5e-4 scaled
by total batch / 512, cosine schedule with linear warm-up, RandAugment rand-m9-mstd0.5-inc1, mixup 0.8, CutMix 1.0,
label smoothing 0.1, random erasing 0.25, AMP.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from learngene import design_options
from learngene.errors import LearngeneError

AMP_CHOICES = ("auto", "bf16", "fp16", "off")
DEVICE_CHOICES = ("auto", "cpu", "cuda")
# pil: decode and augment in loader workers; cached: decode once into a memory-mapped cache and augment batched on
# the device; auto: cached on a GPU when the decoded set fits in memory, else pil (learngene.training.data).
DATA_PIPELINE_CHOICES = ("auto", "pil", "cached")
# The descendant design options come from their one torch-free source.
INIT_CHOICES = design_options.INIT_METHODS
HEAD_ORDER_CHOICES = design_options.HEAD_ORDERS
CENTROID_CHOICES = design_options.CENTROIDS
TRANSFORM_INIT_CHOICES = design_options.TRANSFORM_INITS
SCHEDULE_CHOICES = tuple(design_options.SCHEDULES)
PARITY_CHOICES = design_options.PARITY_MODES

# Built-in datasets that need no network, and the torchvision / folder-layout datasets of the paper. Kept here (not in
# data.py) so validation stays cheap: importing this module must not import torchvision.
BUILTIN_DATASETS = ("digits", "lfw-faces")
# flowers102 trains on the `train` split alone (1,020 images), as the authors do; flowers102-trainval adds `val`.
TORCHVISION_DATASETS = ("cifar10", "cifar100", "flowers102", "flowers102-trainval", "food101", "stanford-cars")
FOLDER_DATASETS = ("cub200", "inaturalist")
KNOWN_DATASETS = BUILTIN_DATASETS + TORCHVISION_DATASETS + FOLDER_DATASETS

# Flag groups, in the order `learngene train --help` shows them.
MODEL, BUILD, DATA, SCHEDULE, REGULARISATION, DEVICES, LOGGING = (
    "model", "descendant built at start (with --ancestor)", "data", "schedule", "regularisation", "devices",
    "logging",
)
# Setting.path rules: a path made absolute at submission, or a name that may be a local path.
PATH, EXISTING_PATH_OR_NAME = "path", "path-if-it-exists"
# Words that mean "unset" for an optional number or list on the command line and in YAML (0 is a real value).
NONE_WORDS = ("none", "auto", "off", "")
# timm.create_model arguments that build_model sets from a setting of its own: a --model-arg may not set them too.
RESERVED_MODEL_ARGS = {"img_size": "img_size", "num_classes": "num_classes", "drop_path_rate": "drop_path",
                       "pretrained": None}


def _off(value: str | None) -> bool:
    return value is None or str(value).strip().lower() in ("", "none", "off", "false", "0")


@dataclass(frozen=True)
class Setting:
    """How one :class:`TrainConfig` field appears on the command line and in the app's forms.

    Attributes:
        group: Flag group (:data:`MODEL` ... :data:`LOGGING`); the app lays out its forms by group too.
        help: One-line help (the default is appended where there is one).
        flag: The flag, default ``--field-name``.
        choices: The accepted values of a text field.
        label: Label of the app's widget, default the field name.
        path: :data:`PATH` for a file or folder (made absolute at submission), :data:`EXISTING_PATH_OR_NAME` for
            a name that may also be a local path (made absolute only when that path exists).
    """

    group: str
    help: str = ""
    flag: str | None = None
    choices: tuple[str, ...] | None = None
    label: str | None = None
    path: str | None = None


def setting(default: Any = dataclasses.MISSING, *, group: str, help: str = "", flag: str | None = None,
            choices: tuple[str, ...] | None = None, label: str | None = None, path: str | None = None,
            factory: Any = None) -> Any:
    """A dataclass field carrying its :class:`Setting` (what the flags, the renderer and the forms read)."""
    metadata = {"setting": Setting(group, help, flag, choices, label, path)}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Every setting of one fine-tuning run; the run directory's ``config.yaml`` is exactly ``to_dict()``.

    Exactly one model source is set: ``descendant`` (a directory written by ``learngene build``), ``model`` (a timm
    model name built with random weights, handy for tests and baselines) or ``ancestor`` (build a descendant at
    start from the build options ``init`` ... ``min_heads``).

    Each field's type annotation and :class:`Setting` are the single source of its CLI flag
    (:func:`add_train_arguments`), its rendering (:func:`config_to_argv`), its type check (:meth:`from_dict`) and
    its widget in the app.
    """

    # --- model source -------------------------------------------------------------------------------------------
    descendant: str | None = setting(None, group=MODEL, path=PATH,
                                     help="descendant directory written by `learngene build`")
    model: str | None = setting(None, group=MODEL,
                                help="timm model name built with random weights (e.g. vit_tiny_patch16_224)")
    model_kwargs: dict[str, Any] = setting(group=MODEL, factory=dict, flag="--model-arg",
                                           help="extra timm.create_model argument, repeatable (e.g. depth=2)")
    ancestor: str | None = setting(None, group=MODEL, path=EXISTING_PATH_OR_NAME,
                                   help="build a descendant from this ancestor at start (builtin, random:NAME, "
                                   "a hub name or PATH@ARCH)")
    init: str = setting("cluster-learngene", group=BUILD, choices=INIT_CHOICES, help="descendant initialisation")
    depth: int | None = setting(None, group=BUILD, help="descendant layers")
    width_ratio: float | None = setting(None, group=BUILD, help="heads per layer = ancestor heads / ratio")
    heads: list[int] | None = setting(None, group=BUILD, help="per-layer head counts, e.g. 6,6,4,4")
    schedule: str | None = setting(None, group=BUILD, choices=SCHEDULE_CHOICES,
                                   help="heads-per-layer schedule: " + design_options.SCHEDULE_HELP)
    stats: str | None = setting(None, group=BUILD, path=PATH, help="head statistics file to cluster from")
    eps: float | None = setting(None, group=BUILD, help="clustering Eps in pixels (none: 10)")
    min_heads: int | None = setting(None, group=BUILD, help="clustering MinHds (none: 1)")
    # the paper's ablation options of a descendant built at start (same meaning as `learngene build`)
    ffn_groups: str = setting("auto", group=BUILD, help="FFN groups sharing a centroid: auto | none | e.g. 6-7,9-11")
    head_order: str = setting("priority", group=BUILD, choices=HEAD_ORDER_CHOICES, help="order of inherited heads")
    centroid: str = setting("nearest", group=BUILD, choices=CENTROID_CHOICES, help="cluster centroid")
    train_transform: bool = setting(False, group=BUILD, help="keep the FFN transformation T in the graph and train it")
    transform_init: str = setting("default", group=BUILD, choices=TRANSFORM_INIT_CHOICES,
                                  help="T's initialisation (default: the authors')")
    parity: str = setting("none", group=BUILD, choices=PARITY_CHOICES,
                          help="authors: reproduce the authors' code (their S_l lists, FFN groups, qkv chunks without "
                          "bias, W_O columns; DeiT-Ti/S/B ancestors only); see docs/fidelity.md")
    # The authors' code never sets drop path (0); timm's DeiT recipe uses 0.1. Fidelity first: 0 by default.
    drop_path: float = setting(0.0, group=REGULARISATION, help="stochastic depth rate of the last block", label="Drop path")
    # --- data ---------------------------------------------------------------------------------------------------
    dataset: str = setting("digits", group=DATA, path=EXISTING_PATH_OR_NAME,
                           help=f"one of {', '.join(KNOWN_DATASETS)} or an image folder")
    data_root: str | None = setting(None, group=DATA, path=PATH,
                                    help="where torchvision datasets live or are downloaded to")
    download: bool = setting(True, group=DATA, help="download a missing torchvision dataset")
    val_fraction: float = setting(0.2, group=DATA, help="validation share of a single folder")
    num_classes: int | None = setting(None, group=DATA, help="expected number of classes (none: from the data)")
    img_size: int = setting(224, group=DATA, help="input resolution", label="Resolution (px)")
    data_pipeline: str = setting("auto", group=DATA, choices=DATA_PIPELINE_CHOICES,
                                 help="pil (loader workers) | cached (decoded once, augmented on the device) | auto "
                                 "(cached on a GPU when the set fits in memory)")
    # --- schedule -----------------------------------------------------------------------------------------------
    epochs: int = setting(100, group=SCHEDULE, help="passes over the training set", label="Epochs")
    max_steps: int | None = setting(None, group=SCHEDULE, help="stop after this many optimizer steps")
    batch_size: int = setting(64, group=SCHEDULE, help="per-process batch", label="Batch size (per process)")
    accum_steps: int = setting(1, group=SCHEDULE, help="gradient accumulation steps")
    lr: float | None = setting(None, group=SCHEDULE, help="peak lr (none: base-lr x total batch / 512)")
    base_lr: float = setting(5e-4, group=SCHEDULE, help="lr per 512 images of total batch",
                             label="Base lr (x batch / 512)")
    min_lr: float = setting(1e-5, group=SCHEDULE, help="final cosine lr")
    warmup_lr: float = setting(1e-6, group=SCHEDULE, help="lr at step 0")
    warmup_epochs: float = setting(5.0, group=SCHEDULE, help="linear warm-up length", label="Warm-up epochs")
    weight_decay: float = setting(0.05, group=SCHEDULE, help="AdamW weight decay", label="Weight decay")
    # --- regularisation and augmentation ------------------------------------------------------------------------
    label_smoothing: float = setting(0.1, group=REGULARISATION, help="label smoothing", label="Label smoothing")
    randaugment: str | None = setting("rand-m9-mstd0.5-inc1", group=REGULARISATION, help="timm policy or none",
                                      label="RandAugment")
    mixup: float = setting(0.8, group=REGULARISATION, help="mixup alpha, 0 = off", label="Mixup alpha")
    cutmix: float = setting(1.0, group=REGULARISATION, help="CutMix alpha, 0 = off", label="CutMix alpha")
    reprob: float = setting(0.25, group=REGULARISATION, help="random erasing probability", label="Random erasing")
    ema: bool = setting(False, group=REGULARISATION, help="keep an EMA of the weights")
    ema_decay: float = setting(0.99996, group=REGULARISATION, help="EMA decay per step")
    clip_grad: float | None = setting(None, group=REGULARISATION, help="max gradient norm (none: no clipping)")
    # --- devices ------------------------------------------------------------------------------------------------
    amp: str = setting("auto", group=DEVICES, choices=AMP_CHOICES,
                       help="mixed precision (auto: bf16 where supported on CUDA)", label="AMP")
    channels_last: bool = setting(True, group=DEVICES, help="channels-last memory format")
    compile: bool = setting(False, group=DEVICES, help="torch.compile the model")
    device: str = setting("auto", group=DEVICES, choices=DEVICE_CHOICES, help="where to train", label="Device")
    workers: int | None = setting(None, group=DEVICES,
                                  help="data-loading workers per process (none: from the device and CPU count)")
    deterministic: bool = setting(False, group=DEVICES, help="deterministic algorithms (slower)")
    seed: int = setting(0, group=DEVICES, help="random seed", label="Seed")
    # --- logging ------------------------------------------------------------------------------------------------
    log_every: int = setting(10, group=LOGGING, help="optimizer steps between train lines")
    eval_every_epochs: int = setting(1, group=LOGGING, help="epochs between evaluations")
    save_every_epochs: int = setting(1, group=LOGGING, help="epochs between checkpoints")

    def __post_init__(self) -> None:
        # Harmless normalisation only (type errors are reported by from_dict and validate, in one line): the word
        # "none" is the unset value of an optional field, a Path is stored as text, and an integer is a valid float.
        for f in dataclasses.fields(self):
            kind = field_kind(f.name)
            value = getattr(self, f.name)
            if kind.optional and isinstance(value, str) and value.strip().lower() == "none":
                setattr(self, f.name, None)
            elif kind.base is str and isinstance(value, os.PathLike):
                setattr(self, f.name, os.fspath(value))
            elif kind.base is float and isinstance(value, int) and not isinstance(value, bool):
                setattr(self, f.name, float(value))

    # ------------------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (YAML- and ``torch.load(weights_only=True)``-safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a mapping, checking each value against its field's type.

        Unknown keys are an error so a typo in a YAML file is not silently ignored; a value of the wrong type
        (``epochs: abc``, ``batch_size: 1.5``, ``ema: maybe``) gets one line naming the field and the type wanted.
        Integers are accepted where a float is expected, ``none`` wherever the field is optional, and a
        comma-separated string for a list (as on the command line).

        Raises:
            LearngeneError: for an unknown key or a value of the wrong type.
        """
        if not isinstance(data, dict):
            raise LearngeneError(f"a training config must be a mapping, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise LearngeneError(f"unknown training config key(s): {', '.join(map(str, unknown))}")
        return cls(**{name: checked_value(name, value) for name, value in data.items()})

    def to_yaml(self, path: str | os.PathLike) -> None:
        """Write ``to_dict()`` as YAML (atomically: a half-written config never appears)."""
        from learngene.atomic import write_text_atomic

        write_text_atomic(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

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

    def descendant_spec(self, num_classes: int | None = None):
        """The :class:`~learngene.descendant.DescendantSpec` of the descendant built at start from ``ancestor``
        (``num_classes`` None: the data's, unknown until it is read)."""
        from learngene.descendant.spec import DescendantSpec

        return DescendantSpec(depth=self.depth, width_ratio=self.width_ratio,
                              heads=tuple(self.heads) if self.heads else None, schedule=self.schedule,
                              img_size=self.img_size, num_classes=num_classes, init=self.init, seed=self.seed,
                              ffn_groups=str(self.ffn_groups), head_order=self.head_order, centroid=self.centroid,
                              train_transform=self.train_transform, transform_init=self.transform_init,
                              parity=self.parity)  # fmt: skip

    def _check_descendant_design(self) -> None:
        """What the worker would refuse when it builds the descendant, refused before a run exists: the design
        against the ancestor's architecture (no weights read), the clustering thresholds and the statistics file."""
        from learngene.attention.stats_file import read_stats_file
        from learngene.clustering import PAPER_EPS, PAPER_MIN_HEADS, validate_thresholds
        from learngene.descendant.arch import summary_without_weights

        self.descendant_spec(self.num_classes).resolve(summary_without_weights(self.ancestor))
        validate_thresholds(PAPER_EPS if self.eps is None else self.eps,
                            PAPER_MIN_HEADS if self.min_heads is None else self.min_heads)  # fmt: skip
        if self.stats and self.init == "cluster-learngene":
            read_stats_file(self.stats)

    def _check_saved_descendant(self) -> None:
        """A ``--descendant`` folder must hold a descendant (config.json and readable weights) whose patch size
        divides ``img_size``; otherwise the worker fails after the run was queued, or silently crops the image."""
        from safetensors import SafetensorError, safe_open

        from learngene.descendant.arch import summary_without_weights
        from learngene.descendant.config import DescendantConfig
        from learngene.output_dir import DESCENDANT_WEIGHTS

        saved = DescendantConfig.load(self.descendant)
        weights = Path(self.descendant) / DESCENDANT_WEIGHTS
        if not weights.is_file():
            raise LearngeneError(f"{self.descendant} is not a saved descendant (no {DESCENDANT_WEIGHTS}); build it again")
        try:
            with safe_open(str(weights), framework="numpy"):
                pass  # the header only: a truncated or foreign file fails here
        except (SafetensorError, OSError) as error:
            raise LearngeneError(f"the descendant in {self.descendant} is corrupt ({error}); build it again") from None
        patch = summary_without_weights(f"random:{saved.timm.arch}").patch_size
        if self.img_size % patch:
            raise LearngeneError(
                f"the image size must be a positive multiple of the descendant's patch size {patch} (got "
                f"{self.img_size}); e.g. --img-size {max(patch, self.img_size // patch * patch)}"
            )

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

    def resolved(self, base: str | os.PathLike | None = None) -> TrainConfig:
        """A copy whose paths are absolute, relative to ``base`` (default: the current directory).

        The worker runs inside its run directory, so a relative ``--descendant desc/`` would not be found there.
        Fields whose :class:`Setting` has ``path`` set are resolved: ``descendant``, ``stats`` and ``data_root``
        always; ``dataset`` when it is not a known name and names an existing folder; ``ancestor`` when it is
        ``PATH`` or ``PATH@ARCH`` of an existing file (``builtin``, ``random:NAME`` and hub names are left alone).
        Idempotent.
        """
        base_dir = Path(base) if base is not None else Path.cwd()
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            rule, value = f.metadata["setting"].path, getattr(self, f.name)
            if not rule or not isinstance(value, str) or not value.strip():
                continue
            path_part, at, suffix = value, "", ""
            if rule == EXISTING_PATH_OR_NAME:
                if value.strip().lower() in KNOWN_DATASETS or value == "builtin" or ":" in value:
                    continue  # a dataset name, the built-in ancestor, random:NAME or hf-hub:NAME
                if "@" in value:
                    path_part, at, suffix = value.rpartition("@")  # PATH@ARCH
                if not path_part or not (base_dir / Path(path_part).expanduser()).exists():
                    continue  # a hub name (or a missing path, reported as typed)
            changes[f.name] = os.path.abspath(base_dir / Path(path_part).expanduser()) + at + suffix
        return dataclasses.replace(self, **changes) if changes else self

    def validate(self, *, descendant_exists: bool = True) -> TrainConfig:
        """Reject impossible values before anything launches; returns self so calls can be chained.

        Args:
            descendant_exists: False when ``descendant`` is a folder that will be built later (a comparison's dry
                run): it is then not looked at.

        Raises:
            LearngeneError: naming the first bad setting and what would be accepted.
        """
        for f in dataclasses.fields(self):
            checked_value(f.name, getattr(self, f.name))
        sources = [name for name in ("descendant", "model", "ancestor") if getattr(self, name)]
        if len(sources) != 1:
            raise LearngeneError(
                "set exactly one model source: --descendant DIR, --model TIMM_NAME or --ancestor SPEC"
                + (f" (got {', '.join(sources)})" if sources else "")
            )
        if self.descendant and descendant_exists:
            if Path(self.descendant).is_file():
                raise LearngeneError(f"--descendant {self.descendant} is a file; give the folder that "
                                     "`learngene build --out` wrote")  # fmt: skip
            if not Path(self.descendant).is_dir():
                raise LearngeneError(f"descendant directory not found: {self.descendant}")
            self._check_saved_descendant()
        if self.model:
            import timm  # deferred: timm imports torchvision, which is slow

            if not timm.is_model(self.model):
                raise LearngeneError(f"unknown timm model {self.model!r} (see timm.list_models())")
        for f in dataclasses.fields(self):
            choices = f.metadata["setting"].choices
            value = getattr(self, f.name)
            if choices and value is not None and value not in choices:
                raise LearngeneError(f"{f.name} must be one of {', '.join(choices)}, got {value!r}")
        if self.ancestor:
            self._check_descendant_design()
        for key, owner in RESERVED_MODEL_ARGS.items():
            if key in self.model_kwargs:
                value = yaml_text(self.model_kwargs[key])
                fix = f"drop it and pass {flag_of(owner)} {value}" if owner else "drop it (models start random)"
                raise LearngeneError(f"--model-arg {key}={value} conflicts with a setting of its own; {fix}")

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
        need(self.workers is None or self.workers >= 0, f"workers must be >= 0, got {self.workers}")
        need(self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}")
        need(self.eval_every_epochs >= 1, f"eval_every_epochs must be >= 1, got {self.eval_every_epochs}")
        need(self.save_every_epochs >= 1, f"save_every_epochs must be >= 1, got {self.save_every_epochs}")
        if self.randaugment_policy is not None and not self.randaugment_policy.startswith("rand-"):
            raise LearngeneError(f"randaugment must look like 'rand-m9-mstd0.5-inc1' or 'none', got {self.randaugment!r}")
        return self


# ---------------------------------------------------------------------------------------------------------------------
# Field types: what each annotation accepts, from YAML / Python and from command-line text
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldKind:
    """The shape of a field's annotation: ``base`` is bool, int, float, str, list (of int) or dict."""

    base: type
    optional: bool

    @property
    def description(self) -> str:
        words = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
                 list: "a list of integers (e.g. [6, 6, 4] or 6,6,4)", dict: "a mapping"}[self.base]
        return words + (" or none" if self.optional else "")


_BASES = {"bool": bool, "int": int, "float": float, "str": str, "list[int]": list, "dict[str, Any]": dict}


@functools.cache
def field_kind(name: str) -> FieldKind:
    """The :class:`FieldKind` of the :class:`TrainConfig` field ``name`` (read from its annotation)."""
    annotation = {f.name: f.type for f in dataclasses.fields(TrainConfig)}[name]
    parts = [part.strip() for part in str(annotation).split("|")]
    optional = "None" in parts
    parts = [part for part in parts if part != "None"]
    if len(parts) != 1 or parts[0] not in _BASES:
        raise TypeError(f"TrainConfig.{name}: unsupported annotation {annotation!r}")  # a programming error
    return FieldKind(_BASES[parts[0]], optional)


def _type_error(name: str, kind: FieldKind, value: Any) -> LearngeneError:
    return LearngeneError(f"training config: {name} must be {kind.description}, got {value!r}")


def checked_value(name: str, value: Any) -> Any:
    """``value`` as field ``name`` holds it (int -> float, "none" -> None, "6,6,4" -> [6, 6, 4]).

    Raises:
        LearngeneError: naming the field and the type it takes when ``value`` does not fit.
    """
    kind = field_kind(name)
    if value is None or (kind.optional and isinstance(value, str) and value.strip().lower() == "none"):
        if kind.optional:
            return None
        raise _type_error(name, kind, value)
    if kind.base is bool:
        if isinstance(value, bool):
            return value
    elif kind.base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind.base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif kind.base is str:
        if isinstance(value, (str, os.PathLike)):
            return os.fspath(value)  # a Path from the Python API is stored as text (YAML- and JSON-safe)
    elif kind.base is list:
        if isinstance(value, str):
            try:
                return _int_list(value)
            except argparse.ArgumentTypeError:
                raise _type_error(name, kind, value) from None
        if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return list(value)
    elif kind.base is dict:
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return dict(value)
    raise _type_error(name, kind, value)


# ---------------------------------------------------------------------------------------------------------------------
# Command-line flags, generated from the fields
# ---------------------------------------------------------------------------------------------------------------------
def flag_of(name: str) -> str:
    """The ``learngene train`` flag of field ``name``."""
    spec = _setting(name)
    return spec.flag or "--" + name.replace("_", "-")


@functools.cache
def _setting(name: str) -> Setting:
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(TrainConfig)}[name]


def setting_of(name: str) -> Setting:
    """The :class:`Setting` of field ``name``."""
    return _setting(name)


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers, got {text!r}") from None


def _yaml_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid YAML value") from None


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), _yaml_value(value)


def yaml_text(value: Any) -> str:
    """``value`` as one line of YAML that ``yaml.safe_load`` reads back equal (the inverse of a KEY=VALUE value)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, allow_unicode=True)
    return text[: -len("...\n")].strip() if text.endswith("...\n") else text.strip()


def text_parser(name: str) -> Any:
    """The function that turns command-line (or form) text into field ``name``'s value."""
    kind = field_kind(name)
    choices = _setting(name).choices

    def parse(text: str) -> Any:
        clean = text.strip()
        if kind.optional and clean.lower() in (NONE_WORDS if kind.base is not str else ("none",)):
            return None
        try:
            if kind.base is int:
                return int(clean)
            if kind.base is float:
                value = float(clean)
                if not math.isfinite(value):
                    raise ValueError(clean)
                return value
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.description}, got {text!r}") from None
        if kind.base is list:
            return _int_list(clean)
        if choices and clean not in choices:
            raise argparse.ArgumentTypeError(f"choose one of {', '.join(choices)}, got {text!r}")
        return text

    parse.__name__ = name
    return parse


def value_text(name: str, value: Any) -> str:
    """The command-line text of field ``name``'s ``value`` (what :func:`text_parser` reads back equal)."""
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(str(int(v)) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add one flag per :class:`TrainConfig` field, generated from its type and :class:`Setting`.

    Flags default to ``argparse.SUPPRESS`` so an attribute exists only for a flag actually given, which lets
    ``config_from_args`` layer dataclass defaults < ``--config`` YAML < explicit flags. Booleans are ``--x`` /
    ``--no-x``; optional values accept ``none``; lists are comma-separated; ``model_kwargs`` is a repeatable
    ``--model-arg KEY=VALUE``.
    """
    defaults = TrainConfig()
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(TrainConfig):
        spec: Setting = f.metadata["setting"]
        if spec.group not in groups:
            groups[spec.group] = parser.add_argument_group(spec.group)
            if spec.group == MODEL:
                groups[MODEL].add_argument("--config", help="YAML config to start from (flags override it)")
        kind = field_kind(f.name)
        default = getattr(defaults, f.name)
        text = spec.help
        if kind.base not in (bool, dict) and default is not None:
            text += f" (default {value_text(f.name, default)})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": text}
        if kind.base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif kind.base is dict:
            kwargs.update(action="append", type=_key_value, metavar="KEY=VALUE")
        else:
            kwargs["type"] = text_parser(f.name)
            if spec.choices:
                kwargs["metavar"] = "{" + ",".join(spec.choices + (("none",) if kind.optional else ())) + "}"
        groups[spec.group].add_argument(flag_of(f.name), **kwargs)
    return parser


def config_to_argv(config: TrainConfig, always: tuple[str, ...] = ()) -> list[str]:
    """The minimal ``learngene train`` arguments that give ``config``: only fields that differ from the defaults
    (and the fields named in ``always``, for commands that should spell them out, like a comparison's seed).

    Booleans are ``--x`` / ``--no-x``, lists comma-joined, ``model_kwargs`` repeated ``--model-arg KEY=VALUE``
    (the value as YAML), None as ``none``. ``config_from_args`` of the result equals ``config``.
    """
    defaults = TrainConfig()
    argv: list[str] = []
    for f in dataclasses.fields(TrainConfig):
        value, default = getattr(config, f.name), getattr(defaults, f.name)
        if value == default and type(value) is type(default) and f.name not in always:
            continue
        flag = flag_of(f.name)
        kind = field_kind(f.name)
        if kind.base is bool:
            argv.append(flag if value else "--no-" + flag[2:])
        elif kind.base is dict:  # nothing to write for an empty mapping, even in ``always``
            for key, item in value.items():
                argv += [flag, f"{key}={yaml_text(item)}"]
        else:
            text = value_text(f.name, value)
            # "--flag=-x": a value starting with "-" would otherwise be read as a flag of its own.
            argv += [f"{flag}={text}"] if text.startswith("-") else [flag, text]
    return argv


def config_from_args(args: argparse.Namespace, base: str | os.PathLike | None = None) -> TrainConfig:
    """Layer dataclass defaults < ``--config`` YAML < explicit flags, make paths absolute, then validate.

    Flags added by :func:`add_train_arguments` default to ``argparse.SUPPRESS``, so an attribute is present on
    ``args`` only when the user gave the flag; that is what lets an explicit ``--lr none`` override a YAML value.

    Args:
        args: Parsed arguments.
        base: Folder that relative paths are relative to (default: the current directory).

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
    return TrainConfig.from_dict(data).resolved(base).validate()
