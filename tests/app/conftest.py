"""Shared set-up for the app tests: an isolated cache and runs directory, offline, and small real statistics.

AppTest runs the app in this process, so ``st.cache_resource`` (the loaded ancestor) is shared by all tests and the
built-in ancestor is loaded once. The statistics are computed once, on 4 probe images, and saved where the app
looks for them; every test starts from that saved choice.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from apptest_support import MAIN, TIMEOUT  # noqa: E402


@pytest.fixture(scope="session")
def app_dirs(tmp_path_factory):
    """One cache and one runs directory for all app tests (the env vars are set per test, see ``app_env``)."""
    return tmp_path_factory.mktemp("cache"), tmp_path_factory.mktemp("runs")


def _env_for(dirs) -> dict[str, str]:
    return {"LEARNGENE_CACHE_DIR": str(dirs[0]), "LEARNGENE_RUNS_DIR": str(dirs[1])}


@pytest.fixture(autouse=True)
def app_env(app_dirs, monkeypatch):
    """Point the app at the test directories for each app test only (other test packages keep their own)."""
    for key, value in _env_for(app_dirs).items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="session")
def small_choice(app_dirs):
    """The built-in ancestor probed with 4 built-in photos, statistics computed once and saved for the app."""
    from app.resources import statistics_path
    from app.state import Choice
    from learngene.ancestors import load_ancestor
    from learngene.attention.statistics import compute_head_statistics
    from learngene.probes import load_probe_images

    saved = {key: os.environ.get(key) for key in _env_for(app_dirs)}
    os.environ.update(_env_for(app_dirs))
    try:
        choice = Choice(num_images=4)
        ancestor = load_ancestor("builtin")
        probes = load_probe_images("builtin", ancestor.summary, 4)
        stats = compute_head_statistics(ancestor.model, probes, ancestor.summary, device="cpu", statistics="all")
        stats.save_json(statistics_path(choice))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return choice


@pytest.fixture
def saved_session(small_choice):
    """Reset the app's saved session to the small choice and the paper's thresholds before each test."""
    from app.state import app_dir

    (app_dir() / "session.json").write_text(json.dumps({"choice": asdict(small_choice), "eps": 10.0, "min_heads": 1}))
    return small_choice


@pytest.fixture
def app(saved_session):
    """A fresh AppTest of the whole app (its first run shows the Ancestor page)."""
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(MAIN, default_timeout=TIMEOUT)


@pytest.fixture(scope="session", autouse=True)
def stop_umap_worker():
    """Stop the shared UMAP worker process at the end (the Heads page starts one): pytest would otherwise wait at
    exit for a fit still compiling."""
    yield
    from app import analysis

    analysis.umap_worker.close()
