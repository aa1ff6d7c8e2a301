"""One real browser: Debian's Chromium, driven by Playwright, opens the app's Heads page, moves the Eps slider with
the keyboard and sees the number of clusters change. Skips (with the reason) where no Chromium is installed,
except under CI=true, where it must run."""

from __future__ import annotations

import pytest
from apptest_support import app_server

from app import serve

pytestmark = pytest.mark.browser


@pytest.fixture
def server(saved_session, app_dirs, tmp_path):
    with app_server(tmp_path / "streamlit.log") as url:
        yield url


def test_heads_page_slider_changes_cluster_count(server):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=serve.CHROMIUM, args=serve.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{server}/heads", timeout=60_000)
            label = page.get_by_text("Clusters (inherited heads)")
            expect(label).to_be_visible(timeout=90_000)
            before = serve.metric_value(page, "Clusters (inherited heads)")
            slider = page.locator('[data-testid="stSlider"] input[type="range"]').first
            slider.focus()
            page.keyboard.press("End")  # Eps to its maximum: every layer becomes one cluster
            expect(page.locator('[data-testid="stMetric"]', has_text="Clusters (inherited heads)")
                   .locator('[data-testid="stMetricValue"]')).not_to_have_text(before, timeout=30_000)
            after = serve.metric_value(page, "Clusters (inherited heads)")
            assert int(after) == 12 < int(before), (before, after)
        finally:
            browser.close()
