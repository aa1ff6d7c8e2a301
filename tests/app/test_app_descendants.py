"""The Descendants page: live size preview, bad designs, build and save with the inheritance map; the Fine-tune
page then offers that descendant and compares initialisations."""

from __future__ import annotations

import json
from pathlib import Path

from apptest_support import assert_clean, metric, page, shown


def test_size_preview_follows_the_design_and_bad_heads_are_reported(app):
    at = app.run()
    at.switch_page(page("3_descendants.py")).run()
    assert_clean(at)
    six = metric(at, "Parameters (10 classes)")  # the class count is part of the label (it changes the size)
    at.number_input(key="d_depth").set_value(3).run()
    three = metric(at, "Parameters (10 classes)")
    assert float(three.split()[0]) < float(six.split()[0])
    assert at.get("plotly_chart"), "the scale chart is drawn"
    assert "10 classes" in str(at.get("plotly_chart")[0].proto.spec)  # the title says what it computed
    at.radio(key="d_mode").set_value("per-layer list").run()
    at.text_input(key="d_heads").input("6,6").run()
    assert any("one head count per layer" in e.value for e in at.error), [e.value for e in at.error]
    at.text_input(key="d_heads").input("6,x,1").run()
    assert any("whole numbers" in e.value for e in at.error)
    assert_clean(at)


def test_build_save_map_then_finetune_offers_it(app, tmp_path):
    at = app.run()
    at.switch_page(page("3_descendants.py")).run()
    at.number_input(key="d_depth").set_value(2).run()
    at.number_input(key="d_ratio").set_value(2.0).run()
    at.number_input(key="d_img").set_value(28).run()
    folder = tmp_path / "desc"
    at.text_input(key="d_folder").input(str(folder)).run()
    at.button(key="d_build").click().run()
    assert_clean(at)
    assert at.success, [e.value for e in at.error]
    config = json.loads((folder / "config.json").read_text())
    assert config["heads_per_layer"] == [3, 3]
    inheritance = at.get("plotly_chart")[-1].proto.spec
    for layer in config["head_sources"]:
        for head in layer:
            assert f"h{head}" in inheritance
    at.button(key="d_build").click().run()  # exists, no overwrite: a clear error, nothing lost
    assert any("already exists" in e.value for e in at.error)

    at.switch_page(page("4_finetune.py")).run()
    assert_clean(at)
    assert at.text_input(key="ft_descendant").value == str(folder)
    assert "--descendant" in at.code[0].value and str(folder) in at.code[0].value
    assert at.number_input(key="ft_img").value == 28  # the recipe's resolution follows the descendant

    # compare initialisations: the same design built per init, one run each with the same recipe
    at.multiselect(key="ft_compare_inits").set_value(["cluster-learngene", "scratch"]).run()
    at.button(key="launch_compare").click().run()
    assert_clean(at)
    assert len(at.success) == 2, [e.value for e in at.error]
    scratch = Path(f"{folder}-scratch")
    assert json.loads((scratch / "config.json").read_text())["spec"]["init"] == "scratch"
    from app.runs_view import manager

    runs = {r["name"]: r for r in manager().list(schedule=False)}
    assert {"compare-cluster-learngene", "compare-scratch"} <= set(runs)
    assert runs["compare-scratch"]["config"]["descendant"] == str(scratch)
    for name in ("compare-cluster-learngene", "compare-scratch"):  # a 224 px ViT-S run is not for this test
        if runs[name]["state"] in ("queued", "running"):
            manager().stop(runs[name]["run_id"], force=True)


def test_save_name_follows_the_design_until_the_user_types_one(app):
    at = app.run()
    at.switch_page(page("3_descendants.py")).run()
    at.number_input(key="d_depth").set_value(4).run()
    assert at.text_input(key="d_folder").value.endswith("cluster-learngene-L4-w1-224px")
    at.number_input(key="d_ratio").set_value(2.0).run()
    assert at.text_input(key="d_folder").value.endswith("cluster-learngene-L4-w2-224px")
    at.selectbox(key="d_init").set_value("scratch").run()
    assert at.text_input(key="d_folder").value.endswith("scratch-L4-w2-224px")
    at.text_input(key="d_folder").input("/tmp/my-own-name").run()
    at.number_input(key="d_depth").set_value(5).run()
    assert at.text_input(key="d_folder").value == "/tmp/my-own-name"  # the user's own name is kept
    assert_clean(at)


def test_the_ancestor_label_points_into_the_empty_corner_of_the_scale_chart():
    """The label leaves the ancestor's point towards lower parameters and higher MACs, a region no row occupies.

    The label sits 55 px or more below the point, about a factor 1.3 in parameters on the chart's log axis; a row
    just beside the ancestor (depth 9 at w = 0.5 has its size) is above the label."""
    import math

    import pandas as pd

    from app.descendant_view import ancestor_label
    from learngene.descendant import scale_table
    from learngene.descendant.arch import summary_without_weights

    for spec in ("builtin", "deit_small_patch16_224", "deit_base_patch16_224"):
        table = pd.DataFrame(scale_table(summary_without_weights(spec), num_classes=10))
        ancestor = table[table.kind == "ancestor"].iloc[0]
        label = ancestor_label(table)
        assert label["text"] == ancestor.label
        assert math.isclose(10 ** label["x"], ancestor.macs / 1e9) and math.isclose(10 ** label["y"], ancestor.params / 1e6)
        assert label["ax"] > 0 and label["ay"] > 0  # right of and below the point (screen y grows downwards)
        corner = table[(table.macs > ancestor.macs) & (table.params < ancestor.params / 1.3)]
        assert corner.empty, corner.label.tolist()


def test_weight_transformation_design_gets_a_size_or_one_line_naming_the_fix(app, tmp_path):
    """Weight-Transformation shares blocks between pairs of layers at the ancestor's width: the page sizes a valid
    design (fewer stored parameters than the plain descendant of the same depth) and names the fix for a width
    ratio it cannot take, without a traceback."""
    at = app.run()
    at.switch_page(page("3_descendants.py")).run()
    at.number_input(key="d_depth").set_value(2).run()
    at.number_input(key="d_ratio").set_value(1.0).run()
    plain = float(metric(at, "Parameters (10 classes)").split()[0])
    at.selectbox(key="d_init").set_value("weight-transformation").run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    shared = float(metric(at, "Parameters (10 classes)").split()[0])
    assert shared < plain, (shared, plain)  # one stored attention and FFN for the two layers
    at.number_input(key="d_ratio").set_value(2.0).run()
    assert_clean(at)
    assert any("width" in e.value for e in at.error), [e.value for e in at.error]


def test_a_resolution_off_the_patch_grid_is_one_error_not_a_traceback(app):
    """Typing a resolution that is not a multiple of the patch size (the widget's step does not stop a typed 20)
    showed the size preview's one-line error and then the scale chart's traceback (found in a browser)."""
    at = app.run()
    at.switch_page(page("3_descendants.py")).run()
    at.number_input(key="d_img").set_value(20).run()
    assert_clean(at)
    assert any("multiple of the patch size" in e.value for e in at.error), [e.value for e in at.error]
    assert not at.get("plotly_chart"), "no chart for a design that cannot be sized"


def test_a_relative_save_folder_goes_under_the_descendants_folder_and_is_shown_in_full(app, tmp_path, monkeypatch):
    """Found in a browser: "relative/dir" was written into the server's working directory (the app's checkout) and
    the page said only "Saved to relative/dir"."""
    from app.state import descendants_root

    monkeypatch.chdir(tmp_path)
    at = app.run()
    at.switch_page(page("3_descendants.py")).run()
    at.number_input(key="d_depth").set_value(1).run()
    at.number_input(key="d_img").set_value(28).run()
    at.text_input(key="d_folder").input("mine/first").run()
    at.button(key="d_build").click().run()
    assert_clean(at)
    expected = descendants_root() / "mine" / "first"
    assert (expected / "config.json").is_file()
    assert not (tmp_path / "mine").exists()
    assert [shown(s.value) for s in at.success] == [f"Saved to {expected}"]
    at.text_input(key="d_folder").input("  ").run()
    at.button(key="d_build").click().run()
    assert any("Type a folder to save to" in e.value for e in at.error), [e.value for e in at.error]

    # Fine-tune reads the same relative folder from the same place (it read the server's working directory)
    at.switch_page(page("4_finetune.py")).run()
    at.text_input(key="ft_descendant").input("mine/first").run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    assert f"--descendant {expected}" in at.code[0].value, at.code[0].value

    # A folder typed with markdown in its name is shown as typed, and the message's `command` stays code.
    at.text_input(key="ft_descendant").input("mine/__v2__/*first*").run()
    assert_clean(at)
    (error,) = [e.value for e in at.error]
    assert r"descendants/mine/\_\_v2\_\_/\*first\* is not a saved descendant" in error, error
    assert "build one with `learngene build`." in error, error


def test_the_last_descendant_deleted_from_disk_is_a_note_not_an_error(app, saved_session, tmp_path):
    """Found in a browser: the Descendants page opened with a red "... is not a saved descendant; build one with
    `learngene build`" (the descendant built last had been deleted), and still offered "Fine-tune it"."""
    from app.state import app_dir

    saved = json.loads((app_dir() / "session.json").read_text())
    saved["remembered"] = {"last_descendant": str(tmp_path / "deleted")}
    (app_dir() / "session.json").write_text(json.dumps(saved))
    at = app.run()
    at.switch_page(page("3_descendants.py")).run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    assert any("built last cannot be shown" in i.value for i in at.info), [i.value for i in at.info]
    assert not [link for link in at.get("page_link") if "Fine-tune" in link.proto.label]


def test_size_shares_have_no_growth_arrow_and_say_what_they_are_shares_of(app):
    """Found in a browser: "↑ 36% of the ancestor" under a design a third of the ancestor's size, and a bare "↑ 100%"
    under the inherited parameters."""
    from streamlit.proto.Metric_pb2 import Metric

    at = app.run()
    at.switch_page(page("3_descendants.py")).run()
    at.number_input(key="d_depth").set_value(3).run()
    shares = {m.label: m.proto for m in at.metric if m.label.startswith(("Parameters", "Inherited"))}
    assert len(shares) == 2
    assert all(p.direction == Metric.MetricDirection.NONE for p in shares.values()), shares
    assert shares["Inherited (every slot)"].delta.endswith("of the descendant")
