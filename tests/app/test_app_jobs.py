"""Background jobs: started once per key, shared by sessions, untouched by reruns, failures reported and retried."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from apptest_support import MAIN, TIMEOUT, assert_clean, page, wait_for_job
from streamlit.testing.v1 import AppTest

from app import jobs
from app.resources import statistics_job_key
from learngene.errors import LearngeneError


def test_one_job_per_key_even_when_started_from_many_threads():
    board = jobs.JobBoard()
    calls, gate = [], threading.Event()

    def work(progress):
        calls.append(1)
        progress(1, 2)
        gate.wait(5)
        progress(2, 2)
        return "done"

    started = []
    threads = [threading.Thread(target=lambda: started.append(board.start("k", "work", work))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(job) for job in started}) == 1 and started[0].running
    gate.set()
    deadline = time.monotonic() + 5
    while started[0].running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == [1] and started[0].result == "done" and started[0].fraction == 1.0
    assert board.start("k", "work", work) is started[0]  # a finished success is reused, not recomputed


def test_a_failed_job_reports_one_line_and_is_retried():
    board = jobs.JobBoard()

    def broken(progress):
        raise LearngeneError("the probe folder is empty: add images")

    job = board.start("k", "work", broken)
    while job.running:
        time.sleep(0.01)
    assert job.failed and job.error == "the probe folder is empty: add images"
    retry = board.start("k", "work", lambda progress: 1)
    assert retry is not job


def test_two_sessions_and_a_rerun_share_one_statistics_computation(app, saved_session, monkeypatch):
    """Two browser sessions ask for statistics of the same new choice; a widget change meanwhile restarts nothing."""
    from app import resources

    calls = []
    real = resources.compute_and_save_statistics

    def counted(*args, **kwargs):
        calls.append(1)
        time.sleep(1.0)  # long enough for the second session and the rerun to arrive while it runs
        return real(*args, **kwargs)

    monkeypatch.setattr(resources, "compute_and_save_statistics", counted)
    choice = replace(saved_session, num_images=3)
    first = app.run()
    first.number_input[1].set_value(3).run()
    first.button(key="use_ancestor").click().run()
    first.button(key="compute_stats").click().run()
    assert_clean(first)
    job = jobs.board.get(statistics_job_key(choice))
    assert job is not None
    first.number_input[1].set_value(3).run()  # any widget change reruns the script: the job goes on
    second = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()  # shares the saved choice (num_images 3)
    second.switch_page(page("2_heads.py")).run()  # the Heads page starts statistics by itself
    assert_clean(second)
    assert jobs.board.get(statistics_job_key(choice)) is job
    assert wait_for_job(job.key).error is None
    assert calls == [1]
    second.run()
    assert_clean(second)
    assert second.slider(key="eps_slider") is not None
