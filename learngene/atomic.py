"""The one way learngene writes a file that someone may be reading: a temporary sibling, fsync, then a rename.

Readers (the app polling a run, a second process, a crash-restarted worker) therefore see either the old file or
the new one, never half of one. Every writer of configs, results, records and caches goes through these helpers.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path
from typing import Any

from learngene.errors import LearngeneError

DISK_FULL_ERRNOS = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def disk_error(path: Path | str, error: OSError) -> LearngeneError:
    """A one-line error for a failed write, naming a full disk when that is the cause."""
    if error.errno in DISK_FULL_ERRNOS:
        return LearngeneError(f"disk full while writing {path}: free some space and try again")
    return LearngeneError(f"could not write {path}: {error.strerror or error}")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; LearngeneError (one line) if the folder is missing or unwritable."""
    path = Path(path)
    # The pid and the thread keep two writers of the same file at once from sharing one temporary file: the app's
    # sessions are threads of one process (two tabs saving their settings together lost one with FileNotFoundError).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise disk_error(path, error) from None
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON (plus a final newline) atomically; non-JSON values are written with ``str``."""
    return write_text_atomic(path, json.dumps(data, indent=indent, default=str) + "\n")
