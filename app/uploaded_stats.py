"""Statistics computed elsewhere: a researcher uploads the CLI's STATS.json (or a bare L x H table of MADs, as JSON
or CSV) so heads can be clustered and descendants designed without recomputing, e.g. with statistics from a GPU
cluster. The upload is kept for the browser session and wins over the statistics saved for the current choice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import streamlit as st

from app.state import app_dir
from app.text import error_markdown
from learngene.errors import LearngeneError

SESSION_KEY = "uploaded_stats"  # path of the accepted upload, per browser session
FILE_TYPES = ["json", "csv", "tsv", "txt"]


def _table_from_text(text: str) -> list[list[float]]:
    """A table of numbers: comma-, tab- or space-separated rows; a header row of words is skipped."""
    dialect = "excel-tab" if "\t" in text else "excel"
    rows = []
    for row in csv.reader(io.StringIO(text), dialect=dialect):
        cells = [cell for part in row for cell in part.split()] if dialect == "excel" and len(row) == 1 else row
        cells = [cell.strip() for cell in cells if cell.strip()]
        if not cells:
            continue
        try:
            rows.append([float(cell) for cell in cells])
        except ValueError:
            if rows:
                raise LearngeneError(f"row {len(rows) + 1} of the table holds something that is not a number: "
                                     f"{', '.join(cells)[:80]}") from None
            continue  # a header line
    return rows


def accept_upload(data: bytes, name: str, summary):
    """Validate an uploaded statistics file against the ancestor ``summary``; save it and return its statistics.

    Raises:
        LearngeneError: one line naming the problem (unreadable file, ragged table, another architecture's shape).
    """
    from learngene.attention.statistics import HeadStatistics, read_stats_file

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise LearngeneError(f"{name} is not a text file: upload STATS.json from `learngene analyze` or a CSV "
                             "table of MADs (one row per layer, one column per head)") from None
    if Path(name).suffix.lower() == ".json" or text.lstrip().startswith(("{", "[")):
        payload = text
    else:
        payload = json.dumps(_table_from_text(text))
    digest = hashlib.sha1(data).hexdigest()[:12]
    path = app_dir() / "uploads" / "statistics" / f"{digest}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(payload)
    try:
        stats = HeadStatistics.from_json(read_stats_file(path))
    except LearngeneError as error:
        path.unlink(missing_ok=True)
        raise LearngeneError(str(error).replace(str(path), name)) from None
    if stats.mean_attention_distance.shape != (summary.num_layers, summary.num_heads):
        path.unlink(missing_ok=True)
        L, H = stats.mean_attention_distance.shape
        source = stats.ancestor.get("arch") if isinstance(stats.ancestor, dict) else None
        raise LearngeneError(
            f"{name} has statistics for {L} layers x {H} heads{f' ({source})' if source else ''}, but the ancestor "
            f"{summary.arch} has {summary.num_layers} x {summary.num_heads}: choose the matching ancestor on the "
            "Ancestor page, or upload statistics of this one")
    if not stats.probe:
        stats.probe = f"uploaded: {name}"
    return stats, path


def uploaded_statistics(summary):
    """The statistics this session uploaded, if they fit ``summary``'s shape; else None."""
    from learngene.attention.statistics import HeadStatistics

    path = st.session_state.get(SESSION_KEY)
    if not path or not Path(path).is_file():
        return None
    try:
        stats = HeadStatistics.load_json(path)
    except LearngeneError:
        return None
    if stats.mean_attention_distance.shape != (summary.num_layers, summary.num_heads):
        return None  # the user switched to another ancestor since
    if not stats.probe:
        stats.probe = f"uploaded: {Path(path).name}"
    return stats


def upload_panel(summary) -> None:
    """An expander to use (or stop using) statistics computed elsewhere."""
    active = uploaded_statistics(summary) is not None
    with st.expander("Use statistics computed elsewhere (STATS.json, or an L x H table of MADs)", expanded=False):
        if active:
            st.caption("This session uses uploaded statistics.")
            if st.button("Stop using the uploaded statistics", key="stats_upload_clear"):
                st.session_state.pop(SESSION_KEY, None)
                st.rerun()
        upload = st.file_uploader("Statistics file", type=FILE_TYPES, key="stats_upload",
                                  help="`learngene analyze --out STATS.json`, a JSON list of L lists of H numbers, "
                                       "or a CSV with one row per layer and one column per head")
        if upload is not None and st.button("Use these statistics", key="stats_upload_use"):
            try:
                _, path = accept_upload(upload.getvalue(), upload.name, summary)
            except LearngeneError as error:
                st.error(error_markdown(error))
                return
            st.session_state[SESSION_KEY] = str(path)
            st.rerun()
