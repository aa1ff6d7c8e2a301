"""benchmarks/gpu_probe.py runs on the CPU with --smoke and writes the probe JSON the results tables are built from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_probe_smoke_writes_every_table(tmp_path):
    out = tmp_path / "gpu_probe.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LEARNGENE_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_probe.py"), "--smoke", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["format"] == "learngene-gpu-probe/1" and not report["stopped_early"]
    widths = [run["tables"][0]["width"] for run in report["runs"]]
    assert widths == ["2", "0.5"]
    for run in report["runs"]:
        (table,) = run["tables"]
        assert run["complete"] and table["null"]["draws"] == 2 and table["cluster_percentile"] is not None
        assert run["command"][:2] == ["learngene", "probe"]
        scored = [r for r in table["rows"] if "linear" in r]
        assert {r["row"] for r in scored} >= {"ancestor", "cluster-learngene", "random-heads", "scratch"}
