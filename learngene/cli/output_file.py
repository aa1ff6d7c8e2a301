"""The one rule for a command's single-file output (``analyze --out STATS.json``, ``probe --out SCORES.json``).

An existing file is replaced only with ``--force``, and only when learngene wrote it: its JSON carries the
command's ``format`` (``learngene-stats/...``, ``learngene-probe/...``). Anything else (a user's notes, another
tool's JSON, a file that is not JSON) is refused even with ``--force``, as output folders are
(:func:`learngene.output_dir.check_replaceable`).
"""

from __future__ import annotations

import json
from pathlib import Path

from learngene.errors import LearngeneError


def _format_family(file_format: str) -> str:
    return file_format.split("/", 1)[0] + "/"  # any version of the format: learngene-stats/1, /2, ...


def written_by_learngene(path: Path, file_format: str) -> bool:
    """Whether ``path`` is a JSON file whose ``format`` is ``file_format`` (any version)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and str(data.get("format", "")).startswith(_format_family(file_format))


def check_output_file(path: str | Path, file_format: str, *, force: bool, example: str) -> Path:
    """Refuse an ``--out`` file that must not be written, before any work is done.

    Args:
        path: The ``--out`` value.
        file_format: The ``format`` value the command writes into its JSON.
        force: ``--force`` was given.
        example: A file name to suggest when ``path`` is a directory.

    Raises:
        LearngeneError: ``path`` is a directory, exists without ``force``, or exists and learngene did not write it.
    """
    path = Path(path)
    if path.is_dir():
        raise LearngeneError(f"--out {path} is a directory; give a file name such as {example}")
    if not path.exists():
        return path
    if not force:
        raise LearngeneError(f"{path} already exists; choose another --out or pass --force")
    if not written_by_learngene(path, file_format):
        raise LearngeneError(
            f"refusing to replace {path}: learngene did not write it (no \"format\": \"{file_format}\" inside); "
            "remove it yourself or choose another --out"
        )
    return path
