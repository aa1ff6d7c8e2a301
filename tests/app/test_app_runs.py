"""Fine-tune and Runs: a tiny real run launched from the page appears in Runs and reaches ``succeeded``."""

from __future__ import annotations

import multiprocessing
import shlex
import time

import pytest
from apptest_support import MAIN, TIMEOUT, assert_clean, page, race_to_submit
from streamlit.testing.v1 import AppTest

from learngene.runs import RunManager


def _fill_tiny(at):
    at.radio(key="ft_model_kind").set_value("model").run()
    at.number_input(key="ft_epochs").set_value(1)
    at.number_input(key="ft_max_steps").set_value(4)
    at.number_input(key="ft_batch").set_value(16)
    at.number_input(key="ft_img").set_value(32)
    at.number_input(key="ft_workers").set_value(0)
    at.selectbox(key="ft_device").set_value("cpu")
    at.text_input(key="ft_name").input("tiny-digits")
    return at.run()


def test_launch_tiny_run_and_watch_it_succeed(app):
    at = app.run()
    at.switch_page(page("4_finetune.py")).run()
    assert_clean(at)
    at = _fill_tiny(at)
    assert_clean(at)
    command = at.code[0].value
    assert command.startswith("learngene train --model vit_tiny_patch16_224")
    assert "--max-steps 4" in command and "--name tiny-digits" in command
    at.button(key="launch").click().run()
    assert_clean(at)
    assert at.success, [e.value for e in at.error]
    run_id = at.success[0].value.split("Queued run ")[1].split(":")[0]
    at.button(key="launch").click().run()  # the same form again: not a second run
    assert any("already launched" in i.value for i in at.info)

    runs = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    runs.switch_page(page("5_runs.py")).run()
    assert_clean(runs)

    def row():
        table = runs.dataframe[0].value
        assert (table["name"] == "tiny-digits").sum() == 1  # launched once
        return table[table["run id"] == run_id].iloc[0]

    runs.selectbox(key="run_picker").set_value(run_id).run()
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        state = row()["state"]
        if state in ("succeeded", "failed", "stopped"):
            break
        time.sleep(2)
        runs.run()
    assert_clean(runs)
    assert state == "succeeded", "\n".join(c.value for c in runs.code)
    states = [m.value for m in runs.metric if m.label == "State"]
    assert states == ["succeeded"]
    assert row()["progress"] == pytest.approx(1.0)
    assert len(runs.get("plotly_chart")) >= 3  # loss, accuracy, lr (+ the comparison charts)


def test_bad_recipe_shows_error_and_no_launch(app):
    at = app.run()
    at.switch_page(page("4_finetune.py")).run()
    at.radio(key="ft_model_kind").set_value("model").run()
    at.text_input(key="ft_model_args").input("[1, 2]").run()
    assert any("YAML mapping" in e.value for e in at.error)
    at.text_input(key="ft_model_args").input("{depth: 2}").run()
    at.number_input(key="ft_batch").set_value(7).run()  # odd batch with mixup on
    assert any("even batch size" in e.value for e in at.error), [e.value for e in at.error]
    assert not [b for b in at.button if b.key == "launch"]
    assert_clean(at)


def test_equivalent_command_parses_back_to_the_same_config():
    """The command shown before launch is exactly the run: the CLI parses it into an equal TrainConfig."""
    from app.launch import command_text, train_argv
    from learngene.cli import build_parser
    from learngene.training.config import TrainConfig, config_from_args

    config = TrainConfig(model="vit_tiny_patch16_224", model_kwargs={"depth": 2, "patch_size": 8}, dataset="digits",
                         img_size=32, max_steps=4, lr=None, randaugment="none", ema=True, channels_last=False,
                         download=False, workers=0, clip_grad=1.0, heads=None).validate()
    argv = shlex.split(command_text(train_argv(config, "x", "torchrun", {"nproc_per_node": 2})))
    args = build_parser().parse_args(argv[1:])
    assert config_from_args(args) == config
    assert args.launcher == "torchrun" and args.nproc_per_node == 2 and args.detach


def test_sessions_in_separate_processes_racing_to_launch_get_one_run_each(tmp_path):
    """Three sessions, each its own process (so no in-process lock serialises them), released together onto one
    registry with one slot: each triple click queues exactly one run, and no run is launched twice.

    Forked after this process has imported what validating a config needs, so the sessions start in a second
    instead of each importing torch."""
    from learngene.training.config import TrainConfig

    TrainConfig(model="vit_tiny_patch16_224", dataset="digits", max_steps=1).validate()
    sessions = 3
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(sessions), context.Queue()
    processes = [context.Process(target=race_to_submit, args=(str(tmp_path), i, start, results))
                 for i in range(sessions)]
    for process in processes:
        process.start()
    got = dict(results.get(timeout=180) for _ in range(sessions))
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    for ids in got.values():
        assert len(set(ids)) == 1  # the double clicks returned the session's first run
    manager = RunManager(tmp_path)
    records = manager.list()
    assert sorted(r["run_id"] for r in records) == sorted(ids[0] for ids in got.values())
    assert sorted(r["name"] for r in records) == [f"s{i}" for i in range(sessions)]
    for record in records:  # every run reaches its end (the missing worker module fails it) after one launch
        record = manager.wait(record["run_id"], timeout_s=120)
        assert record["state"] == "failed" and record["attempts"] == 1, record


def _stop_and_show(run_id: str) -> None:
    """The Stop button's callback, then the notice it leaves, as the Runs page does."""
    from app import runs_view

    runs_view.act("stop", run_id)
    runs_view.notice()


def test_stopping_a_queued_run_says_it_never_started(tmp_path, monkeypatch):
    """Found in a browser: Stop on a queued run said "Stop requested: stopped (it saves a checkpoint and exits at
    the next step)"; nothing had run, no checkpoint is saved, and Resume stays disabled."""
    from learngene.training.config import TrainConfig

    root = tmp_path / "runs"
    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(root))
    config = TrainConfig(model="vit_tiny_patch16_224", dataset="digits", max_steps=1).validate()
    run_id = RunManager(root, slots=1).submit(config, name="waiting", schedule=False)
    at = AppTest.from_function(_stop_and_show, args=(run_id,), default_timeout=60).run()
    assert_clean(at)
    (notice,) = [s.value for s in at.success]
    assert "checkpoint" not in notice and "before it started" in notice, notice
    assert RunManager(root).get(run_id, schedule=False)["state"] == "stopped"


def _stop_once_then_show(run_id: str) -> None:
    """The Stop button's callback on the first render only, then the notice on every render (the page's ticks)."""
    import streamlit as st

    from app import runs_view

    if not st.session_state.get("clicked"):
        st.session_state["clicked"] = True
        runs_view.act("stop", run_id)
    runs_view.notice()


def test_the_outcome_of_a_button_outlives_the_next_tick(tmp_path, monkeypatch):
    """Found in a browser: "Cloned into ..." and "Stop requested ..." vanished at the page's next refresh (every
    2 s, often half a second after the click), too soon to be read."""
    from learngene.training.config import TrainConfig

    root = tmp_path / "runs"
    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(root))
    config = TrainConfig(model="vit_tiny_patch16_224", dataset="digits", max_steps=1).validate()
    run_id = RunManager(root, slots=1).submit(config, name="waiting", schedule=False)
    at = AppTest.from_function(_stop_once_then_show, args=(run_id,), default_timeout=60).run()
    first = [s.value for s in at.success]
    at.run()  # the next tick
    assert_clean(at)
    assert [s.value for s in at.success] == first and len(first) == 1, (first, [s.value for s in at.success])
