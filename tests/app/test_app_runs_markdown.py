"""Text the user typed (a run's name, its command's paths and values) shows on the Runs page as typed.

Streamlit renders a progress label, a caption and a notice as markdown: a run named ``t__r__ *x* [a](b)`` showed as
"t__r__ *x*" with an italic x and a link "a" in a browser. The reference is an independent markdown renderer
(Python-Markdown): the page's text, rendered, must read as the name typed.
"""

from __future__ import annotations

from apptest_support import assert_clean, page, shown

from learngene.runs import RunManager
from learngene.training.config import TrainConfig

# Only markup that Python-Markdown and Streamlit's CommonMark agree on: emphasis, strong, a link.
NAME = "t__r__ *x* [a](b)"


def _runs_page(app, root, monkeypatch):
    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(root))
    manager = RunManager(root, slots=1)
    config = TrainConfig(model="vit_tiny_patch16_224", dataset="digits", max_steps=1).validate()
    run_id = manager.submit(config, name=NAME, launcher="local",  # fails at once: no training
                            launcher_options={"worker_module": "learngene.runs.does_not_exist"})
    manager.wait(run_id, timeout_s=60)
    at = app.run()
    return at.switch_page(page("5_runs.py")).run()


def test_a_run_name_with_markup_shows_as_typed_in_the_panel_and_the_clone_notice(app, tmp_path, monkeypatch):
    at = _runs_page(app, tmp_path / "runs", monkeypatch)
    assert_clean(at)
    label = at.get("progress")[0].proto.text
    assert shown(label).startswith(f"{NAME}: failed"), (label, shown(label))
    at.button(key="clone_run").click().run()
    assert_clean(at)
    notice = at.success[0].value
    assert shown(notice).startswith(f"Cloned into {NAME} (clone) ("), (notice, shown(notice))


def test_the_equivalent_command_shows_as_the_command_line(app, tmp_path, monkeypatch):
    """A name (or a folder, a model argument) with markup lost its characters in the caption under the panel."""
    import shlex

    at = _runs_page(app, tmp_path / "runs", monkeypatch)
    assert_clean(at)
    caption = next(c.value for c in at.caption if c.value.startswith("Equivalent command"))
    command = shlex.split(shown(caption).removeprefix("Equivalent command: "))
    assert command[command.index("--name") + 1] == NAME, (caption, shown(caption))


def test_a_deleted_run_folder_is_named_as_it_is_on_disk(app, tmp_path, monkeypatch):
    import shlex
    import shutil

    root = tmp_path / "__r__" / "*runs*"
    at = _runs_page(app, root, monkeypatch)
    (run_id,) = [p.name for p in root.iterdir() if p.is_dir()]
    shutil.rmtree(root / run_id)
    at.run()
    assert_clean(at)
    (warning,) = [w.value for w in at.warning]
    assert f"This run's folder {root / run_id} is gone" in shown(warning), (warning, shown(warning))
    # the command stays a code span, its path as written and quoted for a shell
    assert f"--runs-dir {shlex.quote(str(root))}`" in warning, warning
