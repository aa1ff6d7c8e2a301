"""Per-head attention statistics over a probe set, streamed batch by batch (method.md step 1).

For each layer and head: the mean attention distance (MAD, pixels), the attention entropy (nats, over all keys,
averaged over patch queries), the mean attention pattern as a function of the relative offset between query and
key patch, and the mean attention of the CLS/first prefix token over the patch grid. Only MAD is computed unless the
others are asked for (``statistics=``): clustering needs MAD alone, the app's views ask for all. Every batch's maps
are reduced at once into running sums, so peak memory does not grow with the number of probe images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from learngene.attention.capture import capture_attention
from learngene.attention.distance import patch_distance_matrix
from learngene.attention.stats_file import read_stats_file  # also importable from here, its old home
from learngene.errors import LearngeneError
from learngene.probes import ProbeSet
from learngene.whole_numbers import is_whole

STATS_FORMAT = "learngene-stats/1"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto`` → CUDA when available, else CPU; a CUDA request on a machine without one is a user error."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise LearngeneError(f"unknown device {device!r}; use auto, cpu or cuda (cuda:1 for a second GPU)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LearngeneError("device cuda was requested but no CUDA GPU is available; use --device cpu or auto")
    return device


def relative_offset_index(rows: int, cols: int) -> torch.Tensor:
    """(G, G) index of each (query, key) patch pair into a (2R-1) x (2C-1) grid of relative offsets."""
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    r, c = r.flatten(), c.flatten()  # (G,)
    dr = r[None, :] - r[:, None] + rows - 1  # key row - query row, shifted to be >= 0
    dc = c[None, :] - c[:, None] + cols - 1
    return dr * (2 * cols - 1) + dc  # (G, G)


@dataclass
class HeadStatistics:
    """Attention statistics of every head of an ancestor.

    Attributes:
        mean_attention_distance: (L, H) pixels.
        entropy: (L, H) nats.
        mean_pattern: (L, H, 2R-1, 2C-1): mean attention a patch query gives the key at each relative offset.
        cls_attention: (L, H, R, C): mean attention of the first prefix token (CLS) over the patch grid.
        ancestor: the ancestor's summary as a dict.
        probe: description of the probe set.
        num_images: images the statistics average over.
    """

    mean_attention_distance: np.ndarray
    entropy: np.ndarray
    mean_pattern: np.ndarray
    cls_attention: np.ndarray
    ancestor: dict = field(default_factory=dict)
    probe: str = ""
    num_images: int = 0

    @property
    def num_layers(self) -> int:
        return self.mean_attention_distance.shape[0]

    @property
    def num_heads(self) -> int:
        return self.mean_attention_distance.shape[1]

    def to_json(self) -> dict:
        rounded = lambda a: np.round(np.asarray(a, dtype=np.float64), 6).tolist()  # noqa: E731
        return {
            "format": STATS_FORMAT,
            "ancestor": self.ancestor,
            "probe": self.probe,
            "num_images": self.num_images,
            "mean_attention_distance": rounded(self.mean_attention_distance),
            "entropy": rounded(self.entropy),
            "mean_pattern": rounded(self.mean_pattern),
            "cls_attention": rounded(self.cls_attention),
        }

    def save_json(self, path: str | Path) -> Path:
        """Write the statistics file atomically; a one-line LearngeneError when the path cannot be written."""
        from learngene.atomic import disk_error, write_json_atomic

        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise disk_error(path, error) from None
        return write_json_atomic(path, self.to_json(), indent=None)

    @classmethod
    def from_json(cls, data: dict) -> HeadStatistics:
        mad = np.asarray(data["mean_attention_distance"], dtype=np.float64)
        empty = np.zeros(mad.shape + (0, 0))
        return cls(
            mean_attention_distance=mad,
            entropy=np.asarray(data.get("entropy", np.full(mad.shape, np.nan)), dtype=np.float64),
            mean_pattern=np.asarray(data["mean_pattern"], dtype=np.float64) if data.get("mean_pattern") else empty,
            cls_attention=np.asarray(data["cls_attention"], dtype=np.float64) if data.get("cls_attention") else empty,
            ancestor=data.get("ancestor", {}),
            probe=data.get("probe", ""),
            num_images=int(data.get("num_images", 0)),
        )

    @classmethod
    def load_json(cls, path: str | Path) -> HeadStatistics:
        return cls.from_json(read_stats_file(path))


#: Every statistic compute_head_statistics can produce, in one place (the ``statistics`` argument names them).
STATISTICS = ("mad", "entropy", "pattern", "cls")
#: What clustering needs; the rest is computed only when asked for (the app's views ask for all).
DEFAULT_STATISTICS = ("mad",)


def _resolve_statistics(statistics: str | Iterable[str]) -> tuple[str, ...]:
    """``"all"``, one name, or several names from :data:`STATISTICS` -> a tuple in canonical order."""
    names = STATISTICS if statistics == "all" else (statistics,) if isinstance(statistics, str) else tuple(statistics)
    unknown = sorted(set(names) - set(STATISTICS))
    if unknown:
        raise LearngeneError(f"unknown statistics {unknown}; choose from {list(STATISTICS)} or 'all'")
    return tuple(name for name in STATISTICS if name in names)


STATS_ANY_FLAG = "--stats-any"


def _describe_ancestor(spec: str, weights: str) -> str:
    return f"{spec!r} (weights {weights})" if weights else repr(spec)


def check_stats_ancestor(data: dict, summary, path: str | Path, *, allow_any: bool = False) -> str | None:
    """Refuse statistics computed on another ancestor; a warning (returned) for files that cannot tell.

    A file names the ancestor it was computed on and a hash of its weights (``ancestor.weights_sha256``). Equal
    hashes accept (whatever the names); different hashes refuse. Random ancestors have no hash: their names must
    match. Files written before the hash existed, and bare tables, are accepted with a warning.

    Args:
        data: the statistics file as :func:`read_stats_file` returns it.
        summary: the :class:`~learngene.ancestors.AncestorSummary` of the ancestor about to use it.
        path: the file, for the messages.
        allow_any: accept a mismatch (``--stats-any``), returning a warning instead.

    Returns:
        A warning to show, or None when the file provably belongs to this ancestor.

    Raises:
        LearngeneError: the file belongs to another ancestor (one line naming both and the fix).
    """
    recorded = data.get("ancestor") if isinstance(data.get("ancestor"), dict) else {}
    if "weights_sha256" not in recorded:
        return (f"{path} does not say which ancestor it was computed on (written by an older learngene or by "
                f"hand); make sure it comes from {summary.spec!r}, or run `learngene analyze` again")
    theirs_spec, theirs_hash = str(recorded.get("spec", "?")), str(recorded.get("weights_sha256") or "")
    ours_hash = summary.weights_sha256
    same = theirs_hash == ours_hash if theirs_hash and ours_hash else theirs_spec == summary.spec
    if same:
        return None
    message = (f"{path} was computed on ancestor {_describe_ancestor(theirs_spec, theirs_hash)}, not on "
               f"{_describe_ancestor(summary.spec, ours_hash)}")
    if allow_any:
        return f"{message}; using it anyway ({STATS_ANY_FLAG})"
    raise LearngeneError(f"{message}: run `learngene analyze --ancestor {summary.spec} --out STATS.json` and pass "
                         f"that file, or add {STATS_ANY_FLAG} to use it anyway")


class _Accumulator:
    """Running sums of the requested per-head statistics of one model.

    MAD, the relative-offset pattern and the CLS map are all linear in the attention map, so each layer's maps are
    first summed over the batch in fp32 (one pass over the (B, H, N, N) tensor, the only per-layer work) into a
    (L, H, N, N) buffer; at the end of the batch every layer is reduced at once from that buffer and only the small
    per-head sums are accumulated in float64 (so 1,000 probe images lose no precision). Entropy is not linear (it
    needs a log of every element), so it costs a second pass and is computed only when requested.
    """

    def __init__(self, num_layers: int, num_heads: int, grid: tuple[int, int], patch_size: int,
                 num_prefix: int, device: torch.device, statistics: tuple[str, ...] = STATISTICS):
        rows, cols = grid
        self.num_prefix = num_prefix
        self.grid = grid
        self.statistics = statistics
        self.shape = (num_layers, num_heads)
        self.linear = any(name in statistics for name in ("mad", "pattern", "cls"))
        num_tokens = rows * cols + num_prefix
        f32, f64 = dict(device=device, dtype=torch.float32), dict(device=device, dtype=torch.float64)
        self.batch_sum = torch.zeros(num_layers, num_heads, num_tokens, num_tokens, **f32) if self.linear else None
        self.distance = patch_distance_matrix(grid, patch_size, device=device)  # (G, G) fp32
        self.offset_index = relative_offset_index(rows, cols).to(device).flatten()  # (G*G,)
        self.num_offsets = (2 * rows - 1) * (2 * cols - 1)
        self.mad = torch.zeros(num_layers, num_heads, **f64)
        self.entropy = torch.zeros(num_layers, num_heads, **f64) if "entropy" in statistics else None
        self.pattern = torch.zeros(num_layers, num_heads, self.num_offsets, **f64) if "pattern" in statistics else None
        self.cls = torch.zeros(num_layers, num_heads, rows * cols, **f64) if "cls" in statistics else None
        self.images = 0

    def add(self, layer: int, attn: torch.Tensor) -> None:
        """Fold one layer's (B, H, N, N) post-softmax attention into the batch buffer (and entropy if asked)."""
        if self.linear:
            torch.sum(attn, dim=0, dtype=torch.float32, out=self.batch_sum[layer])
        if self.entropy is not None:
            patch_rows = attn[:, :, self.num_prefix:, :].float()  # (B, H, G, N): patch queries over all keys
            # xlogy gives 0 * log 0 = 0 exactly; the mean over queries and the sum over the batch in one reduction
            per_head = torch.special.xlogy(patch_rows, patch_rows).sum(dim=(0, 2, 3)) / patch_rows.shape[2]
            self.entropy[layer] -= per_head.double()

    def end_batch(self, images: int) -> None:
        """Reduce every layer's batch-summed maps at once into the float64 running sums."""
        self.images += images
        if not self.linear:
            return
        p = self.num_prefix
        L, H = self.shape
        patch = self.batch_sum[:, :, p:, p:]  # (L, H, G, G): patch queries over patch keys
        if "mad" in self.statistics:
            G = patch.shape[-1]
            # sum over query i and key j of A[i, j] * dist(i, j), divided by the G queries: a matrix-vector product
            self.mad += (patch.reshape(L * H, G * G) @ self.distance.reshape(G * G)).reshape(L, H).double() / G
        if self.pattern is not None:
            offsets = torch.zeros(L * H, self.num_offsets, device=patch.device, dtype=torch.float32)
            offsets.index_add_(1, self.offset_index, patch.reshape(L * H, -1))
            self.pattern += offsets.reshape(L, H, -1).double()
        if self.cls is not None and p > 0:
            self.cls += self.batch_sum[:, :, 0, p:].double()  # (L, H, G)

    def result(self) -> dict[str, np.ndarray]:
        """Means over the images. Statistics not requested get the placeholders that ``from_json`` uses for a
        MAD-only file (NaN entropy, empty pattern and CLS map), so saving, loading and the views keep working."""
        rows, cols = self.grid
        n = max(self.images, 1)
        L, H = self.shape
        empty = np.zeros((L, H, 0, 0))
        return {
            "mean_attention_distance": (self.mad / n).cpu().numpy(),
            "entropy": (self.entropy / n).cpu().numpy() if self.entropy is not None else np.full((L, H), np.nan),
            # per query patch: divide by the number of queries as well as images
            "mean_pattern": (
                (self.pattern / (n * rows * cols)).reshape(L, H, 2 * rows - 1, 2 * cols - 1).cpu().numpy()
                if self.pattern is not None else empty
            ),
            "cls_attention": (
                (self.cls / n).reshape(L, H, rows, cols).cpu().numpy() if self.cls is not None else empty
            ),
        }


def _check_model_matches(model: torch.nn.Module, probes: ProbeSet, summary) -> None:
    """Refuse a summary or probe set of another ancestor: the running sums are sized from the summary, so a
    mismatch would otherwise come back as a table of the wrong shape (garbage) or a shape error deep in timm."""
    blocks = getattr(model, "blocks", None)
    heads = getattr(getattr(blocks[0], "attn", None), "num_heads", None) if blocks else None
    if blocks is None or heads is None:
        raise LearngeneError("compute_head_statistics needs a timm VisionTransformer (the ancestor's .model)")
    if (len(blocks), heads) != (summary.num_layers, summary.num_heads):
        raise LearngeneError(
            f"the model has {len(blocks)} layers x {heads} heads but the summary describes {summary.num_layers} x "
            f"{summary.num_heads} ({summary.spec}); pass the model and the summary of the same ancestor"
        )
    if probes.img_size != summary.img_size:
        raise LearngeneError(
            f"the probe images are prepared at {probes.img_size} px but the ancestor takes {summary.img_size} px; "
            "load them with this ancestor's summary: load_probe_images(source, ancestor.summary)"
        )


@torch.no_grad()
def compute_head_statistics(
    model: torch.nn.Module,
    probes: ProbeSet,
    summary,
    *,
    batch_size: int = 8,
    device: str | torch.device | None = "auto",
    progress: Callable[[int, int], None] | None = None,
    statistics: str | Iterable[str] = DEFAULT_STATISTICS,
) -> HeadStatistics:
    """Compute every head's statistics over ``probes``.

    Args:
        model: a timm VisionTransformer (the ancestor's ``.model``).
        probes: the probe images, preprocessed for this model.
        summary: the ancestor's :class:`~learngene.ancestors.AncestorSummary`.
        batch_size: images per forward pass.
        device: ``auto``, ``cpu`` or ``cuda``; the model is moved there for the computation and moved back.
        progress: called as ``progress(images_done, images_total)`` after every batch.
        statistics: which of :data:`STATISTICS` to compute, or ``"all"``. MAD alone (the default) costs one
            reduction pass per layer; ``entropy`` adds a log of every attention element. Statistics not requested
            come back as placeholders (NaN entropy, empty pattern and CLS arrays).
    """
    if not is_whole(batch_size) or batch_size < 1:
        raise LearngeneError(f"batch_size must be a whole number of at least 1 (got {batch_size!r})")
    batch_size = int(batch_size)
    if len(probes) == 0:
        raise LearngeneError("the probe set is empty")
    _check_model_matches(model, probes, summary)
    wanted = _resolve_statistics(statistics)
    target = resolve_device(device)
    original_device = next(model.parameters()).device
    was_training = model.training
    model.eval().to(target)
    acc = _Accumulator(summary.num_layers, summary.num_heads, tuple(summary.grid_size), summary.patch_size,
                       summary.num_prefix_tokens, target, wanted)
    try:
        with capture_attention(model, acc.add):
            for batch in probes.batches(batch_size):
                model(batch.to(target, non_blocking=True))
                acc.end_batch(batch.shape[0])
                if progress is not None:
                    progress(acc.images, len(probes))
    finally:
        model.to(original_device).train(was_training)
    return HeadStatistics(
        **acc.result(),
        ancestor=summary.to_dict(),
        probe=probes.description,
        num_images=acc.images,
    )


@torch.no_grad()
def attention_maps(model: torch.nn.Module, image: torch.Tensor, summary, layer: int) -> np.ndarray:
    """All heads' attention at ``layer`` for one image (3, S, S): array (H, N, N), prefix tokens first."""
    if not 0 <= layer < summary.num_layers:
        raise LearngeneError(f"layer {layer} is out of range 0..{summary.num_layers - 1}")
    captured: dict[int, torch.Tensor] = {}
    device = next(model.parameters()).device
    with capture_attention(model, lambda index, attn: captured.__setitem__(index, attn[0].float().cpu()), {layer}):
        model.eval()(image.unsqueeze(0).to(device))
    return captured[layer].numpy()
