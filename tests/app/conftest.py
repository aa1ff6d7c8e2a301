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
MAIN = str(ROOT / "app" / "main.py")
PAGES = ROOT / "pages"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TIMEOUT = 120


@pytest.fixture(scope="session")
def app_dirs(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    runs = tmp_path_factory.mktemp("runs")
    os.environ["LEARNGENE_CACHE_DIR"] = str(cache)
    os.environ["LEARNGENE_RUNS_DIR"] = str(runs)
    return cache, runs


@pytest.fixture(scope="session")
def small_choice(app_dirs):
    """The built-in ancestor probed with 4 built-in photos, statistics computed once and saved for the app."""
    from app.resources import statistics_path
    from app.state import Choice
    from learngene.ancestors import load_ancestor
    from learngene.attention.statistics import compute_head_statistics
    from learngene.probes import load_probe_images

    choice = Choice(num_images=4)
    ancestor = load_ancestor("builtin")
    probes = load_probe_images("builtin", ancestor.summary, 4)
    compute_head_statistics(ancestor.model, probes, ancestor.summary, device="cpu").save_json(statistics_path(choice))
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


def page(name: str) -> str:
    return str(PAGES / name)


def metric(at, label: str):
    return next(m.value for m in at.metric if m.label == label)


def assert_clean(at) -> None:
    assert not at.exception, [e.message for e in at.exception]
