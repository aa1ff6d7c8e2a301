"""Helpers shared by the app tests (a uniquely named module: every test folder has its own ``conftest``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAIN = str(ROOT / "app" / "main.py")
PAGES = ROOT / "pages"
TIMEOUT = 120  # AppTest's default of 3 s is far too short for loading a model on a busy 2-core machine


def page(name: str) -> str:
    return str(PAGES / name)


def metric(at, label: str):
    return next(m.value for m in at.metric if m.label == label)


def shown(source: str) -> str:
    """What a browser shows for ``source`` rendered as markdown, tags dropped. Python-Markdown is the independent
    reference: use it on text whose markup it reads as Streamlit's CommonMark does (``*``, ``_``, ``[..](..)``)."""
    import html
    import re

    import markdown

    return html.unescape(re.sub(r"<[^>]+>", "", markdown.markdown(source)))


def assert_clean(at) -> None:
    assert not at.exception, [e.message for e in at.exception]


def wait_for_job(key: str, timeout_s: float = 120.0):
    """The background job ``key`` (see app/jobs.py) once it has finished; fails the test past ``timeout_s``."""
    import time

    from app import jobs

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = jobs.board.get(key)
        if job is not None and job.finished:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {key} did not finish within {timeout_s} s")


def race_to_submit(root: str, session: int, start, results) -> None:
    """One app session in its own process: wait for the others at ``start`` (a Barrier), then double-click Launch
    three times on the same form; put the run ids it got into ``results``. Its worker module does not exist, so
    the run fails at once instead of training."""
    from app import launch
    from learngene.runs import RunManager
    from learngene.training.config import TrainConfig

    manager = RunManager(root, slots=1)
    config = TrainConfig(model="vit_tiny_patch16_224", dataset="digits", max_steps=1).validate()
    submitted: dict[str, str] = {}
    token = launch.form_token("same form", session)
    start.wait(timeout=120)
    ids = [launch.submit(manager, config, f"s{session}", "local",
                         {"worker_module": "learngene.runs.does_not_exist"}, submitted, token)[0]
           for _ in range(3)]
    manager.list()  # a reader in the same moment as the other sessions' launches
    results.put((session, ids))


@contextlib.contextmanager
def app_server(log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """``make run``'s server on a free port (its output in ``log``), for the real-browser tests; yields its URL.

    Skips where Debian's Chromium is missing, except under CI=true, where the browser tests must run.
    """
    import pytest

    from app import serve

    if not Path(serve.CHROMIUM).is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{serve.CHROMIUM} is missing under CI; .ci/run installs it with apt-get install chromium")
        pytest.skip(f"no Chromium at {serve.CHROMIUM} (apt-get install -y chromium); CI installs it")
    port = serve.free_port()
    process = serve.start(port, env=env, log_path=log)
    try:
        serve.wait_healthy(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.stop(process)
