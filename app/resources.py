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
from learngene.atomic import write_bytes_atomic
from learngene.errors import LearngeneError


@st.cache_resource(show_spinner="Loading the ancestor…", max_entries=3)
def ancestor(spec: str, arch: str | None = None, img_size: int | None = None):
    """The loaded ancestor (model in eval mode + summary); errors are not cached, so a fixed input retries."""
    from learngene.ancestors import load_ancestor

    return load_ancestor(spec, arch=arch, img_size=img_size)


def ancestor_for(choice: Choice):
    return ancestor(choice.spec, choice.arch, choice.img_size)


def summary_for(choice: Choice):
    """``choice``'s ancestor summary: without loading the model where :func:`quick_summary` knows it."""
    quick = quick_summary(choice)
    return quick if quick is not None else ancestor_for(choice).summary


def quick_summary(choice: Choice):
    """``choice``'s ancestor summary without loading it, or None.

    For the built-in ancestor and ``random:`` ancestors of the architectures written out in
    :data:`learngene.descendant.arch.KNOWN_VITS`, at their own resolution, the summary is known without torch, so the
    Ancestor page shows the architecture at once instead of after the model has loaded (the slow part of a cold
    start). Files and hub models, whose loading may fail, wait for the load.
    """
    from learngene.ancestors.summary import BUILTIN, RANDOM_PREFIX
    from learngene.descendant.arch import KNOWN_VITS, summary_without_weights

    known = choice.spec == BUILTIN or (choice.spec.startswith(RANDOM_PREFIX)
                                       and choice.spec.removeprefix(RANDOM_PREFIX) in KNOWN_VITS)
    if not known or choice.img_size is not None or choice.arch is not None:
        return None
    return summary_without_weights(choice.spec)


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
    """Compute the statistics for ``choice`` on this thread (loading what is needed), save them, and return them."""
    model, probe_set = ancestor_for(choice), probes_for(choice)
    path = compute_and_save_statistics(model, probe_set, statistics_path(choice), progress)
    return _load_statistics(str(path), path.stat().st_mtime)


def compute_and_save_statistics(ancestor, probe_set, path: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """The statistics of ``ancestor`` over ``probe_set``, saved at ``path``. No ``st.*``: safe on a job thread."""
    from learngene.attention.statistics import compute_head_statistics

    # The app's views need every statistic (patterns for similarity and 2-D, entropy), not just the MAD.
    stats = compute_head_statistics(ancestor.model, probe_set, ancestor.summary, device="auto", progress=progress,
                                    statistics="all")
    return stats.save_json(path)


def statistics_job_key(choice: Choice) -> str:
    return f"statistics:{choice.key()}"


def start_statistics_job(choice: Choice):
    """Start (or join) the background computation of ``choice``'s statistics; returns the shared job.

    The ancestor and the probe images are loaded here, on the script thread, through the caches: the job thread
    only computes and saves (Streamlit's caches warn when used off the script thread).
    """
    from app import jobs

    ancestor, probe_set = ancestor_for(choice), probes_for(choice)
    path = statistics_path(choice)
    return jobs.board.start(statistics_job_key(choice), "Attention statistics",
                            lambda progress: compute_and_save_statistics(ancestor, probe_set, path, progress))


def save_upload(data: bytes, name: str, folder: str) -> Path:
    """Store an uploaded file under the cache (content-addressed) so the backend can read it by path."""
    digest = hashlib.sha1(data).hexdigest()[:12]
    target = app_dir() / "uploads" / folder / digest / Path(name).name
    if not target.is_file():  # atomic: an interrupted write must not leave a half file that is then reused
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(target, data)
    return target


def save_upload_folder(files: list[tuple[str, bytes]]) -> Path:
    """Store several uploaded images in one content-addressed folder and return it."""
    digest = hashlib.sha1(b"".join(hashlib.sha1(d).digest() for _, d in files)).hexdigest()[:12]
    folder = app_dir() / "uploads" / "probes" / digest
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files:
        path = folder / Path(name).name
        if not path.is_file():
            write_bytes_atomic(path, data)
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
