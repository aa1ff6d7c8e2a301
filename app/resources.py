"""Cached heavy objects: ancestors (``st.cache_resource``), probe sets and statistics (memory + files on disk).

Statistics are saved as JSON under the cache directory, keyed by :meth:`Choice.key`, so coming back to a page, a
browser refresh and an app restart all cost a file read at most; the in-memory cache makes it free.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from app.state import Choice, app_dir
from learngene.errors import LearngeneError


@st.cache_resource(show_spinner="Loading the ancestor…", max_entries=3)
def ancestor(spec: str, arch: str | None = None, img_size: int | None = None):
    """The loaded ancestor (model in eval mode + summary); errors are not cached, so a fixed input retries."""
    from learngene.ancestors import load_ancestor

    return load_ancestor(spec, arch=arch, img_size=img_size)


def ancestor_for(choice: Choice):
    return ancestor(choice.spec, choice.arch, choice.img_size)


@st.cache_resource(show_spinner=False, max_entries=4)
def probes(source: str, num_images: int | None, _summary, summary_key: str):
    """The probe set for an ancestor (``summary_key`` stands for the unhashed summary)."""
    from learngene.probes import load_probe_images

    return load_probe_images(source, _summary, num_images)


def probes_for(choice: Choice):
    summary = ancestor_for(choice).summary
    return probes(choice.probes, choice.num_images, summary, choice.key())


def statistics_path(choice: Choice) -> Path:
    return app_dir() / "statistics" / f"{choice.key()}.json"


@st.cache_resource(show_spinner=False, max_entries=8)
def _load_statistics(path: str, mtime: float):
    from learngene.attention.statistics import HeadStatistics

    return HeadStatistics.load_json(path)


def saved_statistics(choice: Choice):
    """The statistics for ``choice`` if they were computed before (this process or an earlier one), else None."""
    path = statistics_path(choice)
    if not path.is_file():
        return None
    try:
        return _load_statistics(str(path), path.stat().st_mtime)
    except LearngeneError:
        return None  # a damaged file: compute again


def compute_statistics(choice: Choice, progress: Callable[[int, int], None] | None = None):
    """Compute the statistics for ``choice`` (loading what is needed), save them, and return them."""
    from learngene.attention.statistics import compute_head_statistics

    model = ancestor_for(choice)
    probe_set = probes_for(choice)
    stats = compute_head_statistics(model.model, probe_set, model.summary, device="auto", progress=progress,
                                   statistics="all")
    path = statistics_path(choice)
    stats.save_json(path)
    return _load_statistics(str(path), path.stat().st_mtime)


def save_upload(data: bytes, name: str, folder: str) -> Path:
    """Store an uploaded file under the cache (content-addressed) so the backend can read it by path."""
    digest = hashlib.sha1(data).hexdigest()[:12]
    target = app_dir() / "uploads" / folder / digest / Path(name).name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return target


def save_upload_folder(files: list[tuple[str, bytes]]) -> Path:
    """Store several uploaded images in one content-addressed folder and return it."""
    digest = hashlib.sha1(b"".join(hashlib.sha1(d).digest() for _, d in files)).hexdigest()[:12]
    folder = app_dir() / "uploads" / "probes" / digest
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files:
        path = folder / Path(name).name
        if not path.is_file():
            path.write_bytes(data)
    return folder


@st.cache_resource(show_spinner=False, max_entries=16)
def layer_attention(choice_key: str, image_index: int, layer: int, _ancestor, _probes):
    """All heads' attention maps of one layer on one probe image, (H, N, N) (cached per choice, image, layer)."""
    from learngene.attention.statistics import attention_maps

    return attention_maps(_ancestor.model, _probes.tensor(image_index), _ancestor.summary, layer)


@st.cache_resource(show_spinner=False, max_entries=16)
def similarity(choice_key: str, measure: str, layer: int | None, _stats, _model=None):
    """A head-similarity matrix (cached per choice, measure and layer: the cross-layer ones take a moment)."""
    from learngene.attention.similarity import head_similarity

    return head_similarity(_stats, measure, model=_model, layer=layer)


@st.cache_resource(show_spinner=False, max_entries=4)
def thumbnail(choice_key: str, image_index: int, _probes):
    return _probes.image(image_index)
