"""Cold start: seconds from `streamlit run app/main.py` (headless) to the first page's content in Chromium.

Each repeat starts a fresh server (the same command as ``make run``, :func:`app.serve.server_command`), opens the
app's root URL in Debian's Chromium through Playwright as soon as the server answers its health check, and stops
the clock when the Ancestor page shows the built-in ancestor's architecture card (its "Layers" metric), i.e. the
first page's real content, not Streamlit's skeleton. Reported: server healthy, the page's title and its content (all
from the start of the process), and the 1-minute load average before and after each repeat (the goal, under 3 s, is for a quiet
machine: read the numbers beside the load). The built-in weights are converted once before timing (``make run``
does that on its first start); ``--fresh-cache`` times that conversion too.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/first_page.py [--repeats 3] [--fresh-cache] [--returning]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOAL_S = 3.0
VIEWPORT = {"width": 1400, "height": 1000}


def timed_start(page, port: int, env: dict[str, str], log: Path) -> tuple[float, float, float]:
    """Start a server on ``port`` and open it in ``page``: seconds from the process start to a healthy server, to
    the page's title, and to its content."""
    from app import serve

    started = time.monotonic()
    process = serve.start(port, env=env, log_path=log)
    try:
        serve.wait_healthy(port, process, timeout=180)
        healthy = time.monotonic() - started
        page.goto(f"http://127.0.0.1:{port}/", timeout=180_000)
        page.get_by_role("heading", name="Ancestor").first.wait_for(timeout=180_000)
        title = time.monotonic() - started
        page.locator('[data-testid="stMetricLabel"]', has_text="Layers").first.wait_for(timeout=180_000)
        return healthy, title, time.monotonic() - started
    finally:
        serve.stop(process)


def one_start(env: dict[str, str], log: Path) -> tuple[float, float, float]:
    """A first visit: a new browser (empty cache) opens a new server."""
    from playwright.sync_api import sync_playwright

    from app import serve

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=serve.CHROMIUM, args=serve.CHROMIUM_ARGS)
        try:
            return timed_start(browser.new_page(viewport=VIEWPORT), serve.free_port(), env, log)
        finally:
            browser.close()


def returning_starts(env: dict[str, str], logs: list[Path]) -> list[tuple[float, float, float]]:
    """A returning visitor: one browser that opened the app at the same address before (as ``make run`` serves it
    at one port day after day), so Streamlit's scripts come from its cache (they are served ``immutable``)."""
    from playwright.sync_api import sync_playwright

    from app import serve

    port = serve.free_port()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=serve.CHROMIUM, args=serve.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            timed_start(page, port, env, logs[0].with_name("warm-up.log"))  # the earlier visit: fills the cache
            return [timed_start(page, port, env, log) for log in logs]
        finally:
            browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh server starts (median reported)")
    parser.add_argument("--fresh-cache", action="store_true",
                        help="an empty cache directory for every start (times the built-in weights' conversion)")
    parser.add_argument("--returning", action="store_true",
                        help="a browser that opened the app at the same address before (its cache holds Streamlit's "
                             "scripts); default: a new browser for every start")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from app import serve

    if not Path(serve.CHROMIUM).is_file():
        print(f"error: no Chromium at {serve.CHROMIUM} (apt-get install -y chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="learngene-first-page-") as tmp:
        tmp = Path(tmp)
        env = {"LEARNGENE_RUNS_DIR": str(tmp / "runs"), "LEARNGENE_CACHE_DIR": str(tmp / "cache")}
        if not args.fresh_cache:  # a new session whose built-in weights are converted, as after a first `make run`
            from learngene.ancestors.builtin import builtin_state_dict, cached_weights_path

            builtin_state_dict()  # in the user's cache (converted there once)
            (tmp / "cache").mkdir()
            shutil.copy(cached_weights_path(), tmp / "cache" / cached_weights_path().name)
        times = []
        before = os.getloadavg()[0]
        if args.returning:
            starts = returning_starts(env, [tmp / f"streamlit{repeat}.log" for repeat in range(args.repeats)])
        for repeat in range(args.repeats):
            if not args.returning:
                if args.fresh_cache:
                    env["LEARNGENE_CACHE_DIR"] = str(tmp / f"cache{repeat}")
                before = os.getloadavg()[0]
                healthy, title, content = one_start(env, tmp / f"streamlit{repeat}.log")
            else:
                healthy, title, content = starts[repeat]
            times.append(content)
            print(f"start {repeat + 1}: server healthy {healthy:.2f} s, title {title:.2f} s, first page content "
                  f"(architecture card) {content:.2f} s "
                  f"(load average {before:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")
    visitor = "returning visitor (browser cache warm)" if args.returning else "first visit (browser cache empty)"
    print(f"median first page content, {visitor}: {statistics.median(times):.2f} s "
          f"(goal under {GOAL_S:g} s on a quiet machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
