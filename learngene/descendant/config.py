"""``DescendantConfig``: the typed contents of a descendant's ``config.json``, the one way to read or write it.

Every reader (loading a descendant, the app's pages, the comparison report, fine-tuning) goes through
:meth:`DescendantConfig.load`, so a missing, corrupt or foreign file is one clear error in one place, and a field
is renamed in one place. Keys this version does not know are kept in ``extra`` and written back unchanged.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from learngene.atomic import write_json_atomic
from learngene.errors import LearngeneError
from learngene.output_dir import DESCENDANT_CONFIG

# The format tag of config.json (and of the weights file's metadata); here so that reading a config needs no torch.
CONFIG_FORMAT = "learngene-descendant/1"


@dataclass(frozen=True)
class TimmRecipe:
    """What ``timm.create_model`` needs besides the heads: architecture, depth, resolution, classes."""

    arch: str
    depth: int
    img_size: int
    num_classes: int
    qkv_bias: bool | None = None  # False for the authors' bias-free qkv (parity mode); None: the arch's default
    # Weight-transformation descendants: consecutive layers sharing one attention and FFN (the model is rebuilt
    # multiplexed, learngene.descendant.multiplexed); None: a plain ViT.
    share_layers: int | None = None


@dataclass
class DescendantConfig:
    """A descendant's ``config.json``.

    Attributes:
        timm: the timm recipe.
        heads_per_layer: heads of every layer.
        head_dim: per-head width (the ancestor's).
        mean, std: input normalisation.
        spec: the resolved :class:`~learngene.descendant.spec.DescendantSpec` as a dict.
        provenance: ancestor, statistics, thresholds and anything else recorded at build time.
        head_sources: per layer, per slot: the ancestor head it was initialised from, None where random.
        ffn_sources: per layer: the ancestor layer its FFN came from (and whether through T), None where random.
        ffn_transforms: each group's layers and T's initial weights.
        params, inherited_params, trainable_params, macs, flops: size figures (``inherited_params`` counts every
            head slot; ``inherited_distinct_params`` the distinct ancestor values behind them, see
            :mod:`learngene.descendant.size`).
        ancestor: the ancestor's summary as a dict.
        notes: remarks made while building.
        extra: keys of the file this version does not know (kept on save).
    """

    timm: TimmRecipe
    heads_per_layer: list[int]
    head_dim: int
    mean: list[float]
    std: list[float]
    spec: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)
    head_sources: list = field(default_factory=list)
    ffn_sources: list = field(default_factory=list)
    ffn_transforms: list = field(default_factory=list)
    params: int | None = None
    inherited_params: int | None = None
    inherited_distinct_params: int | None = None
    trainable_params: int | None = None
    macs: int | None = None
    flops: int | None = None
    ancestor: dict[str, Any] = field(default_factory=dict)
    notes: list = field(default_factory=list)
    format: str = CONFIG_FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def init(self) -> str:
        """The initialisation method the descendant was built with."""
        return str(self.spec.get("init", "descendant"))

    @classmethod
    def from_dict(cls, data: Any, source: str = "config.json") -> DescendantConfig:
        """Validate ``data`` (a parsed config.json); LearngeneError naming ``source`` when it is not one."""
        if not isinstance(data, dict):
            raise LearngeneError(f"{source} is not a descendant config (not a JSON object); build it again")
        if data.get("format", CONFIG_FORMAT) != CONFIG_FORMAT:
            raise LearngeneError(f"{source} has format {data.get('format')!r}, this learngene reads "
                                 f"{CONFIG_FORMAT!r}; build the descendant again with this version")
        try:
            recipe = data["timm"]
            timm = TimmRecipe(arch=str(recipe["arch"]), depth=int(recipe["depth"]), img_size=int(recipe["img_size"]),
                              num_classes=int(recipe["num_classes"]), qkv_bias=recipe.get("qkv_bias"),
                              share_layers=None if recipe.get("share_layers") is None else int(recipe["share_layers"]))
            known = {f.name for f in fields(cls)} - {"timm", "extra"}
            values = {name: data[name] for name in known if name in data}
            config = cls(timm=timm, **values, extra={k: v for k, v in data.items() if k not in known | {"timm"}})
            config.heads_per_layer = [int(h) for h in config.heads_per_layer]
            config.head_dim = int(config.head_dim)
        except (KeyError, TypeError, ValueError) as error:
            raise LearngeneError(f"{source} is not a complete descendant config (bad or missing {error}); "
                                 "build the descendant again") from None
        if len(config.heads_per_layer) != timm.depth or not isinstance(config.spec, dict):
            raise LearngeneError(f"{source} is inconsistent (depth {timm.depth}, {len(config.heads_per_layer)} "
                                 "layers of heads); build the descendant again")
        return config

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("timm", "extra")}
        return {"format": data.pop("format"), "timm": asdict(self.timm), **data, **self.extra}

    @classmethod
    def load(cls, directory: str | os.PathLike) -> DescendantConfig:
        """Read ``directory/config.json``; one-line LearngeneError when it is missing or not a descendant's."""
        path = Path(directory) / DESCENDANT_CONFIG
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise LearngeneError(f"{directory} is not a saved descendant (no {DESCENDANT_CONFIG}); "
                                 "build one with `learngene build`") from None
        except OSError as error:
            raise LearngeneError(f"cannot read {path} ({error.strerror or error})") from None
        try:
            data = json.loads(text)
        except ValueError as error:
            raise LearngeneError(f"{path} is corrupt ({error}); build the descendant again") from None
        return cls.from_dict(data, source=str(path))

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``directory/config.json`` atomically."""
        return write_json_atomic(Path(directory) / DESCENDANT_CONFIG, self.to_dict(), indent=1)
