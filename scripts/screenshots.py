"""Screenshots of every page for docs/screenshots/, taken by Debian's Chromium through Playwright.

Prepares a realistic session in a fresh data directory (full built-in statistics, a saved 2-layer descendant, two
tiny fine-tuning runs on the offline digits set: cluster-learngene vs scratch), starts the app, times the first
page, and photographs each page. Needs /usr/bin/chromium (apt-get install -y chromium).

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def prepare(data: Path) -> None:
    os.environ["LEARNGENE_CACHE_DIR"] = str(data / "cache")
    os.environ["LEARNGENE_RUNS_DIR"] = str(data / "runs")
    from app.resources import statistics_path
    from app.state import Choice, app_dir
    from learngene.ancestors import load_ancestor
    from learngene.attention.statistics import compute_head_statistics
    from learngene.descendant import DescendantSpec, build_descendant, save_descendant
    from learngene.probes import load_probe_images
    from learngene.runs import RunManager
    from learngene.training.config import TrainConfig

    choice = Choice()
    ancestor = load_ancestor("builtin")
    stats = compute_head_statistics(ancestor.model, load_probe_images("builtin", ancestor.summary), ancestor.summary,
                                    device="cpu", statistics="all")
    stats.save_json(statistics_path(choice))
    folders = {}
    for init in ("cluster-learngene", "scratch"):
        spec = DescendantSpec(depth=2, width_ratio=2.0, img_size=28, num_classes=10, init=init)
        built = build_descendant(ancestor, spec, distances=stats.mean_attention_distance)
        folders[init] = save_descendant(built, data / "descendants" / f"{init}-L2-w2", force=True)
    (app_dir() / "session.json").write_text(json.dumps({
        "choice": asdict(choice), "eps": 10.0, "min_heads": 1,
        "remembered": {"last_descendant": str(folders["cluster-learngene"])},
    }))
    manager = RunManager(cpu_slots=2)
    recipe = dict(dataset="digits", img_size=28, batch_size=32, epochs=4, lr=1e-3, warmup_epochs=0.5,
                  workers=0, device="cpu", log_every=5, randaugment="none", mixup=0, cutmix=0, reprob=0)
    ids = [manager.submit(TrainConfig(descendant=str(folder), **recipe), name=f"digits-{init}")
           for init, folder in folders.items()]
    for run_id in ids:
        record = manager.wait(run_id, timeout_s=900)
        print(f"run {record['name']}: {record['state']}, best top-1 {record['best_top1']}")


def shoot(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    from app import serve

    port = serve.free_port()
    started = time.monotonic()
    process = serve.start(port, log_path=Path(tempfile.gettempdir()) / "learngene-screenshots-streamlit.log")
    try:
        serve.wait_healthy(port, process, timeout=120)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=serve.CHROMIUM, args=serve.CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 2000})
            base = f"http://127.0.0.1:{port}"
            page.goto(base)
            page.get_by_role("heading", name="Ancestor").wait_for(timeout=60_000)
            print(f"first page visible {time.monotonic() - started:.1f} s after `streamlit run`")

            def snap(name: str, ready: str, charts: int = 0, timeout: int = 120_000, idle: bool = True) -> None:
                page.get_by_text(ready).first.wait_for(timeout=timeout)
                if idle:  # the script run has finished (a polling fragment never idles: skip it there)
                    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=timeout)
                page.wait_for_function(  # every plotly chart drawn (not just its placeholder)
                    f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {charts}", timeout=timeout)
                page.wait_for_timeout(2000)
                page.screenshot(path=str(out / f"{name}.png"))
                print(f"saved {out / name}.png")

            snap("1_ancestor", "Mean entropy")
            page.goto(f"{base}/heads")
            snap("2_heads", "Centroids in priority order", charts=2)
            for view, ready, name in (("Eps sweep", "Clusters per layer as Eps sweeps", "2_heads_sweep"),
                                      ("Attention maps", "query CLS", "2_heads_attention"),
                                      ("Similarity", "All heads across layers", "2_heads_similarity"),
                                      ("Heads in 2-D", "Heads in 2-D (", "2_heads_embedding")):
                page.get_by_text(view, exact=True).click()
                page.wait_for_timeout(1500)
                if view == "Heads in 2-D":  # UMAP when its worker is ready within 3 minutes, else the PCA view
                    try:
                        page.get_by_text("Heads in 2-D (UMAP").first.wait_for(timeout=180_000)
                    except Exception:
                        print("UMAP not ready: the screenshot shows PCA")
                snap(name, ready, charts=2 if view != "Similarity" else 3, idle=view != "Heads in 2-D")
            page.goto(f"{base}/descendants")
            snap("3_descendants", "Inheritance map", charts=2)
            page.goto(f"{base}/finetune")
            page.get_by_text("Equivalent command").first.wait_for(timeout=120_000)
            page.get_by_role("button", name="Estimate duration").click()  # times 3 steps of the saved descendant
            page.mouse.move(0, 0)  # no tooltip over the page
            snap("4_finetune", "Estimated duration:")
            page.goto(f"{base}/runs")
            # The Runs page ends with the parameters-vs-top-1 chart: a taller window keeps it whole (the app's main
            # area scrolls inside the page, so a full-page screenshot would still cut it).
            page.set_viewport_size({"width": 1500, "height": 2200})
            snap("5_runs", "Parameters vs best top-1", charts=6)
            browser.close()
    finally:
        serve.stop(process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--data", help="keep the prepared session in this folder and reuse it next time")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.data:  # reuse a prepared data directory (prepare once, shoot many times)
        data = Path(args.data)
        fresh = not (data / "runs").is_dir()
        os.environ["LEARNGENE_CACHE_DIR"], os.environ["LEARNGENE_RUNS_DIR"] = str(data / "cache"), str(data / "runs")
        if fresh:
            prepare(data)
        shoot(out)
        return 0
    with tempfile.TemporaryDirectory(prefix="learngene-shots-") as tmp:
        prepare(Path(tmp))
        shoot(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
