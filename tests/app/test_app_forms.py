"""Recipe presets and warnings on the Fine-tune page; design and recipe forms remembered across a restart."""

from __future__ import annotations

from apptest_support import MAIN, TIMEOUT, assert_clean, page, shown
from streamlit.testing.v1 import AppTest

from app.finetune_view import PAPER, QUICK


def _finetune(app):
    at = app.run()
    at.switch_page(page("4_finetune.py")).run()
    at.radio(key="ft_model_kind").set_value("model").run()  # a timm model: the page builds a config at once
    assert_clean(at)
    return at


def _warnings(at) -> str:
    return " ".join(w.value for w in at.warning)


def test_quick_preset_fills_the_recipe_and_the_paper_recipe_on_cpu_is_flagged(app):
    at = _finetune(app)
    at.selectbox(key="ft_device").set_value("cpu").run()
    assert "near chance" in _warnings(at)  # the paper's recipe at 224 px on a CPU
    at.segmented_control(key="ft_preset").set_value(QUICK).run()
    assert_clean(at)
    assert at.number_input(key="ft_img").value == 28 and at.number_input(key="ft_max_steps").value == 150
    assert at.text_input(key="ft_ra").value == "none" and at.number_input(key="ft_mixup").value == 0.0
    command = at.code[0].value
    assert "--img-size 28" in command and "--max-steps 150" in command and "--lr" not in command
    assert "near chance" not in _warnings(at)
    at.segmented_control(key="ft_preset").set_value(PAPER).run()
    assert at.number_input(key="ft_mixup").value == 0.8 and at.number_input(key="ft_max_steps").value == 0


def test_clicking_the_selected_preset_again_keeps_it_and_the_recipe(app):
    """A segmented control deselects on a second click; the preset (and what the user edited) must stay, where the
    page used to raise KeyError: None into the server log."""
    at = _finetune(app)
    at.segmented_control(key="ft_preset").set_value(QUICK).run()
    at.number_input(key="ft_max_steps").set_value(7).run()
    at.segmented_control(key="ft_preset").set_value(None).run()
    assert_clean(at)
    assert at.segmented_control(key="ft_preset").value == QUICK
    assert at.number_input(key="ft_max_steps").value == 7 and at.number_input(key="ft_img").value == 28


def test_warm_up_as_long_as_the_run_is_flagged(app):
    at = _finetune(app)
    at.number_input(key="ft_epochs").set_value(4).run()
    assert "never reaches its peak" in _warnings(at)  # the default warm-up is 5 epochs
    at.number_input(key="ft_warmup").set_value(1.0).run()
    assert "never reaches its peak" not in _warnings(at)


def test_design_and_recipe_survive_a_restart(app):
    at = app.run()
    at.switch_page(page("3_descendants.py")).run()
    at.number_input(key="d_depth").set_value(4).run()
    at.selectbox(key="d_init").set_value("scratch").run()
    at.switch_page(page("4_finetune.py")).run()
    at.number_input(key="ft_epochs").set_value(7).run()
    assert_clean(at)

    again = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()  # a new session: what a restart gives
    again.switch_page(page("3_descendants.py")).run()
    assert again.number_input(key="d_depth").value == 4 and again.selectbox(key="d_init").value == "scratch"
    again.switch_page(page("4_finetune.py")).run()
    assert again.number_input(key="ft_epochs").value == 7
    assert_clean(again)


def test_reproducing_the_authors_code_needs_a_deit_ancestor(app):
    at = app.run()
    at.switch_page(page("3_descendants.py")).run()
    at.checkbox(key="d_parity").check().run()
    assert_clean(at)
    errors = " ".join(shown(e.value) for e in at.error)  # as the browser shows it (names are escaped)
    assert "deit_small_patch16_224" in errors, errors  # the built-in ancestor is not one the authors had settings for


def test_a_folder_that_is_not_a_saved_descendant_is_refused_before_launch(app, tmp_path):
    """Any existing folder passed as the descendant: the page showed its command and Launch (a run that could only
    fail), and "Launch one run per initialisation" raised a LearngeneError traceback (found in a browser)."""
    at = app.run()
    at.switch_page(page("4_finetune.py")).run()
    at.radio(key="ft_model_kind").set_value("descendant").run()
    (tmp_path / "notes.txt").write_text("not a model")
    at.text_input(key="ft_descendant").input(str(tmp_path)).run()
    assert_clean(at)
    errors = " ".join(e.value for e in at.error)
    assert "not a saved descendant" in errors and "Descendants page" in errors, errors
    offered = {b.key for b in at.button}
    assert not {"launch", "launch_compare"} & offered, offered
    assert not at.code, "no command for a run that cannot start"


def test_an_empty_model_name_is_asked_for_in_the_apps_words(app):
    """Found in a browser: the empty "timm model" box answered "set exactly one model source: --descendant DIR,
    --model TIMM_NAME or --ancestor SPEC", flags the page does not have."""
    at = _finetune(app)
    at.text_input(key="ft_model").input("  ").run()
    assert_clean(at)
    errors = [e.value for e in at.error]
    assert errors == ["Type a timm model name, e.g. vit_tiny_patch16_224, or choose a saved descendant above."], errors
