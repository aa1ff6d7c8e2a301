"""The Fine-tune form is generated from TrainConfig's settings: every other setting is offered under "More
settings", the equivalent command shows what was changed, and only launcher choices the CLI accepts are offered."""

from __future__ import annotations

import shlex

from apptest_support import assert_clean, page


def test_more_settings_and_launcher_choices_come_from_the_one_source(app):
    from learngene.cli import build_parser
    from learngene.cli.training import SUBMITIT_CLUSTERS
    from learngene.training.config import config_from_args

    at = app.run()
    at.switch_page(page("4_finetune.py")).run()
    at.radio(key="ft_model_kind").set_value("model").run()
    at.checkbox(key="ft_more_ema").check()
    at.text_input(key="ft_more_clip_grad").input("1.5")
    at.text_input(key="ft_more_drop_path").input("0.2")
    at.radio(key="ft_launcher").set_value("slurm").run()
    assert_clean(at)
    assert list(at.selectbox(key="ft_cluster").options) == list(SUBMITIT_CLUSTERS)
    argv = shlex.split(at.code[0].value)
    assert "--ema" in argv and argv[argv.index("--clip-grad") + 1] == "1.5" and "--launcher" in argv
    config = config_from_args(build_parser().parse_args(argv[1:]))
    assert (config.ema, config.clip_grad, config.drop_path) == (True, 1.5, 0.2)

    at.text_input(key="ft_more_accum_steps").input("two").run()
    assert any("expected an integer" in e.value for e in at.error)
    assert not [b for b in at.button if b.key == "launch"]
