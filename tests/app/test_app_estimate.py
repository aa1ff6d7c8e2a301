"""Fine-tune page: "Estimate duration" times the chosen model's step in a background job and shows the estimate."""

from __future__ import annotations

import re

from apptest_support import assert_clean, page, wait_for_job

from app.finetune_view import estimate_key
from learngene.training.config import TrainConfig


def _infos(at) -> str:
    return " ".join(i.value for i in at.info)


def test_estimate_duration_times_the_step_and_scales_it_to_the_run(app):
    at = app.run()
    at.switch_page(page("4_finetune.py")).run()
    at.radio(key="ft_model_kind").set_value("model").run()  # the page's tiny timm ViT
    at.number_input(key="ft_img").set_value(32).run()
    at.number_input(key="ft_batch").set_value(8).run()
    at.selectbox(key="ft_device").set_value("cpu").run()
    at.number_input(key="ft_epochs").set_value(2).run()
    assert_clean(at)
    at.button(key="ft_estimate").click().run()
    assert_clean(at)
    config = TrainConfig(model="vit_tiny_patch16_224", dataset="digits", img_size=32, batch_size=8, device="cpu",
                         model_kwargs={"depth": 2, "embed_dim": 64, "num_heads": 2, "patch_size": 8})
    job = wait_for_job(estimate_key(config))
    assert job.error is None and job.result.seconds_per_step > 0
    at.run()
    assert_clean(at)
    # digits trains on 1,438 images: 1,438 // 8 = 179 steps per epoch, 2 epochs
    match = re.search(r"about \d+ (s|min|h)[^(]* for 358 steps\*\* \(([\d.]+) s/step measured on cpu", _infos(at))
    assert match, _infos(at)
    at.number_input(key="ft_max_steps").set_value(100).run()  # the recipe changes, the measured step stays
    assert "for 100 steps" in _infos(at) and match.group(2) + " s/step" in _infos(at)


def test_a_failed_timing_shows_the_librarys_error_as_written(app):
    """Found in a browser: "VisionTransformer.__init__() got an unexpected keyword argument 'foo'" was shown as
    "VisionTransformer.init() ..." with a bold init (the error went through markdown as it was)."""
    at = app.run()
    at.switch_page(page("4_finetune.py")).run()
    at.radio(key="ft_model_kind").set_value("model").run()
    at.text_input(key="ft_model_args").input("{foo: 1}").run()
    at.selectbox(key="ft_device").set_value("cpu").run()
    at.button(key="ft_estimate").click().run()
    config = TrainConfig(model="vit_tiny_patch16_224", dataset="digits", device="cpu", model_kwargs={"foo": 1})
    assert wait_for_job(estimate_key(config)).failed
    at.run()
    assert_clean(at)
    errors = " ".join(e.value for e in at.error)
    assert r"VisionTransformer.\_\_init\_\_\(\) got an unexpected keyword argument 'foo'" in errors, errors
