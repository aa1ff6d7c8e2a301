"""Folders the user typed show on the Descendants page as typed (the page renders its notes as markdown)."""

from __future__ import annotations

import json

from apptest_support import assert_clean, page, shown

FOLDER = "mine/__v2__/*first*"  # shown as "mine/v2/first" in bold and italics before


def test_saved_to_names_the_folder_as_typed(app, tmp_path, monkeypatch):
    from app.state import descendants_root

    monkeypatch.chdir(tmp_path)
    at = app.run()
    at.switch_page(page("3_descendants.py")).run()
    at.number_input(key="d_depth").set_value(1).run()
    at.number_input(key="d_img").set_value(28).run()
    at.text_input(key="d_folder").input(FOLDER).run()
    at.button(key="d_build").click().run()
    assert_clean(at)
    expected = descendants_root() / FOLDER
    assert (expected / "config.json").is_file()
    assert [shown(s.value) for s in at.success] == [f"Saved to {expected}"], [s.value for s in at.success]


def test_the_deleted_last_descendant_is_named_as_typed(app, saved_session, tmp_path):
    from app.state import app_dir

    gone = tmp_path / "__gone__" / "*x*"
    saved = json.loads((app_dir() / "session.json").read_text())
    saved["remembered"] = {"last_descendant": str(gone)}
    (app_dir() / "session.json").write_text(json.dumps(saved))
    at = app.run()
    at.switch_page(page("3_descendants.py")).run()
    assert_clean(at)
    (note,) = [i.value for i in at.info if "built last cannot be shown" in i.value]
    assert f"{gone} is not a saved descendant" in shown(note), (note, shown(note))
    assert "`learngene build`" in note, note  # the command stays a code span
