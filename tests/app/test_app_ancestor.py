"""The Ancestor page: defaults, the architecture card, input errors, statistics with progress and their reuse."""

from __future__ import annotations

from dataclasses import replace

from apptest_support import MAIN, TIMEOUT, assert_clean, metric, shown, wait_for_job
from streamlit.testing.v1 import AppTest

from app.resources import statistics_job_key


def test_builtin_ancestor_card_and_saved_statistics(app):
    at = app.run()
    assert_clean(at)
    assert at.title[0].value == "Ancestor"
    assert metric(at, "Layers") == "12" and metric(at, "Heads / layer") == "6" and metric(at, "Width") == "384"
    assert metric(at, "Patch") == "14 px" and metric(at, "Resolution") == "224 px"
    # the statistics saved for this choice are found, so no compute button is offered
    assert metric(at, "Probe images") == "4"
    assert not [b for b in at.button if b.key == "compute_stats"]


def test_unknown_hub_name_shows_error_and_keeps_previous_ancestor(app):
    at = app.run()
    at.radio(key="ancestor_source").set_value("hub").run()
    at.selectbox[0].set_value("other timm ViT…").run()
    at.text_input[0].input("deit_smal_patch16_224").run()
    at.button(key="use_ancestor").click().run()
    assert_clean(at)
    errors = [shown(e.value) for e in at.error]  # what the browser shows (the markdown escapes the names)
    assert any("unknown model name" in e and "deit_small_patch16_224" in e for e in errors), errors
    assert metric(at, "Layers") == "12"  # the page keeps working on the previous ancestor


def test_missing_inputs_say_how_to_fix(app, tmp_path):
    at = app.run()
    at.radio(key="ancestor_source").set_value("path").run()
    at.text_input[0].input("").run()
    at.button(key="use_ancestor").click().run()
    assert any("path of a weights file" in e.value for e in at.error)
    at.text_input[0].input(str(tmp_path / "missing.safetensors")).run()
    at.button(key="use_ancestor").click().run()
    assert_clean(at)
    assert at.error, "a missing weights file must be reported"
    at.radio(key="ancestor_source").set_value("builtin").run()
    at.radio(key="probe_source").set_value("folder").run()
    at.text_input[0].input(str(tmp_path / "nowhere")).run()
    at.button(key="use_ancestor").click().run()
    assert any("does not exist" in e.value for e in at.error), [e.value for e in at.error]


def test_compute_statistics_then_restart_reuses_them(app, saved_session):
    at = app.run()
    at.number_input[1].set_value(2).run()  # number of probe images
    at.button(key="use_ancestor").click().run()
    assert_clean(at)
    compute = [b for b in at.button if b.key == "compute_stats"]
    assert compute, "new probe settings need new statistics"
    compute[0].click().run()
    assert_clean(at)
    job = wait_for_job(statistics_job_key(replace(saved_session, num_images=2)))
    assert job.error is None and job.total == 2
    at.run()
    assert_clean(at)
    assert metric(at, "Probe images") == "2"
    # an app restart (a new session) finds the choice and the statistics on disk
    again = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    assert_clean(again)
    assert metric(again, "Probe images") == "2"
    assert not [b for b in again.button if b.key == "compute_stats"]


def test_the_card_drawn_before_loading_equals_the_loaded_ancestors():
    """The Ancestor page draws the built-in (and random) ancestors' card before the model loads: it must say what the
    loaded model says (only the weights' fingerprint is unknown beforehand)."""
    from app.resources import quick_summary
    from app.state import Choice
    from learngene.ancestors import load_ancestor

    for choice in (Choice(), Choice(spec="random:deit_tiny_patch16_224")):
        loaded = load_ancestor(choice.spec).summary
        assert replace(quick_summary(choice), weights_sha256=loaded.weights_sha256) == loaded
    assert quick_summary(Choice(img_size=112)) is None  # another resolution: wait for the load
    assert quick_summary(Choice(spec="random:test_vit4")) is None  # not a written-out architecture


def test_errors_about_uploads_name_the_upload_not_the_apps_cache(app):
    """Found in a browser: an unreadable uploaded image or weights file was reported by the cache folder the app
    had stored it in (.../app/uploads/probes/f18cd961e920), a path the user never saw."""
    at = app.run()
    at.radio(key="probe_source").set_value("upload").run()
    at.file_uploader(key="probe_upload").set_value([("cat.png", b"not an image", "image/png")]).run()
    at.button(key="use_ancestor").click().run()
    assert_clean(at)
    errors = " ".join(shown(e.value) for e in at.error)
    assert "the 1 uploaded image(s)" in errors and "uploads" not in errors, errors

    at.radio(key="probe_source").set_value("builtin").run()
    at.radio(key="ancestor_source").set_value("upload").run()
    at.file_uploader(key="weights_upload").set_value(("deit.pth", b"garbage" * 100, "application/octet-stream")).run()
    at.button(key="use_ancestor").click().run()
    assert_clean(at)
    errors = " ".join(shown(e.value) for e in at.error)
    assert "the uploaded deit.pth" in errors and "uploads" not in errors, errors
    assert metric(at, "Layers") == "12"  # still the built-in ancestor
