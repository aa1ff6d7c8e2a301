"""Where learngene keeps caches and runs, overridable by environment variables."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

CACHE_ENV = "LEARNGENE_CACHE_DIR"
RUNS_ENV = "LEARNGENE_RUNS_DIR"


def cache_dir() -> Path:
    """Directory for converted weights and other re-creatable artefacts (``$LEARNGENE_CACHE_DIR`` wins)."""
    path = Path(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("learngene"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir(override: str | os.PathLike | None = None) -> Path:
    """Root of all training runs: ``override``, else ``$LEARNGENE_RUNS_DIR``, else the user data directory."""
    path = Path(override or os.environ.get(RUNS_ENV) or Path(platformdirs.user_data_dir("learngene")) / "runs")
    path.mkdir(parents=True, exist_ok=True)
    return path
