"""The Runs page's helpers: the run manager, tables, live panel figures, params per run."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from app.charts import PALETTE, figure
from learngene.output_dir import DESCENDANT_WEIGHTS
from learngene.paths import runs_dir

ACTIVE = ("queued", "running")


@st.cache_resource(show_spinner=False)
def _manager(root: str):
    from learngene.runs import RunManager

    return RunManager(root)


def manager():
    """The run manager over the runs root ($LEARNGENE_RUNS_DIR or the user data directory)."""
    return _manager(str(runs_dir()))


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "–"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def runs_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for r in records:
        rows.append({
            "name": r["name"], "state": r["state"],
            "progress": r["progress"] if r["progress"] is not None else 0.0,
            "epoch": r["epoch"], "step": r["step"], "best top-1": r["best_top1"], "loss": r["loss"],
            "images/s": round(r["images_per_s"], 1) if r["images_per_s"] else None,
            "launcher": r["launcher"], "created": time.strftime("%m-%d %H:%M:%S", time.localtime(r["created"])),
            "run id": r["run_id"],
        })
    return pd.DataFrame(rows)


def split_metrics(records: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train records, eval records) as data frames (empty frames when there are none yet)."""
    train = pd.DataFrame([r for r in records if r.get("kind") == "train"])
    evals = pd.DataFrame([r for r in records if r.get("kind") == "eval"])
    if "lr" in train:
        train["lr"] = [v[0] if isinstance(v, list) else v for v in train["lr"]]
    return train, evals


def curves_figure(series: list[tuple[str, pd.DataFrame, str]], title: str, y_title: str):
    """Line chart of several (label, frame, column) series against the optimizer step."""
    traces = []
    for i, (label, frame, column) in enumerate(series):
        if frame.empty or column not in frame:
            continue
        traces.append(dict(type="scatter", mode="lines+markers", name=label, x=frame["step"].tolist(),
                           y=frame[column].tolist(), line=dict(color=PALETTE[i % len(PALETTE)]),
                           marker=dict(size=4)))
    return figure(traces, title, height=320, xaxis=dict(title=dict(text="step")),
                  yaxis=dict(title=dict(text=y_title)), legend=dict(orientation="h", y=-0.25))


def comparison_figure(table: pd.DataFrame, reference: dict[str, int] | None = None):
    """Parameters vs best top-1, one point per run."""
    data = table.dropna(subset=["params", "best top-1"])
    traces = [dict(type="scatter", mode="markers+text", x=(data["params"] / 1e6).tolist(),
                   y=data["best top-1"].tolist(), text=data["name"].tolist(), textposition="top center",
                   marker=dict(size=11, color="#1f77b4"), name="runs",
                   hovertemplate="%{text}: %{x:.2f} M params, best top-1 %{y:.2f}<extra></extra>")]
    return figure(traces, "Parameters vs best top-1 (one point per run)", height=380,
                  xaxis=dict(title=dict(text="parameters (M)"), type="log"),
                  yaxis=dict(title=dict(text="best top-1 (%)")))


@st.cache_data(show_spinner=False, max_entries=256)
def run_params(config_json: str) -> int | None:
    """Parameters of a run's model, from its config (None when it cannot be told without training)."""
    config = json.loads(config_json)
    try:
        if config.get("descendant"):
            from safetensors import safe_open

            path = Path(config["descendant"]) / DESCENDANT_WEIGHTS
            with safe_open(str(path), "pt") as handle:
                return int(sum(np.prod(handle.get_slice(k).get_shape()) for k in handle.keys()))
        if config.get("model"):
            import timm
            import torch

            kwargs = dict(config.get("model_kwargs") or {})
            kwargs.setdefault("img_size", config.get("img_size", 224))
            with torch.device("meta"):
                model = timm.create_model(config["model"], num_classes=config.get("num_classes") or 10, **kwargs)
            return sum(p.numel() for p in model.parameters())
        if config.get("ancestor"):
            from learngene.ancestors import load_ancestor
            from learngene.descendant import DescendantSpec, descendant_size

            summary = load_ancestor(config["ancestor"]).summary
            spec = DescendantSpec(depth=config.get("depth"), width_ratio=config.get("width_ratio"),
                                  heads=config.get("heads"), img_size=config.get("img_size"),
                                  num_classes=config.get("num_classes") or 10)
            return int(descendant_size(summary, spec).params)
    except Exception:
        return None
    return None


def live_panel(run_id: str) -> str | None:
    """One run, live: progress with ETA, metrics, curves, log tail, error tail. Returns its state (None if it is
    gone). Safe to call inside a fragment."""
    from learngene.errors import LearngeneError

    mgr = manager()
    try:
        run = mgr.get(run_id)
    except LearngeneError as error:
        st.error(str(error))
        return None
    state = run["state"]
    progress = run["progress"] or 0.0
    eta = f", ETA {fmt_duration(run['eta_s'])}" if state == "running" and run["eta_s"] is not None else ""
    st.progress(progress, text=f"**{run['name']}**: {state}, step {run['step'] or 0}/{run['total_steps'] or '?'}"
                                f" ({progress:.0%}){eta}")
    metrics = mgr.read_metrics(run_id)
    train, evals = split_metrics(metrics)
    last_train = train.iloc[-1] if not train.empty else {}
    cols = st.columns(6)
    cols[0].metric("State", state)
    cols[1].metric("Train loss", f"{run['loss']:.4f}" if run["loss"] is not None else "–")
    cols[2].metric("Eval top-1", f"{run['top1']:.2f}" if run["top1"] is not None else "–",
                   help=f"best {run['best_top1']:.2f}" if run["best_top1"] is not None else None)
    cols[3].metric("lr", f"{last_train['lr']:.2e}" if "lr" in last_train else "–")
    cols[4].metric("Images/s", f"{run['images_per_s']:.1f}" if run["images_per_s"] else "–")
    gpu = last_train.get("gpu_mem_mb") if hasattr(last_train, "get") else None
    cols[5].metric("GPU memory", f"{gpu:.0f} MiB" if gpu is not None and gpu == gpu else "–")
    if state == "failed" and run.get("error_tail"):
        st.error(f"The run failed:\n\n```\n{run['error_tail']}\n```")
    elif run.get("message"):
        st.caption(run["message"])
    left, mid, right = st.columns(3)
    left.plotly_chart(curves_figure([("train", train, "loss"), ("eval", evals, "loss")], "Loss", "loss"),
                      key=f"loss_{run_id}")
    mid.plotly_chart(curves_figure([("eval top-1", evals, "top1"), ("eval top-5", evals, "top5")], "Accuracy",
                                   "%"), key=f"acc_{run_id}")
    right.plotly_chart(curves_figure([("lr", train, "lr")], "Learning rate", "lr"), key=f"lr_{run_id}")
    with st.expander("Log tail", expanded=state == "failed"):
        st.code("\n".join(mgr.log_tail(run_id, 40)) or "(no output yet)", language="text")
    st.caption("Equivalent command: " + shlex.join(run.get("command") or []))
    return state


def act(action: str, run_id: str, epochs: int | None = None) -> None:
    """Stop, resume or clone a run; errors are shown, never raised."""
    from learngene.errors import LearngeneError

    mgr = manager()
    try:
        if action == "stop":
            st.toast(f"{run_id}: {mgr.stop(run_id)}")
        elif action == "resume":
            st.toast(f"{run_id}: {mgr.resume(run_id)}")
        else:
            new = mgr.clone(run_id, {"epochs": int(epochs)} if epochs else None)
            st.session_state["selected_run"] = new
            st.toast(f"cloned into {new}")
    except LearngeneError as error:
        st.error(str(error))


def comparison(records: list[dict[str, Any]], chosen: list[str]) -> None:
    """Overlay the curves of several runs and compare params vs best top-1."""
    mgr = manager()
    by_id = {r["run_id"]: r for r in records}
    losses, accs, rows = [], [], []
    for run_id in chosen:
        run = by_id[run_id]
        train, evals = split_metrics(mgr.read_metrics(run_id))
        losses.append((run["name"], train, "loss"))
        accs.append((run["name"], evals, "top1"))
        rows.append({"name": run["name"], "state": run["state"], "init": _init_of(run["config"]),
                     "params": run_params(json.dumps(run["config"], sort_keys=True)),
                     "best top-1": run["best_top1"], "epochs": run["config"].get("epochs"), "run id": run_id})
    left, right = st.columns(2)
    left.plotly_chart(curves_figure(losses, "Train loss", "loss"), key="cmp_loss")
    right.plotly_chart(curves_figure(accs, "Eval top-1", "%"), key="cmp_acc")
    table = pd.DataFrame(rows)
    st.dataframe(table, hide_index=True)
    st.plotly_chart(comparison_figure(table), key="cmp_scatter")


def _init_of(config: dict[str, Any]) -> str:
    if config.get("descendant"):
        from learngene.descendant.config import DescendantConfig
        from learngene.errors import LearngeneError

        try:
            return DescendantConfig.load(config["descendant"]).init
        except LearngeneError:
            return "descendant"
    if config.get("model"):
        return "scratch (timm)"
    return config.get("init", "")
