"""README.md's app session, end to end, in a real browser (Debian's Chromium, driven by Playwright).

In the README's order: Ancestor (the built-in one; Compute statistics), Heads (the clustering; move Eps),
Descendants (depth 6, width ratio 2; Build and save), Fine-tune (the saved descendant, the Quick look preset; Launch),
Runs (the run succeeds). As cheap as the README allows: 2 probe images and 5 training steps. No page may show
exception text, and at the end the server's log (the streamlit process's stdout and stderr) must hold no traceback,
error, exception or warning line. Skips where no Chromium is installed, except under CI=true.
"""

from __future__ import annotations

import re
import shutil
from urllib.parse import urlsplit

import pytest
from apptest_support import app_server

from app import serve

pytestmark = pytest.mark.browser

# Server-log lines that must not appear: Python tracebacks, logged errors and exceptions, and warnings (Python's
# `XWarning:` lines, the logging module's `WARNING`, Streamlit's own).
LOG_PROBLEM = re.compile(r"Traceback|Error|Exception|warn", re.IGNORECASE)
STEPS = 5


@pytest.fixture
def server(tmp_path):
    from learngene.ancestors import builtin

    cache = tmp_path / "cache"
    cache.mkdir()
    converted = builtin.cached_weights_path()  # the built-in weights other tests converted already: reuse them
    if converted.is_file():
        shutil.copy(converted, cache / converted.name)
    log = tmp_path / "streamlit.log"
    env = {"LEARNGENE_RUNS_DIR": str(tmp_path / "runs"), "LEARNGENE_CACHE_DIR": str(cache)}
    with app_server(log, env) as url:
        yield url, log


def _no_exception(page, where: str) -> None:
    shown = page.locator('[data-testid="stException"]').count()
    body = page.inner_text("body")
    assert shown == 0 and "Traceback" not in body, f"{where}: {body[-3000:]}"


def _idle(page, timeout: int = 120_000) -> None:
    """Wait until the script run has finished (no stale elements, no running indicator)."""
    page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=timeout)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=timeout)


def _type(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")
    _idle(page)


def test_readme_session_in_a_browser(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, log = server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=serve.CHROMIUM, args=serve.CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        # Everything the page loads comes from this server: the app works offline (a ":material/...:" page icon
        # was fetched from fonts.gstatic.com)
        elsewhere: list[str] = []
        page.on("request", lambda request: elsewhere.append(request.url)
                if urlsplit(request.url).scheme in ("http", "https") and not request.url.startswith(base) else None)
        try:
            # 1. Ancestor: the built-in one is preselected; its card; compute statistics on the built-in photos.
            page.goto(base, timeout=60_000)
            page.get_by_role("heading", name="Ancestor").first.wait_for(timeout=90_000)
            expect(page.get_by_text("vit_small_patch14_dinov2").first).to_be_visible(timeout=120_000)
            _type(page, "Number of probe images (0 = all)", "2")
            page.get_by_role("button", name="Use this ancestor").click()
            _idle(page)
            page.get_by_role("button", name="Compute statistics").click()
            expect(page.get_by_text("Mean entropy")).to_be_visible(timeout=180_000)
            _idle(page)
            _no_exception(page, "Ancestor")

            # 2. Heads: the clustering, and Eps moved with the keyboard.
            page.goto(f"{base}/heads", timeout=60_000)
            expect(page.get_by_text("Centroids in priority order").first).to_be_visible(timeout=120_000)
            slider = page.locator('[data-testid="stSlider"] input[type="range"]').first
            slider.focus()
            page.keyboard.press("ArrowRight")
            _idle(page)
            _no_exception(page, "Heads")

            # 3. Descendants: depth 6, width ratio 2; Build and save; the inheritance map.
            page.goto(f"{base}/descendants", timeout=60_000)
            page.get_by_label("Depth (layers)", exact=True).wait_for(timeout=120_000)
            _type(page, "Depth (layers)", "6")
            _type(page, "Width ratio w (heads = floor(H / w))", "2")
            expect(page.get_by_text("Heads per layer: [3, 3, 3, 3, 3, 3]")).to_be_visible(timeout=60_000)
            page.get_by_role("button", name="Build and save").click()
            expect(page.get_by_text("Saved to").first).to_be_visible(timeout=180_000)
            expect(page.get_by_text("Inheritance map").first).to_be_visible(timeout=60_000)
            _idle(page)
            _no_exception(page, "Descendants")

            # 4. Fine-tune: the saved descendant, the Quick look preset (5 steps here); Launch.
            page.goto(f"{base}/finetune", timeout=60_000)
            expect(page.get_by_text("Equivalent command")).to_be_visible(timeout=120_000)
            command = page.locator("pre").filter(has_text="learngene train").first
            expect(command).to_contain_text("--descendant", timeout=60_000)
            page.get_by_text("Quick look (CPU)", exact=True).click()
            # The browser sends every widget's value with the next change: wait until it shows the preset's values,
            # or typing the steps too early sends the old recipe back and undoes the preset.
            expect(command).to_contain_text("--img-size 28", timeout=60_000)
            _type(page, "Max steps (0 = all)", str(STEPS))
            expect(command).to_contain_text(f"--max-steps {STEPS} ", timeout=60_000)
            expect(command).to_contain_text("--img-size 28", timeout=60_000)
            page.get_by_role("button", name="Launch", exact=True).click()
            expect(page.get_by_text("Queued run")).to_be_visible(timeout=60_000)
            _no_exception(page, "Fine-tune")

            # 5. Runs: the run is listed and succeeds.
            page.goto(f"{base}/runs", timeout=60_000)
            state = page.locator('[data-testid="stMetric"]', has=page.get_by_text("State", exact=True))
            expect(state.locator('[data-testid="stMetricValue"]')).to_have_text("succeeded", timeout=600_000)
            expect(page.get_by_text(f"step {STEPS}/").first).to_be_visible(timeout=30_000)
            _no_exception(page, "Runs")
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)  # kept by pytest's tmp_path
            raise
        finally:
            browser.close()
    problems = [line for line in log.read_text(errors="replace").splitlines() if LOG_PROBLEM.search(line)]
    assert not problems, "\n".join(problems)
    assert not elsewhere, f"requests to other hosts: {sorted(set(elsewhere))}"
