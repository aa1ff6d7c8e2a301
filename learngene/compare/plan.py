"""What a comparison trains: the plan (ancestor, datasets, descendant shape, variants, seeds, recipe) and its jobs.

A :class:`ComparisonPlan` is pure data. It expands into one :class:`Job` per (dataset, variant, seed); every job
trains the *same* descendant architecture with the *same* recipe, so the only thing that differs between the rows
of a table is the initialisation (and, within a row, the seed). Nothing here builds a model or touches the run
registry; that is :mod:`learngene.compare.execute`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from learngene.errors import LearngeneError

# Fields of a TrainConfig that say *which model* to train. A comparison decides them per job, so a recipe override
# may not set them (it would silently make the rows train different things).
MODEL_SOURCE_FIELDS = (
    "descendant", "model", "model_kwargs", "ancestor", "init", "depth", "width_ratio", "heads", "schedule", "stats", "eps",
    "min_heads", "dataset", "seed",
)
# DescendantSpec fields a variant may set (the paper's ablations are all among them).
SPEC_OPTION_FIELDS = ("ffn_groups", "head_order", "centroid", "train_transform", "transform_init", "parity")
# Keys a variant may set besides the spec options: the method and the clustering thresholds it is built with.
VARIANT_KEYS = ("init", "eps", "min_heads") + SPEC_OPTION_FIELDS

# Classes of the datasets whose size is fixed, so a descendant can be built with the right classifier before any
# data is read (a folder dataset is counted from its class directories instead).
KNOWN_CLASSES = {
    "digits": 10, "lfw-faces": 2, "cifar10": 10, "cifar100": 100, "flowers102": 102, "flowers102-trainval": 102, "food101": 101,
    "stanford-cars": 196, "cub200": 200, "inaturalist": 1010,
}

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class Variant:
    """One row of a comparison table: an initialisation method and the build options that go with it.

    Attributes:
        label: the row's name (unique within a plan; used in run names and paths).
        init: one of :data:`learngene.descendant.INIT_METHODS`.
        options: DescendantSpec overrides (``head_order``, ``centroid``, ``train_transform``, ``transform_init``,
            ``ffn_groups``) as sorted (name, value) pairs so the variant stays hashable.
        eps, min_heads: clustering thresholds for this row; None means the plan's.
    """

    label: str
    init: str = "cluster-learngene"
    options: tuple[tuple[str, Any], ...] = ()
    eps: float | None = None
    min_heads: int | None = None

    def __post_init__(self):
        if not _LABEL.match(self.label):
            raise LearngeneError(
                f"variant label {self.label!r} must start with a letter or digit and use only letters, digits, "
                "'_', '.', '+' and '-' (it names run directories)"
            )
        from learngene.descendant.spec import INIT_METHODS

        if self.init not in INIT_METHODS:
            raise LearngeneError(f"unknown init {self.init!r}: choose from {', '.join(INIT_METHODS)}")
        unknown = [name for name, _ in self.options if name not in SPEC_OPTION_FIELDS]
        if unknown:
            raise LearngeneError(f"variant {self.label}: unknown option {unknown[0]!r} ({', '.join(VARIANT_KEYS)})")
        if self.init != "cluster-learngene" and (self.options or self.eps is not None or self.min_heads is not None):
            raise LearngeneError(
                f"variant {self.label}: clustering options only apply to cluster-learngene (init is {self.init})"
            )
        object.__setattr__(self, "options", tuple(sorted(self.options)))

    @property
    def spec_options(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def needs_statistics(self) -> bool:
        """Whether building this row clusters the ancestor's heads, i.e. needs its mean attention distances.
        Baselines never do, and ``parity=authors`` uses the authors' hard-coded S_l lists instead."""
        return self.init == "cluster-learngene" and self.spec_options.get("parity", "none") != "authors"

    def to_dict(self) -> dict[str, Any]:
        options = {k: ([list(g) for g in v] if k == "ffn_groups" and isinstance(v, tuple) else v)
                   for k, v in self.options}
        return {"label": self.label, "init": self.init, "options": options, "eps": self.eps,
                "min_heads": self.min_heads}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Variant:
        options = []
        for key, value in (data.get("options") or {}).items():
            if key == "ffn_groups" and isinstance(value, list):
                value = tuple(tuple(int(x) for x in g) for g in value)
            options.append((key, value))
        return cls(label=data["label"], init=data.get("init", "cluster-learngene"), options=tuple(options),
                   eps=data.get("eps"), min_heads=data.get("min_heads"))


def _parse_groups(text: str) -> tuple[tuple[int, ...], ...] | None:
    """``none`` or groups written with ``+`` between them (``3-5+0-1``): commas separate a variant's keys."""
    from learngene.ffn_groups import parse_groups

    if text.strip().lower() == "none":
        return None
    return tuple(tuple(g) for g in parse_groups(text.replace("+", ",")))


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise LearngeneError(f"expected true or false, got {text!r}")


def parse_variant(text: str) -> Variant:
    """A variant from ``LABEL[:KEY=VALUE,KEY=VALUE...]``.

    Keys: ``init`` (default cluster-learngene), ``eps``, ``min_heads``, ``head_order``, ``centroid``,
    ``train_transform`` (true/false), ``transform_init``, ``ffn_groups`` (``auto``, ``none`` or ``3-5+0-1``).
    Example: ``order-original:head_order=original``; ``T-identity:ffn_groups=3-5,transform_init=identity``.
    """
    label, _, rest = text.partition(":")
    init, eps, min_heads, options = "cluster-learngene", None, None, []
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        value = value.strip()
        if not sep or not value:
            raise LearngeneError(f"variant {label}: expected KEY=VALUE, got {item!r}")
        try:
            if key == "init":
                init = value
            elif key == "eps":
                eps = float(value)
            elif key == "min_heads":
                min_heads = int(value)
            elif key == "train_transform":
                options.append((key, _parse_bool(value)))
            elif key == "ffn_groups":
                options.append((key, "auto" if value == "auto" else _parse_groups(value)))
            elif key in SPEC_OPTION_FIELDS:
                options.append((key, value))
            else:
                raise LearngeneError(f"variant {label}: unknown key {key!r} (choose from {', '.join(VARIANT_KEYS)})")
        except ValueError as error:
            raise LearngeneError(f"variant {label}: bad value for {key}: {error}") from None
    return Variant(label=label.strip(), init=init, options=tuple(options), eps=eps, min_heads=min_heads)


# The paper's ablations of Cluster-Learngene (method.md steps 3, 5, 6), as variants to add to a plan. Head order only
# changes a descendant where a layer's head count is not a multiple of its number of clusters (permuting the heads
# of a layer is a symmetry of multi-head attention); T only exists where FFN groups fall inside the descendant, so
# the T rows group the descendant's last three layers explicitly; each T init is run applied once and trained.
ABLATION_VARIANTS = (
    "order-original:head_order=original",
    "order-ascending:head_order=ascending-mad",
    "order-descending:head_order=descending-mad",
    "centroid-average:centroid=average",
    "T-once:ffn_groups=3-5",
    "T-identity:ffn_groups=3-5,transform_init=identity",
    "T-trained:ffn_groups=3-5,train_transform=true",
    "T-trained-identity:ffn_groups=3-5,train_transform=true,transform_init=identity",
    "eps5:eps=5",
    "eps20:eps=20",
)


def ablation_variants() -> list[Variant]:
    return [parse_variant(text) for text in ABLATION_VARIANTS]


def dataset_key(dataset: str) -> str:
    """A short path-safe name for a dataset (a folder dataset is named after its folder)."""
    name = str(dataset).strip()
    if name.lower() in KNOWN_CLASSES:
        return name.lower()
    base = Path(name).expanduser().name or "dataset"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", base)


@dataclass(frozen=True)
class Job:
    """One training run of a comparison."""

    dataset: str
    variant: Variant
    seed: int

    @property
    def key(self) -> str:
        """Stable relative path naming the job inside the output directory (``dataset/label/seedN``)."""
        return f"{dataset_key(self.dataset)}/{self.variant.label}/seed{self.seed}"


@dataclass
class ComparisonPlan:
    """Everything a comparison needs, as plain data (``to_dict`` / ``from_dict`` round-trip through JSON).

    Attributes:
        ancestor: ancestor spec (``builtin``, a timm name, ``random:NAME`` or ``PATH@ARCH``); ``arch`` for a file.
        datasets: dataset names or folders, one table block each.
        depth, width_ratio, heads, schedule: the descendant shape shared by every row (one of width ratio, heads
            or schedule).
        variants: the rows: one per init method plus any ablation variants.
        seeds: every row is trained once per seed (the seed goes into the descendant build and the training run).
        recipe: TrainConfig overrides shared by all runs (epochs, img_size, lr, augmentation, device ...).
        data_roots: dataset key -> data root; key ``*`` applies to every dataset without its own.
        eps, min_heads: clustering thresholds (a variant may override them).
        stats: a statistics file (``learngene analyze``) to cluster from; None computes them once on the built-in
            probe images.
        name: prefix of the run names in the registry (default: the output directory's name).
    """

    ancestor: str = "builtin"
    arch: str | None = None
    datasets: tuple[str, ...] = ("digits",)
    depth: int | None = 6
    width_ratio: float | None = None
    heads: tuple[int, ...] | None = None
    schedule: str | None = None
    variants: tuple[Variant, ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2)
    recipe: dict[str, Any] = field(default_factory=dict)
    data_roots: dict[str, str] = field(default_factory=dict)
    eps: float = 10.0
    min_heads: int = 1
    stats: str | None = None
    name: str | None = None

    def __post_init__(self):
        self.datasets = tuple(str(d) for d in self.datasets)
        self.variants = tuple(v if isinstance(v, Variant) else Variant.from_dict(v) for v in self.variants)
        self.seeds = tuple(int(s) for s in self.seeds)
        if self.heads is not None:
            self.heads = tuple(int(h) for h in self.heads)

    # ------------------------------------------------------------------------------------------------ checks
    def validate(self) -> ComparisonPlan:
        """Reject a plan that cannot give a fair table, before anything is built.

        Raises:
            LearngeneError: naming the problem.
        """
        if not self.datasets:
            raise LearngeneError("no dataset given (--dataset NAME[,NAME...])")
        if len(set(map(dataset_key, self.datasets))) != len(self.datasets):
            raise LearngeneError(f"datasets must be distinct (got {', '.join(self.datasets)})")
        if not self.variants:
            raise LearngeneError("no initialisation given (--inits cluster-learngene,scratch,...)")
        labels = [v.label for v in self.variants]
        duplicated = sorted({label for label in labels if labels.count(label) > 1})
        if duplicated:
            raise LearngeneError(f"variant labels must be unique (repeated: {', '.join(duplicated)})")
        if not self.seeds:
            raise LearngeneError("no seed given (--seeds 0,1,2)")
        if len(set(self.seeds)) != len(self.seeds):
            raise LearngeneError(f"seeds must be distinct (got {list(self.seeds)})")
        given = [n for n, v in (("width ratio", self.width_ratio), ("heads", self.heads),
                                ("schedule", self.schedule)) if v is not None]
        if len(given) > 1:
            raise LearngeneError(f"give only one of width ratio, heads or schedule (got {' and '.join(given)})")
        bad = sorted(set(self.recipe) & set(MODEL_SOURCE_FIELDS))
        if bad:
            raise LearngeneError(
                f"recipe option(s) {', '.join(bad)} are set per run by the comparison; use the compare flags "
                "(--ancestor, --inits, --depth, --width-ratio, --dataset, --seeds) instead"
            )
        from learngene.training.config import TrainConfig

        unknown = sorted(set(self.recipe) - {f.name for f in dataclasses.fields(TrainConfig)})
        if unknown:
            raise LearngeneError(f"unknown recipe option(s): {', '.join(unknown)}")
        for key in self.data_roots:
            if key != "*" and key not in map(dataset_key, self.datasets):
                raise LearngeneError(f"--data-root {key}=... names no dataset of this comparison")
        # The clustering thresholds are used only when a descendant is built: check them now, before the output
        # directory records this plan (a bad Eps found later would leave a plan.json that refuses the fixed rerun).
        for where, eps, min_heads in [("--eps", self.eps, self.min_heads)] + [
            (f"variant {v.label}", self.eps_for(v), self.min_heads_for(v)) for v in self.variants
        ]:
            if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
                raise LearngeneError(f"{where}: Eps must be a positive number of pixels (e.g. 10), got {eps}")
            if int(min_heads) != min_heads or min_heads < 1:
                raise LearngeneError(f"{where}: MinHds must be a whole number >= 1, got {min_heads}")
        return self

    # ------------------------------------------------------------------------------------------------ jobs
    def jobs(self) -> list[Job]:
        """Every (dataset, variant, seed), dataset-major then seed-major, so a partial table fills evenly: all
        rows get seed 0 before any gets seed 1."""
        return [Job(d, v, s) for d in self.datasets for s in self.seeds for v in self.variants]

    def data_root(self, dataset: str) -> str | None:
        return self.data_roots.get(dataset_key(dataset), self.data_roots.get("*", self.recipe.get("data_root")))

    @property
    def img_size(self) -> int:
        from learngene.training.config import TrainConfig

        return int(self.recipe.get("img_size", TrainConfig.img_size))

    @property
    def needs_statistics(self) -> bool:
        """Whether any row of the plan needs the ancestor's head statistics (see :attr:`Variant.needs_statistics`)."""
        return any(v.needs_statistics for v in self.variants)

    def eps_for(self, variant: Variant) -> float:
        return float(self.eps if variant.eps is None else variant.eps)

    def min_heads_for(self, variant: Variant) -> int:
        return int(self.min_heads if variant.min_heads is None else variant.min_heads)

    def descendant_spec(self, job: Job, num_classes: int | None):
        """The job's :class:`~learngene.descendant.DescendantSpec` (unresolved)."""
        from learngene.descendant.spec import DescendantSpec

        return DescendantSpec(
            depth=self.depth, width_ratio=self.width_ratio, heads=self.heads, schedule=self.schedule,
            img_size=self.img_size, num_classes=num_classes, init=job.variant.init, seed=job.seed,
            **job.variant.spec_options,
        )

    def train_config(self, job: Job, descendant_dir: str | Path):
        """The job's :class:`~learngene.training.TrainConfig` (not validated: the directory may not exist yet)."""
        from learngene.training.config import TrainConfig

        data = dict(self.recipe)
        data.update(descendant=str(descendant_dir), dataset=job.dataset, seed=job.seed)
        root = self.data_root(job.dataset)
        if root is not None:
            data["data_root"] = root
        return TrainConfig.from_dict(data)

    def run_name(self, job: Job, out: str | Path) -> str:
        prefix = self.name or Path(out).resolve().name
        return f"{prefix}:{dataset_key(job.dataset)}:{job.variant.label}:s{job.seed}"

    # ------------------------------------------------------------------------------------------------ records
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["variants"] = [v.to_dict() for v in self.variants]
        data["datasets"], data["seeds"] = list(self.datasets), list(self.seeds)
        data["heads"] = list(self.heads) if self.heads is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComparisonPlan:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise LearngeneError(f"unknown comparison plan key(s): {', '.join(unknown)}")
        return cls(**data)


def count_folder_classes(root: str | Path) -> int | None:
    """Classes of an image-folder dataset (``root/train/<class>/`` or ``root/<class>/``), or None if not one."""
    root = Path(root).expanduser()
    base = root / "train" if (root / "train").is_dir() else root
    if not base.is_dir():
        return None
    classes = [p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return len(classes) or None


def dataset_classes(plan: ComparisonPlan, dataset: str) -> int | None:
    """The number of classes of ``dataset`` without loading it: ``recipe['num_classes']``, the known size of a
    named dataset, or the class folders of a folder dataset; None when it cannot be told."""
    if plan.recipe.get("num_classes"):
        return int(plan.recipe["num_classes"])
    key = str(dataset).strip().lower()
    if key in KNOWN_CLASSES and key not in ("cub200", "inaturalist"):
        return KNOWN_CLASSES[key]
    root = plan.data_root(dataset) if key in ("cub200", "inaturalist") else dataset
    counted = count_folder_classes(root) if root else None
    return counted or KNOWN_CLASSES.get(key)
