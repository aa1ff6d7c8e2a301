"""Saving and loading descendants (``model.safetensors`` + ``config.json``), and reading statistics files.

A saved descendant loads with timm and PyTorch alone: ``config.json`` holds the timm architecture name, depth,
resolution, classes, heads per layer and head dim, which is all :func:`~learngene.descendant.model.
create_descendant_model` needs; the ancestor is not read.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from learngene.descendant.build import CONFIG_FORMAT, Descendant
from learngene.descendant.config import DescendantConfig
from learngene.descendant.model import create_descendant_model
from learngene.descendant.spec import DescendantSpec
from learngene.descendant.transform import (
    TRANSFORMS_ATTR,
    FfnTransform,
    attach_trained_transforms,
    plain_state_dict,
)
from learngene.errors import LearngeneError
from learngene.output_dir import (
    DESCENDANT,
    DESCENDANT_CONFIG,
    DESCENDANT_TRANSFORMS,
    DESCENDANT_WEIGHTS,
    save_tensors,
    write_output_dir,
)

_logger = logging.getLogger(__name__)

# The names of a descendant directory's files live in learngene.output_dir; these aliases keep old imports working.
WEIGHTS_FILE = DESCENDANT_WEIGHTS
CONFIG_FILE = DESCENDANT_CONFIG
# Trained transformations T and their fixed centroids (only for train_transform descendants). model.safetensors stays
# plain timm weights (T folded in) so it loads anywhere; this file lets load_descendant keep training T.
TRANSFORMS_FILE = DESCENDANT_TRANSFORMS


def save_descendant(descendant: Descendant, directory: str | Path, *, force: bool = False) -> Path:
    """Write the descendant into ``directory`` (new, empty, or - with ``force`` - a descendant we wrote before).

    The files are written into a temporary sibling directory that is swapped in at the end, so a failure leaves
    nothing half-written and an old directory intact (see :func:`learngene.output_dir.write_output_dir`). A trained
    transformation T is folded into the weights first (plain timm modules); T itself and its centroids go to
    ``transforms.safetensors`` so that :func:`load_descendant` can keep training it.

    Raises:
        LearngeneError: when ``directory`` exists and may not be replaced, or the disk refuses the write.
    """
    if not isinstance(descendant, Descendant):
        raise LearngeneError(
            f"save_descendant saves a Descendant (from build_descendant or load_descendant), got "
            f"{type(descendant).__name__}"
        )
    config = DescendantConfig.from_dict(descendant.config, source="the descendant's config")
    tensors = {k: v.contiguous() for k, v in plain_state_dict(descendant.model).items()}
    transforms = getattr(descendant.model, TRANSFORMS_ATTR, None)

    def write(staging: Path) -> None:
        save_tensors(tensors, staging / DESCENDANT_WEIGHTS, metadata={"format": CONFIG_FORMAT})
        if transforms is not None:
            save_tensors({k: v.detach().contiguous() for k, v in transforms.state_dict().items()},
                         staging / DESCENDANT_TRANSFORMS)
        config.save(staging)

    return write_output_dir(directory, DESCENDANT, write, force=force)


def load_descendant(directory: str | Path, *, device: str = "cpu") -> Descendant:
    """Rebuild a saved descendant from its directory alone (no ancestor, no learngene)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    weights_path = directory / DESCENDANT_WEIGHTS
    if not directory.is_dir():
        raise LearngeneError(f"descendant directory {directory} not found; build one with `learngene build`")
    config = DescendantConfig.load(directory)
    if not weights_path.is_file():
        raise LearngeneError(f"{directory} is not a saved descendant (no {DESCENDANT_WEIGHTS}); build it again")
    try:
        state = load_file(str(weights_path), device=str(device))
    except Exception as error:
        raise LearngeneError(f"the descendant in {directory} is corrupt ({error}); build it again") from error
    recipe = config.timm
    # A skeleton without values, then the saved tensors put in place (no pointless random init).
    model = create_descendant_model(
        recipe.arch, config.heads_per_layer, head_dim=config.head_dim, img_size=recipe.img_size,
        num_classes=recipe.num_classes, device="meta", qkv_bias=recipe.qkv_bias, share_layers=recipe.share_layers,
    )
    mismatch = _describe_mismatch(model.state_dict(), state)
    if mismatch:
        raise LearngeneError(
            f"the weights in {directory} do not match its {DESCENDANT_CONFIG} ({mismatch}); build the descendant again"
        )
    model.load_state_dict(state, strict=True, assign=True)
    model.pretrained_cfg = {**model.pretrained_cfg, "mean": tuple(config.mean), "std": tuple(config.std)}
    spec = DescendantSpec.from_dict(config.spec)
    data = config.to_dict()
    transforms_path = directory / DESCENDANT_TRANSFORMS
    if spec.train_transform and transforms_path.is_file():
        try:
            _reattach_transforms(model, data, load_file(str(transforms_path), device=str(device)))
        except Exception as error:  # safetensors' own errors, a missing tensor (KeyError), a shape mismatch
            detail = f"missing {error}" if isinstance(error, KeyError) else str(error).splitlines()[0]
            raise LearngeneError(
                f"{transforms_path} is corrupt or incomplete ({detail}); build the descendant again"
            ) from None
    elif spec.train_transform and data.get("ffn_transforms"):
        # The weights alone are exact (T is folded in), so the model still loads; only further training of T is lost.
        _logger.warning("warning: %s is missing: the descendant loads with T folded into its FFNs, and training "
                        "will not update T; build the descendant again to train T", transforms_path)
    return Descendant(model=model.eval(), spec=spec, config=data)


def _describe_mismatch(expected: dict, saved: dict) -> str:
    """One line on how saved tensors differ from the model the config describes ('' when they fit).

    PyTorch's own message lists every tensor on a line of its own; a user needs the first and the counts.
    """
    shapes = [k for k in expected if k in saved and tuple(saved[k].shape) != tuple(expected[k].shape)]
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    parts = []
    if shapes:
        first = shapes[0]
        parts.append(f"{len(shapes)} tensor(s) of another shape, e.g. {first} is {tuple(saved[first].shape)} in "
                     f"{DESCENDANT_WEIGHTS} but {tuple(expected[first].shape)} by {DESCENDANT_CONFIG}")
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    return "; ".join(parts)


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


def read_distances(path: str | Path, ancestor=None, *, allow_any: bool = False) -> tuple[np.ndarray, dict]:
    """The (L, H) mean attention distances of a statistics file (``learngene analyze``), and its provenance.

    With ``ancestor`` (an :class:`~learngene.ancestors.AncestorSummary`) the file must have been computed on it
    (see :func:`~learngene.attention.statistics.check_stats_ancestor`); a warning for a file that cannot tell is
    logged.
    """
    from learngene.attention.statistics import check_stats_ancestor, read_stats_file

    data = read_stats_file(path)
    if ancestor is not None:
        warning = check_stats_ancestor(data, ancestor, path, allow_any=allow_any)
        if warning:
            _logger.warning("warning: %s", warning)
    table = np.asarray(data["mean_attention_distance"], dtype=np.float64)
    return table, {"statistics": str(Path(path).resolve()), "probe": data.get("probe", "")}
