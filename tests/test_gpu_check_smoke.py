"""benchmarks/gpu_check.sh, the one prepared device run, still runs end to end (on the CPU, with SMOKE=1).

A session lent a GPU gets one short call to run it; a benchmark broken by a library change since (it happened: a
probe-set object without ``img_size`` after the statistics started checking it) would waste that call. Nothing here
judges speed, only that every step runs and writes its figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Each step's JSON and a figure it must hold (the one docs/benchmarks.md records from it).
FIGURES = {
    "train_pil.json": "engine_over_synthetic",
    "train_cached.json": "engine_over_synthetic",
    "mad_cuda.json": "plain_fused_images_per_s",
    "data_pipeline_cuda.json": "cached_over_pil",
    "data_pipeline_none_cuda.json": "cached_over_pil",
    "sync_cached.json": "syncs_per_step",
}


@pytest.mark.slow
def test_gpu_check_runs_every_step_and_writes_its_figures(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "DEVICE": "cpu", "SMOKE": "1", "PYTHON": sys.executable,
           "LEARNGENE_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    for name, figure in FIGURES.items():
        report = json.loads((out / name).read_text())
        assert report.get(figure) is not None, (name, report)
