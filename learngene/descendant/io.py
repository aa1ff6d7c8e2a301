"""Saving and loading descendants (``model.safetensors`` + ``config.json``), and reading statistics files.

A saved descendant loads with timm and PyTorch alone: ``config.json`` holds the timm architecture name, depth,
resolution, classes, heads per layer and head dim, which is all :func:`~learngene.descendant.model.
create_descendant_model` needs; the ancestor is not read.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from learngene.descendant.build import CONFIG_FORMAT, Descendant
from learngene.descendant.model import create_descendant_model
from learngene.descendant.spec import DescendantSpec
from learngene.descendant.transform import (
    TRANSFORMS_ATTR,
    FfnTransform,
    attach_trained_transforms,
    plain_state_dict,
)
from learngene.errors import LearngeneError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
# Trained transformations T and their fixed centroids (only for train_transform descendants). model.safetensors stays
# plain timm weights (T folded in) so it loads anywhere; this file lets load_descendant keep training T.
TRANSFORMS_FILE = "transforms.safetensors"


def save_descendant(descendant: Descendant, directory: str | Path, *, force: bool = False) -> Path:
    """Write the descendant into a new directory ``directory``.

    The files are written into a temporary sibling directory that is renamed into place at the end, so a failure
    leaves nothing half-written. A trained transformation T is folded into the weights first (plain timm modules);
    T itself and its centroids go to ``transforms.safetensors`` so that :func:`load_descendant` can keep training it.

    Raises:
        LearngeneError: when ``directory`` exists and ``force`` is False.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    if directory.exists() and not force:
        raise LearngeneError(f"output directory {directory} already exists; choose another or pass --force")
    if directory.exists() and not directory.is_dir():
        raise LearngeneError(f"{directory} exists and is not a directory; choose another output path")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in plain_state_dict(descendant.model).items()}
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        save_file(tensors, str(staging / WEIGHTS_FILE), metadata={"format": CONFIG_FORMAT})
        transforms = getattr(descendant.model, TRANSFORMS_ATTR, None)
        if transforms is not None:
            save_file({k: v.detach().contiguous() for k, v in transforms.state_dict().items()},
                      str(staging / TRANSFORMS_FILE))
        (staging / CONFIG_FILE).write_text(json.dumps(descendant.config, indent=1))
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def load_descendant(directory: str | Path, *, device: str = "cpu") -> Descendant:
    """Rebuild a saved descendant from its directory alone (no ancestor, no learngene)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise LearngeneError(f"{directory} is not a saved descendant (expected {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        config = json.loads(config_path.read_text())
        state = load_file(str(weights_path), device=str(device))
        recipe = config["timm"]
    except Exception as error:
        raise LearngeneError(f"the descendant in {directory} is corrupt ({error}); build it again") from error
    # A skeleton without values, then the saved tensors put in place (no pointless random init).
    model = create_descendant_model(
        recipe["arch"], config["heads_per_layer"], head_dim=config["head_dim"], img_size=recipe["img_size"],
        num_classes=recipe["num_classes"], device="meta", qkv_bias=recipe.get("qkv_bias"),
    )
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise LearngeneError(f"the weights in {directory} do not match its config.json ({error})") from error
    model.pretrained_cfg = {**model.pretrained_cfg, "mean": tuple(config["mean"]), "std": tuple(config["std"])}
    spec = DescendantSpec.from_dict(config["spec"])
    if spec.train_transform and (directory / TRANSFORMS_FILE).is_file():
        _reattach_transforms(model, config, load_file(str(directory / TRANSFORMS_FILE), device=str(device)))
    return Descendant(model=model.eval(), spec=spec, config=config)


def _reattach_transforms(model, config: dict, state: dict) -> None:
    """Put each group's trained T back in the graph: the saved weights are residual + T(centroid), so registering
    the parametrisation recovers the residual exactly and the model's outputs do not change."""
    entries = config.get("ffn_transforms", [])
    groups = [list(entry["layers"]) for entry in entries]
    transforms, centroids = [], []
    for index, group in enumerate(groups):
        transform = FfnTransform(int(entries[index].get("outputs", len(group))))  # a cut group keeps its full T
        prefix = f"{index}."
        transform.load_state_dict({k[len(prefix + "transform."):]: v for k, v in state.items()
                                   if k.startswith(prefix + "transform.")})
        centroids.append({key: state[prefix + key.replace(".", "_")] for key in ("fc1.weight", "fc1.bias",
                                                                               "fc2.weight", "fc2.bias")})
        transforms.append(transform)
    attach_trained_transforms(model, groups, transforms, centroids)


def read_distances(path: str | Path) -> tuple[np.ndarray, dict]:
    """The (L, H) mean attention distances of a statistics file (``learngene analyze``), and its provenance."""
    from learngene.attention.statistics import read_stats_file

    data = read_stats_file(path)
    table = np.asarray(data["mean_attention_distance"], dtype=np.float64)
    return table, {"statistics": str(Path(path).resolve()), "probe": data.get("probe", "")}
