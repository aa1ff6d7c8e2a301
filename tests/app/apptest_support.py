"""Helpers shared by the app tests (a uniquely named module: every test folder has its own ``conftest``)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAIN = str(ROOT / "app" / "main.py")
PAGES = ROOT / "pages"
TIMEOUT = 120  # AppTest's default of 3 s is far too short for loading a model on a busy 2-core machine


def page(name: str) -> str:
    return str(PAGES / name)


def metric(at, label: str):
    return next(m.value for m in at.metric if m.label == label)


def assert_clean(at) -> None:
    assert not at.exception, [e.message for e in at.exception]
