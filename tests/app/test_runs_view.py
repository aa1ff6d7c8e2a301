"""The Runs page's formatting: 1-based epochs, '-' for what a run has not produced, stable labels, clone names."""

from __future__ import annotations

import math

from app import runs_view


def _record(**changes):
    record = {"run_id": "20260101-000000-abcdef", "name": "tiny", "state": "running", "progress": None,
              "epoch": None, "step": None, "total_steps": None, "best_top1": None, "loss": None,
              "images_per_s": None, "launcher": "local", "created": 0.0, "config": {"epochs": 4},
              "stop_requested": None}
    record.update(changes)
    return record


def test_a_run_without_metrics_shows_dashes_not_none_or_zero():
    row = runs_view.runs_table([_record(state="queued")]).iloc[0]
    for column in ("epoch", "step", "best top-1", "loss", "images/s"):
        assert row[column] == "-", column
    assert row["progress"] is None or math.isnan(row["progress"])  # an empty bar, not 0 %


def test_epochs_are_one_based_and_capped_at_the_run_length():
    assert runs_view.epoch_text(_record(epoch=0)) == "1/4"
    assert runs_view.epoch_text(_record(epoch=3)) == "4/4"  # the last epoch of a finished 4-epoch run
    assert runs_view.epoch_text(_record(epoch=4)) == "4/4"
    assert runs_view.epoch_text(_record(epoch=2, config={})) == "3"


def test_live_values_are_formatted_in_full():
    row = runs_view.runs_table([_record(state="succeeded", progress=1.0, epoch=3, step=88, total_steps=88,
                                        best_top1=64.25, loss=0.123456, images_per_s=12.34)]).iloc[0]
    assert (row["state"], row["epoch"], row["step"], row["best top-1"], row["loss"], row["images/s"]) == \
        ("succeeded", "4/4", "88/88", "64.25", "0.1235", "12.3")
    assert runs_view.state_text(_record(stop_requested=1.0)) == "running (stopping)"


def test_labels_do_not_change_with_the_state_and_clones_get_readable_names():
    running, ended = _record(), _record(state="succeeded", step=88)
    assert runs_view.run_label(running) == runs_view.run_label(ended) == "tiny · 20260101-000000-abcdef"
    assert runs_view.run_label(_record(name="20260101-000000-abcdef")) == "20260101-000000-abcdef"
    parent = _record()
    assert runs_view.clone_name(parent, [parent]) == "tiny (clone)"
    assert runs_view.clone_name(parent, [parent, _record(name="tiny (clone)")]) == "tiny (clone 2)"
