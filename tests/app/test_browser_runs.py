"""The run lifecycle in a real browser (Debian's Chromium, driven by Playwright): launch a tiny run from the Fine-tune
page, then Stop, Resume and Clone it on the Runs page and let both runs finish.

After every action the page must show the new state (and the step) within 4 s; whenever the selected run is running
its "Stop run" button must be enabled; no exception text may ever appear, nor Streamlit's own "Stop"; the server's
log must stay free of tracebacks; no metric's value may be cut off ("succee…"). Skips where no Chromium is installed, except under CI=true.
"""

from __future__ import annotations

import os
import re
import time

import pytest
from apptest_support import app_server

from app import serve

pytestmark = pytest.mark.browser

REACT_MS = 4_000  # the page must show the outcome of an action within this (on a machine that is not oversubscribed)


def react_ms() -> int:
    """:data:`REACT_MS`, stretched by how oversubscribed the CPUs are right now (load average per core above 1):
    on a shared 2-core machine running several test suites, every process gets a fraction of a core."""
    return int(REACT_MS * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1)))
RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")
# Long enough that Stop lands mid-run: the engine reads its metrics once per log line now, and on a quiet machine
# this run trains about 12 steps a second, so 60 steps ended before a Stop clicked after step 10 could arrive.
STEPS = 170  # within the one epoch (179 steps of 8 digits images)
TINY_FORM = {"Epochs": "1", "Max steps (0 = all)": str(STEPS), "Batch size (per process)": "8", "Resolution (px)": "16",
             "Data workers (-1 = auto)": "0"}
TINY_FLAGS = (f"--max-steps {STEPS}", "--batch-size 8", "--img-size 16", "--workers 0", "--device cpu")

# One read of everything the checks compare, in a single JS call so the values come from the same moment.
SNAPSHOT_JS = """() => {
  const metric = [...document.querySelectorAll('[data-testid="stMetric"]')]
    .find(m => (m.querySelector('[data-testid="stMetricLabel"]') || {}).innerText === 'State');
  const buttons = [...document.querySelectorAll('button')].filter(b => b.offsetParent !== null);
  const stop = buttons.find(b => b.innerText.trim() === 'Stop run');
  const picker = document.querySelector('input[role="combobox"][aria-label="Run"]');
  const progress = document.querySelector('[data-testid="stProgress"]');
  return {
    state: metric ? metric.querySelector('[data-testid="stMetricValue"]').innerText.trim() : null,
    stop_enabled: stop ? !stop.disabled : null,
    picker: picker ? picker.value.trim() : null,
    progress: progress ? progress.innerText.trim() : null,
    exceptions: document.querySelectorAll('[data-testid="stException"]').length
      + (document.body.innerText.includes('Traceback') ? 1 : 0),
    script_stop: buttons.filter(b => b.innerText.trim() === 'Stop').length,
    stale: !!document.querySelector('[data-stale="true"]'),
    clipped: [...document.querySelectorAll('[data-testid="stMetricValue"] > div')]
      .filter(d => d.scrollWidth > d.clientWidth + 1).map(d => d.innerText),
  };
}"""


@pytest.fixture
def server(tmp_path):
    log = tmp_path / "streamlit.log"
    env = {"LEARNGENE_RUNS_DIR": str(tmp_path / "runs"), "LEARNGENE_CACHE_DIR": str(tmp_path / "cache")}
    with app_server(log, env) as url:
        yield url, log
    lines = [line for line in log.read_text(errors="replace").splitlines()
             if "Traceback" in line or "Exception" in line]
    assert not lines, "\n".join(lines)


class Watcher:
    """Samples the Runs page, checking the invariants on every sample, until a condition holds."""

    def __init__(self, page):
        self.page = page
        self.last: dict = {}

    def sample(self) -> dict:
        now = self.page.evaluate(SNAPSHOT_JS)
        assert now["exceptions"] == 0, self.page.inner_text("body")[-3000:]
        assert now["script_stop"] == 0, "Streamlit's own Stop is offered beside 'Stop run'"
        assert not now["clipped"], f"metric values cut off with an ellipsis: {now['clipped']}"
        running = (now["state"] or "").startswith(("running", "queued"))
        # Mid-render (some elements still stale) the new button may sit beside the old state: judge whole renders.
        assert now["stale"] or not running or now["stop_enabled"], f"Stop disabled while {now}"
        self.last = now
        return now

    def until(self, condition, timeout_ms: int, what: str) -> dict:
        started = time.monotonic()
        deadline = started + timeout_ms / 1000
        while True:
            now = self.sample()
            if condition(now):
                print(f"{what}: {time.monotonic() - started:.1f} s (allowed {timeout_ms / 1000:.0f} s)")
                return now
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout_ms / 1000:.0f} s: {what}; last seen {now}")
            time.sleep(0.25)


def _step(snapshot: dict) -> int:
    match = re.search(r"step (\d+)/", snapshot["progress"] or "")
    return int(match.group(1)) if match else -1


def _click(page, name: str) -> None:
    """Click a button between two refreshes of the page (while none of its elements is stale), as a user does."""
    page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=30_000)
    page.get_by_role("button", name=name, exact=True).click()


def _fill_tiny_form(page) -> None:
    page.get_by_text("A timm model with random weights").click()
    for label, value in TINY_FORM.items():
        box = page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Enter")
    page.get_by_label("Device", exact=True).click()
    page.get_by_role("option", name="cpu", exact=True).click()
    page.get_by_label("Run name (optional)").fill("tiny")
    page.get_by_label("Run name (optional)").press("Enter")


def test_launch_stop_resume_clone_in_a_browser(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, _ = server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=serve.CHROMIUM, args=serve.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.goto(f"{base}/finetune", timeout=60_000)
            page.get_by_text("A timm model with random weights").wait_for(timeout=90_000)
            _fill_tiny_form(page)
            command = page.locator("pre").filter(has_text="learngene train").first
            for flag in TINY_FLAGS:
                expect(command).to_contain_text(flag, timeout=120_000)  # the first check imports torch

            page.get_by_role("button", name="Launch", exact=True).click()  # launch
            queued = page.get_by_text("Queued run")
            expect(queued).to_be_visible(timeout=react_ms())
            run_id = RUN_ID.search(queued.inner_text()).group(0)

            page.goto(f"{base}/runs", timeout=60_000)
            watch = Watcher(page)
            watch.until(lambda s: s["state"] in ("queued", "running") and s["picker"], 60_000,
                        "the launched run on the Runs page")  # (the first visit loads the widgets' code)
            assert watch.last["picker"] == f"tiny · {run_id}", watch.last
            running = watch.until(lambda s: s["state"] == "running" and _step(s) >= 10, 180_000,
                                  "the run training (step 10 logged)")
            assert running["stop_enabled"]

            _click(page, "Stop run")  # stop
            watch.until(lambda s: s["state"] in ("running (stopping)", "stopped"), react_ms(), "stop requested")
            stopped = watch.until(lambda s: s["state"] == "stopped", 60_000, "the run stopped")
            stopped_at = _step(stopped)
            assert stopped_at >= 10 and not stopped["stop_enabled"]

            _click(page, "Resume")  # resume
            watch.until(lambda s: s["state"] in ("queued", "running") and s["stop_enabled"], react_ms(), "resumed")
            resumed = watch.until(lambda s: s["state"] == "running" and _step(s) > stopped_at, 120_000,
                                  "the resumed run training past its checkpoint")
            assert _step(resumed) >= stopped_at  # continued, not restarted from 0

            _click(page, "Clone")  # clone
            # The picker can render a moment before the clone's State metric does: wait for both.
            clone = watch.until(lambda s: (s["picker"] or "").startswith("tiny (clone)") and s["state"], react_ms(),
                                "the clone selected in the picker")
            assert clone["state"] in ("queued", "running"), clone
            clone_id = RUN_ID.search(clone["picker"]).group(0)
            assert clone_id != run_id
            watch.until(lambda s: s["state"] == "succeeded" and _step(s) == STEPS, 240_000, "the clone succeeded")

            page.get_by_label("Run", exact=True).click()  # back to the first run
            page.get_by_role("option", name=f"tiny · {run_id}").click()
            done = watch.until(lambda s: s["picker"] == f"tiny · {run_id}" and s["progress"].startswith("tiny: "),
                               react_ms(), "the first run selected")
            assert done["state"] == "succeeded" and _step(done) == STEPS
            assert re.search(r"epoch 1/1", done["progress"]), done

            # The log tail's lines wrap: its eval and start lines are longer than the panel, and their ends (the best
            # top-1, the world size) sat behind a horizontal scroll, 235 px of them at this width.
            page.get_by_text("Log tail", exact=True).click()
            log = page.locator('[data-testid="stExpander"] [data-testid="stCode"] pre').first
            expect(log).to_contain_text("succeeded", timeout=react_ms())
            hidden = log.evaluate("e => e.scrollWidth - e.clientWidth")
            assert hidden <= 1, f"log tail lines cut off at the right edge ({hidden} px hidden)"
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)  # kept by pytest's tmp_path
            raise
        finally:
            browser.close()
