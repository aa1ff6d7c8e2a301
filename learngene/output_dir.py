"""The directories learngene writes (descendants, learngenes): their file names, their marker, and safe replacement.

Every such directory carries a marker file naming what wrote it. ``--force`` (and the app's Overwrite) replaces a
directory only when the marker is there, names the same kind, and nothing else lies beside the files this module
names; the current directory, its parents, the home directory and ``/`` are never replaced. New content is written
into a temporary sibling and swapped in with two renames, so a failure at any point leaves the old directory as it
was (and no half-written new one).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from learngene.atomic import disk_error, write_bytes_atomic, write_json_atomic
from learngene.errors import LearngeneError

MARKER_FILE = ".learngene-output.json"
MARKER_FORMAT = "learngene-output/1"

# A saved descendant: plain timm weights, its typed config, and (train_transform only) the trained T.
DESCENDANT_WEIGHTS = "model.safetensors"
DESCENDANT_CONFIG = "config.json"
DESCENDANT_TRANSFORMS = "transforms.safetensors"
# An extracted learngene: the inherited tensors and their JSON description.
LEARNGENE_WEIGHTS = "learngene.safetensors"
LEARNGENE_CONFIG = "learngene.json"


@dataclass(frozen=True)
class OutputLayout:
    """One kind of directory learngene writes: its name and every file that may be in it (besides the marker)."""

    kind: str
    files: tuple[str, ...]


DESCENDANT = OutputLayout("descendant", (DESCENDANT_WEIGHTS, DESCENDANT_CONFIG, DESCENDANT_TRANSFORMS))
LEARNGENE = OutputLayout("learngene", (LEARNGENE_WEIGHTS, LEARNGENE_CONFIG))
LAYOUTS = (DESCENDANT, LEARNGENE)

REPLACE_HINT = "pass --force (Overwrite in the app)"


def _protected_reason(path: Path) -> str | None:
    """Why ``path`` must never be replaced (the cwd or a parent of it, the home directory, the root), or None."""
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd:
        return "it is the current directory"
    if resolved == Path(resolved.anchor):
        return "it is the file-system root"
    if resolved == Path.home().resolve():
        return "it is your home directory"
    if cwd.is_relative_to(resolved):
        return "it contains the current directory"
    return None


def read_marker(directory: Path) -> dict | None:
    """The marker of ``directory`` as a dict, or None when there is none or it is not ours."""
    try:
        data = json.loads((directory / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != MARKER_FORMAT:
        return None
    return data


def _foreign_entries(directory: Path, layout: OutputLayout) -> list[str]:
    allowed = set(layout.files) | {MARKER_FILE}
    return sorted(entry.name for entry in directory.iterdir() if entry.name not in allowed or not entry.is_file()
                  or entry.is_symlink())


def check_replaceable(directory: str | os.PathLike, layout: OutputLayout, *, force: bool) -> Path:
    """Raise a one-line LearngeneError unless a new ``layout`` directory may be written at ``directory``.

    Allowed: a path that does not exist, or (with ``force``) an empty directory or one holding our marker for the
    same kind and only the files ``layout`` names. Never the cwd, a parent of it, ``~`` or ``/``.
    """
    directory = Path(directory)
    reason = _protected_reason(directory)
    if reason is not None:
        raise LearngeneError(f"refusing to write into {directory}: {reason}; give a new folder such as "
                             f"{directory / ('my-' + layout.kind)}")
    if directory.is_symlink():
        raise LearngeneError(f"{directory} is a symbolic link; give a new folder or the link's real path")
    if not directory.exists():
        return directory
    if not directory.is_dir():
        raise LearngeneError(f"{directory} exists and is not a directory; choose another output path")
    try:
        entries = list(directory.iterdir())
    except OSError as error:
        raise LearngeneError(f"cannot read {directory} ({error.strerror}); choose another output path") from None
    if not force:
        raise LearngeneError(f"output directory {directory} already exists; choose another or {REPLACE_HINT}")
    if not entries:
        return directory  # an empty folder holds nothing to lose
    marker = read_marker(directory)
    if marker is None:
        raise LearngeneError(f"refusing to replace {directory}: learngene did not write it (no {MARKER_FILE}); "
                             "remove it yourself or choose another output folder")
    if marker.get("kind") != layout.kind:
        raise LearngeneError(f"refusing to replace {directory}: it holds a {marker.get('kind')}, not a "
                             f"{layout.kind}; choose another output folder")
    foreign = _foreign_entries(directory, layout)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise LearngeneError(f"refusing to replace {directory}: it holds files learngene did not write ({shown}); "
                             "move them away or choose another output folder")
    return directory


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(path: str | os.PathLike) -> None:
    """Raise a one-line LearngeneError now, before any expensive work, if ``path`` cannot be created.

    Probes the nearest existing folder above ``path`` by creating and removing a temporary folder there (works
    for read-only mounts and pseudo file systems such as /proc, where permission bits say little).
    """
    path = Path(path)
    base = _nearest_existing(path.parent if path.name else path)
    if not base.is_dir():
        raise LearngeneError(f"cannot write {path}: {base} is not a directory; choose another output path")
    try:
        probe = tempfile.mkdtemp(prefix=".learngene-probe-", dir=base)
    except OSError as error:
        raise LearngeneError(f"cannot write {path}: {base} is not writable ({error.strerror or error}); "
                             "choose another output path") from None
    os.rmdir(probe)


def save_tensors(tensors: dict, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file through :func:`write_bytes_atomic`, so a full disk is one line, not a Rust error."""
    from safetensors.torch import save

    write_bytes_atomic(path, save(tensors, metadata=metadata))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_marker(directory: Path, layout: OutputLayout) -> None:
    from learngene import __version__

    write_json_atomic(directory / MARKER_FILE, {"format": MARKER_FORMAT, "kind": layout.kind,
                                                "written_by": f"learngene {__version__}"})


def write_output_dir(directory: str | os.PathLike, layout: OutputLayout, write: Callable[[Path], None], *,
                     force: bool = False) -> Path:
    """Write a ``layout`` directory at ``directory`` with ``write(staging_dir)``, replacing an old one if allowed.

    ``write`` fills a fresh temporary sibling; the marker is added; the sibling is then renamed into place (the
    old directory, if any, is first renamed aside and removed only after the swap). Any failure removes the
    sibling and leaves ``directory`` as it was.

    Raises:
        LearngeneError: when :func:`check_replaceable` refuses, or the disk refuses a write (one line).
    """
    directory = Path(directory)
    check_replaceable(directory, layout, force=force)
    parent = directory.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.new-", dir=parent))
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the result should look like a mkdir
    except OSError as error:
        raise disk_error(directory, error) from None
    try:
        try:
            write(staging)
            write_marker(staging, layout)
        except LearngeneError as error:  # name the user's folder, not the hidden temporary one
            raise LearngeneError(str(error).replace(str(staging), str(directory))) from None
        check_replaceable(directory, layout, force=force)  # again: something may have appeared meanwhile
        _swap_in(staging, directory)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise disk_error(directory, error) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def _swap_in(staging: Path, directory: Path) -> None:
    if not directory.exists():
        os.rename(staging, directory)
        return
    old = directory.absolute().parent / f".{directory.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(directory, old)
    try:
        os.rename(staging, directory)
    except BaseException:
        os.rename(old, directory)  # put the old content back before reporting the failure
        raise
    shutil.rmtree(old, ignore_errors=True)
