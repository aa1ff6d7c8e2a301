"""The Runs page when the disk changes under it: the runs folder deleted, the registry damaged, one run's folder
deleted. Each found in a browser as a traceback or a run shown as if nothing had happened."""

from __future__ import annotations

import shutil

from apptest_support import assert_clean, page, shown

from learngene.runs import RunManager
from learngene.training.config import TrainConfig


def _runs_page(app, root, monkeypatch):
    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(root))
    at = app.run()
    return at.switch_page(page("5_runs.py")).run()


def _failed_run(root) -> str:
    """A run that fails at once (its worker module does not exist): a real registry row and run folder, no training."""
    manager = RunManager(root, slots=1)
    config = TrainConfig(model="vit_tiny_patch16_224", dataset="digits", max_steps=1).validate()
    run_id = manager.submit(config, name="gone", launcher="local",
                            launcher_options={"worker_module": "learngene.runs.does_not_exist"})
    manager.wait(run_id, timeout_s=60)
    return run_id


def test_the_runs_folder_deleted_while_the_page_is_open_shows_no_runs(app, tmp_path, monkeypatch):
    """The cached manager kept reading a runs.db it had just recreated empty: 'damaged (no such table: runs)' as a
    traceback on every tick."""
    root = tmp_path / "runs"
    _failed_run(root)
    at = _runs_page(app, root, monkeypatch)
    assert_clean(at)
    assert [m.value for m in at.metric if m.label == "State"] == ["failed"]
    shutil.rmtree(root)
    at.run()
    assert_clean(at)
    assert any("No runs yet" in i.value for i in at.info), [i.value for i in at.info]


def test_a_damaged_registry_is_one_line_with_the_fix(app, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    _failed_run(root)
    at = _runs_page(app, root, monkeypatch)
    (root / "runs.db").write_bytes(b"not a database at all" * 10)
    at.run()
    assert_clean(at)
    errors = " ".join(e.value for e in at.error)
    assert "rebuild-registry" in errors, errors


def test_a_run_whose_folder_was_deleted_says_so(app, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    run_id = _failed_run(root)
    at = _runs_page(app, root, monkeypatch)
    shutil.rmtree(root / run_id)
    at.run()
    assert_clean(at)
    warnings = " ".join(w.value for w in at.warning)
    assert "gone from disk" in shown(warnings) and str(root / run_id) in shown(warnings), warnings



def _damaged_mid_render(root: str) -> None:
    """A Runs-page fragment body during which the registry is damaged between two reads (the runs folder was
    deleted while the page drew the panel: the list read worked, the metrics read after it failed)."""
    from pathlib import Path

    import streamlit as st

    from app import runs_view

    with runs_view.registry_errors():
        records = runs_view.manager().list()
        st.write(f"{len(records)} runs")
        (Path(root) / "runs.db").write_bytes(b"not a database" * 20)
        runs_view.manager().read_metrics(records[0]["run_id"])


def test_a_registry_damaged_during_a_render_is_one_line_too(tmp_path, monkeypatch):
    """Found in a browser: the folder check passed, then the panel's metrics read raised a traceback."""
    from apptest_support import TIMEOUT
    from streamlit.testing.v1 import AppTest

    root = tmp_path / "runs"
    _failed_run(root)
    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(root))
    at = AppTest.from_function(_damaged_mid_render, args=(str(root),), default_timeout=TIMEOUT).run()
    assert_clean(at)
    assert "rebuild-registry" in " ".join(e.value for e in at.error), [e.value for e in at.error]


def test_a_failed_run_shows_its_reason_once_in_full(app, tmp_path, monkeypatch):
    """Found in a browser: the reason was shown three times in one code block, each line cut off at its right edge
    before the part that names the problem (here the argument 'foo')."""
    root = tmp_path / "runs"
    manager = RunManager(root, slots=1)
    config = TrainConfig(model="vit_tiny_patch16_224", model_kwargs={"foo": 1}, dataset="digits", max_steps=1,
                         workers=0, device="cpu").validate()
    manager.wait(manager.submit(config, name="bad-args"), timeout_s=120)
    at = _runs_page(app, root, monkeypatch)
    assert_clean(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].count("unexpected keyword argument") == 1, errors
    # The markdown shows the text as written: VisionTransformer.__init__() (not a bold "init"), and the 'foo'.
    assert r"VisionTransformer.\_\_init\_\_\(\)" in errors[0] and "'foo'" in errors[0], errors
