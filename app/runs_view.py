"""The Runs page's helpers: the run manager, tables, live panel figures, params per run."""

from __future__ import annotations

import contextlib
import json
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from app.charts import PALETTE, figure
from app.text import error_markdown, markdown_text
from learngene.output_dir import DESCENDANT_WEIGHTS
from learngene.paths import runs_dir

ACTIVE = ("queued", "running")


@st.cache_resource(show_spinner=False)
def _manager(root: str):
    from learngene.runs import RunManager

    return RunManager(root)


def manager():
    """The run manager over the runs root ($LEARNGENE_RUNS_DIR or the user data directory).

    The cached manager is dropped when the root's registry file has gone (the runs folder deleted or emptied while
    the app runs): the old one would recreate an empty ``runs.db`` without tables on its next read and report it as
    damaged on every tick, while a new one starts a fresh, empty registry.
    """
    from learngene.runs.registry import DB_NAME

    root = runs_dir()
    if not (root / DB_NAME).is_file():
        _manager.clear()
    return _manager(str(root))


@contextlib.contextmanager
def registry_errors(show: bool = True) -> Iterator[None]:
    """Around a fragment of the Runs page: a LearngeneError (the registry deleted, damaged or locked, at any point
    of the render) becomes one line with its fix instead of a traceback on every tick; the cached manager is
    dropped so that the next tick opens (and checks) the registry afresh, e.g. once the user has rebuilt it."""
    from learngene.errors import LearngeneError

    try:
        yield
    except LearngeneError as error:
        _manager.clear()
        if show:
            st.error(f"{error_markdown(error)}. This page checks again every {TICK_S:g} s.")


MISSING = "-"  # what every view shows for a value the run has not produced yet
TICK_S = 2.0  # how often the Runs page re-reads the registry (a state change shows within ~2 ticks)
SELECTED = "selected_run"  # the run the Runs page shows; the Fine-tune page sets it after a launch
PICKER = "run_picker"
NOTICE = "runs_notice"  # (kind, text, shown until) left by a button callback for the renders that follow
NOTICE_S = 10.0  # how long a button's outcome stays: shown once, it vanished at the next tick, often within 1 s


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not np.isfinite(seconds):
        return MISSING
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def fmt(value: Any, spec: str = "") -> str:
    """``value`` formatted with ``spec``, or :data:`MISSING` when there is none (None or NaN)."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return MISSING
    return format(value, spec)


def run_label(record: dict[str, Any]) -> str:
    """The run's name in pickers: stable for the run's whole life (the state is shown beside it, never in it,
    because a select widget keeps its value by label and a changing label would lose the selection)."""
    name, run_id = record["name"], record["run_id"]
    return run_id if name == run_id else f"{name} · {run_id}"


def epochs_of(record: dict[str, Any]) -> int | None:
    epochs = (record.get("config") or {}).get("epochs")
    return int(epochs) if isinstance(epochs, int) and epochs > 0 else None


def epoch_text(record: dict[str, Any]) -> str:
    """1-based epoch out of the run's epochs ("3/4"); the metrics log counts epochs from 0."""
    epoch, epochs = record.get("epoch"), epochs_of(record)
    if epoch is None:
        return MISSING
    shown = int(epoch) + 1
    return f"{min(shown, epochs)}/{epochs}" if epochs else str(shown)


def step_text(record: dict[str, Any]) -> str:
    step, total = record.get("step"), record.get("total_steps")
    if step is None:
        return MISSING
    return f"{step}/{total}" if total else str(step)


def state_text(record: dict[str, Any]) -> str:
    """The run's state in full; a running run asked to stop says so until it has saved and exited."""
    if record["state"] == "running" and record.get("stop_requested"):
        return "running (stopping)"
    return record["state"]


def clone_name(parent: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """A readable name for a clone of ``parent``: "<name> (clone)", then "(clone 2)", ... if that is taken."""
    taken = {r["name"] for r in records}
    base = f"{parent['name']} (clone)"
    if base not in taken:
        return base
    number = 2
    while f"{parent['name']} (clone {number})" in taken:
        number += 1
    return f"{parent['name']} (clone {number})"


def runs_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run, newest first; text columns show :data:`MISSING` for what is not known yet."""
    rows = []
    for r in records:
        rows.append({
            "name": r["name"], "state": state_text(r), "progress": r["progress"],
            "epoch": epoch_text(r), "step": step_text(r), "best top-1": fmt(r["best_top1"], ".2f"),
            "loss": fmt(r["loss"], ".4f"), "images/s": fmt(r["images_per_s"], ".1f") if r["images_per_s"] else MISSING,
            "launcher": r["launcher"], "created": time.strftime("%m-%d %H:%M:%S", time.localtime(r["created"])),
            "run id": r["run_id"],
        })
    return pd.DataFrame(rows)


TABLE_COLUMNS = {
    "name": st.column_config.TextColumn("name", width="medium"),
    "state": st.column_config.TextColumn("state", width="medium"),
    "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
    "run id": st.column_config.TextColumn("run id", width="medium"),
}


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
    data = table.dropna(subset=["params", "best top-1"]) if len(table) else table
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


def live_panel(record: dict[str, Any]) -> None:
    """One run as just read from the registry: progress with ETA, metrics, curves, log tail, error tail."""
    mgr = manager()
    run_id, state = record["run_id"], record["state"]
    folder = mgr.run_dir(run_id)
    if not folder.is_dir():
        # The registry still lists it, but its logs, metrics and checkpoints went with the folder: say so instead
        # of showing a run that never logged a step.
        st.warning(error_markdown(
            f"This run's folder {folder} is gone from disk (deleted or moved): its logs, metrics and checkpoints "
            "are lost, so it cannot be resumed. Clone still works (its settings are in the registry); "
            f"`learngene runs rebuild-registry --runs-dir {shlex.quote(str(folder.parent))}` drops it from the list."))
    progress = record["progress"] or 0.0
    eta = f", ETA {fmt_duration(record['eta_s'])}" if state == "running" and record["eta_s"] is not None else ""
    st.progress(progress, text=f"**{markdown_text(record['name'])}**: {state_text(record)}, epoch {epoch_text(record)}, "
                               f"step {step_text(record)} ({progress:.0%}){eta}")
    train, evals = split_metrics(mgr.read_metrics(run_id))
    last_train = train.iloc[-1] if not train.empty else {}
    # Two rows of three: in one row of six, "running (stopping)" and an lr like 3.66e-06 did not fit their columns.
    cols = [*st.columns(3), *st.columns(3)]
    cols[0].metric("State", state_text(record))
    cols[1].metric("Train loss", fmt(record["loss"], ".4f"))
    cols[2].metric("Eval top-1", fmt(record["top1"], ".2f"),
                   help=f"best {record['best_top1']:.2f}" if record["best_top1"] is not None else None)
    cols[3].metric("lr", fmt(last_train["lr"], ".2e") if "lr" in last_train else MISSING)
    cols[4].metric("Images/s", fmt(record["images_per_s"], ".1f") if record["images_per_s"] else MISSING)
    gpu = last_train.get("gpu_mem_mb") if hasattr(last_train, "get") else None
    cols[5].metric("GPU memory", fmt(gpu, ".0f") + " MiB" if fmt(gpu) != MISSING else MISSING)
    if state == "failed" and record.get("error_tail"):
        reason, rest = failure_lines(record["error_tail"])
        st.error(f"**The run failed:** {markdown_text(reason)}")
        if rest:
            st.code("\n".join(rest), language="text", wrap_lines=True)
    elif record.get("message"):
        st.caption(markdown_text(record["message"]))  # the worker's words, with paths or names in them
    left, mid, right = st.columns(3)
    with left:
        chart_or_note(curves_figure([("train", train, "loss"), ("eval", evals, "loss")], "Loss", "loss"),
                      "no training step logged yet", f"loss_{run_id}")
    with mid:
        chart_or_note(curves_figure([("eval top-1", evals, "top1"), ("eval top-5", evals, "top5")], "Accuracy",
                                    "%"), "no finished evaluation yet", f"acc_{run_id}")
    with right:
        chart_or_note(curves_figure([("lr", train, "lr")], "Learning rate", "lr"), "no training step logged yet",
                      f"lr_{run_id}")
    with st.expander("Log tail", expanded=state == "failed"):
        # Wrapped: an eval line ends with the best top-1, beyond the panel's edge at usual widths.
        st.code("\n".join(mgr.log_tail(run_id, 40)) or "(no output yet)", language="text", wrap_lines=True)
    st.caption("Equivalent command: " + markdown_text(shlex.join(record.get("command") or [])))


def failure_lines(error_tail: str) -> tuple[str, list[str]]:
    """(the failure's reason, the stderr lines that add to it) from a record's ``error_tail``.

    The registry stores the reason, then the last lines of stderr, which usually repeat it twice (the logged error
    and the CLI's ``error:`` line): shown together in one code block the reason appeared three times, each line cut
    off at the block's right edge before its end.
    """
    reason, *tail = error_tail.strip().splitlines() or [""]
    return reason, [line for line in tail if line.strip() and reason not in line]


def chart_or_note(fig, note: str, key: str) -> None:
    """The chart, or a one-line note instead of empty axes when it has nothing to draw."""
    if any(len(trace.x or ()) for trace in fig.data):
        st.plotly_chart(fig, key=key)
    else:
        st.info(f"{fig.layout.title.text}: {note}.")


def notice() -> None:
    """Show what the last button did, for :data:`NOTICE_S` seconds of the page's ticks (or until the next click)."""
    kind, text, until = st.session_state.get(NOTICE, (None, None, 0.0))
    if time.monotonic() > until:
        st.session_state.pop(NOTICE, None)
        return
    if kind == "error":
        st.error(text)
    elif kind:
        st.success(text)


def act(action: str, run_id: str, epochs: int | None = None) -> None:
    """Button callback: stop, resume or clone a run. Runs before the page re-reads the registry, so the render
    that follows the click already shows the new state; the outcome (or the error, never raised) is left in
    :data:`NOTICE`."""
    from learngene.errors import LearngeneError

    mgr = manager()
    try:
        if action == "stop":
            # A queued run is stopped at once, before it started (no checkpoint); only a running one saves one.
            before = mgr.get(run_id, schedule=False)["state"]
            state = mgr.stop(run_id)
            text = ("Stop requested: the run saves a checkpoint at the next step and exits" if state == "running"
                    else "Stopped before it started: nothing to resume (Clone queues it again)" if before == "queued"
                    else f"The run had already exited: it is {state}")
        elif action == "resume":
            text = f"Resumed: {mgr.resume(run_id)}"
        else:
            records = mgr.list()
            parent = next(r for r in records if r["run_id"] == run_id)
            name = clone_name(parent, records)
            new = mgr.clone(run_id, {"epochs": int(epochs)} if epochs else None, name=name)
            st.session_state[SELECTED] = st.session_state[PICKER] = new
            text = f"Cloned into {markdown_text(name)} ({new})"
        st.session_state[NOTICE] = ("success", text, time.monotonic() + NOTICE_S)
    except LearngeneError as error:
        st.session_state[NOTICE] = ("error", error_markdown(error), time.monotonic() + NOTICE_S)


def pick_run(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The run picker over the runs just read; returns the selected run's record.

    The selection lives under :data:`SELECTED` (which survives page switches, and which the Fine-tune page and
    Clone set); the widget is seeded from it whenever its own value is missing or gone from the registry.
    """
    ids = [r["run_id"] for r in records]
    labels = {r["run_id"]: run_label(r) for r in records}
    if st.session_state.get(PICKER) not in ids:
        wanted = st.session_state.get(SELECTED)
        st.session_state[PICKER] = wanted if wanted in ids else ids[0]
    selected = st.selectbox("Run", ids, format_func=lambda run_id: labels.get(run_id, run_id), key=PICKER)
    st.session_state[SELECTED] = selected
    return next(r for r in records if r["run_id"] == selected)


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
    with left:
        chart_or_note(curves_figure(losses, "Train loss", "loss"), "no training step logged yet", "cmp_loss")
    with right:
        chart_or_note(curves_figure(accs, "Eval top-1", "%"), "no finished evaluation yet", "cmp_acc")
    table = pd.DataFrame(rows)
    shown = table.assign(**{"params": [fmt(p / 1e6, ".2f") + " M" if p else MISSING for p in table["params"]],
                            "best top-1": [fmt(v, ".2f") for v in table["best top-1"]],
                            "epochs": [fmt(v) for v in table["epochs"]]})
    st.dataframe(shown, hide_index=True, column_config=TABLE_COLUMNS)
    chart_or_note(comparison_figure(table), "no finished evaluation yet", "cmp_scatter")


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
