"""A probe folder typed on the Ancestor page is named as typed in the Ancestor and Heads pages' captions.

Both captions are markdown: a folder /data/__v2__/*probes* read "/data/v2/probes" in bold and italics.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace

from apptest_support import page, shown


def test_the_probe_folder_is_shown_as_typed(app, saved_session, tmp_path):
    from app.state import app_dir

    folder = tmp_path / "__v2__" / "*probes*"
    saved = json.loads((app_dir() / "session.json").read_text())
    saved["choice"] = asdict(replace(saved_session, probes=str(folder)))
    (app_dir() / "session.json").write_text(json.dumps(saved))
    at = app.run()
    captions = [shown(c.value) for c in at.caption]
    assert f"Probe images: {folder}" in captions, captions
    at.switch_page(page("2_heads.py")).run()
    assert shown(at.caption[0].value) == f"Ancestor: builtin on {folder}", at.caption[0].value
