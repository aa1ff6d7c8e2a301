"""Background jobs for long work in the app (head statistics): started once, keyed by what they compute, shared.

A Streamlit script reruns on every widget change, and work done on the script thread is thrown away by the next
rerun; two browser sessions would also compute the same thing twice. A :class:`JobBoard` runs each piece of work on
its own thread, keyed by what it computes, so every session (and every rerun) that asks for the same key gets the
same job and reads its progress. The board is a module-level singleton: pages are re-executed on every rerun, but
imported modules are not, so it lives as long as the server process.

Job threads never call ``st.*``: they run backend functions and report through plain attributes that the pages read.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from learngene.errors import LearngeneError

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass
class Job:
    """One piece of background work and what the pages may read about it."""

    key: str
    label: str
    done: int = 0
    total: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    error: str | None = None
    result: Any = None

    @property
    def running(self) -> bool:
        return self.finished is None

    @property
    def failed(self) -> bool:
        return self.finished is not None and self.error is not None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = int(done), int(total)


class JobBoard:
    """Every background job of this server process, by key."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Job | None:
        with self._lock:
            return self._jobs.get(key)

    def start(self, key: str, label: str, work: Callable[[Progress], Any]) -> Job:
        """Start ``work(progress)`` on a thread unless a job for ``key`` is running or has succeeded; return the job.

        A failed job is replaced, so pressing the button again after fixing the cause retries.
        """
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and not job.failed:
                return job
            job = Job(key=key, label=label)
            self._jobs[key] = job
        thread = threading.Thread(target=self._run, args=(job, work), name=f"learngene-job-{key}", daemon=True)
        thread.start()
        return job

    def forget(self, key: str) -> None:
        with self._lock:
            self._jobs.pop(key, None)

    @staticmethod
    def _run(job: Job, work: Callable[[Progress], Any]) -> None:
        try:
            job.result = work(job.progress)
        except LearngeneError as error:
            job.error = str(error)
        except Exception as error:  # noqa: BLE001 - shown to the user as one line; the traceback goes to the log
            log.error("background job %s failed:\n%s", job.key, traceback.format_exc())
            job.error = f"{job.label} failed: {type(error).__name__}: {error}"
        finally:
            job.finished = time.time()


board = JobBoard()


def follow(key: str, draw: Callable[[Job], None], every_s: float = 1.0) -> None:
    """Show the job ``key`` with ``draw(job)`` every ``every_s`` seconds; rerun the page once it has finished.

    Lives on the page's thread (a Streamlit fragment); the job thread itself never calls ``st.*``.
    """
    import streamlit as st

    @st.fragment(run_every=every_s)
    def poll() -> None:
        job = board.get(key)
        if job is None or job.finished:
            st.rerun()
        draw(job)

    poll()
