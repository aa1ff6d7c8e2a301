"""docs/results.md's tables are rendered from docs/results.json: the page must say what the data says."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from learngene.errors import LearngeneError
from learngene.evaluation.paired import paired_difference
from learngene.evaluation.results_doc import BLOCK, render_block, update_document

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def page_and_data():
    return (DOCS / "results.md").read_text(encoding="utf-8"), json.loads((DOCS / "results.json").read_text())


def test_every_marked_table_of_the_results_page_matches_results_json(page_and_data):
    page, data = page_and_data
    specs = [m.group("spec") for m in BLOCK.finditer(page)]
    assert len(specs) >= 6, "docs/results.md lost its generated tables"
    stale = [spec for spec, body in ((m.group("spec"), m.group("body")) for m in BLOCK.finditer(page))
             if body.strip() != render_block(spec, data).strip()]
    assert not stale, f"stale tables {stale}: run python scripts/results_tables.py"


def test_a_changed_figure_reaches_the_page(page_and_data):
    page, data = page_and_data
    changed = copy.deepcopy(data)
    probe = next(e for e in changed if e["table"] == "probe" and e["images"] == 300)
    probe["rows"]["cluster-learngene"]["linear"] = 0.4321
    updated = update_document(page, changed)
    assert "| digits, linear | 92.3 | 43.2 |" in updated
    assert updated != page


def test_paired_table_shows_each_seed_and_the_paired_test():
    reference = {0: 70.0, 1: 72.0, 2: 68.0}
    other = {0: 65.0, 1: 70.0, 2: 64.0}
    entries = [
        {"table": "paired", "dataset": "digits", "metric": "final_top1", "row": "cluster-learngene",
         "per_seed": {str(k): v for k, v in reference.items()}, "mean": 70.0},
        {"table": "paired", "dataset": "digits", "metric": "final_top1", "row": "scratch",
         "per_seed": {str(k): v for k, v in other.items()}, "mean": 199 / 3,
         "paired": paired_difference("scratch", other, "cluster-learngene", reference).to_dict()},
        {"table": "paired", "dataset": "digits", "metric": "curve_top1", "row": "scratch",
         "per_seed": {"0": 1.0}, "mean": 1.0},
    ]
    table = render_block("paired dataset=digits metric=final_top1", entries)
    lines = table.splitlines()
    assert lines[0].startswith("| row | seed 0 | seed 1 | seed 2 | mean |")
    # differences -5, -2, -4: mean -3.67, sd 1.53, t = -3.67 / (1.53 / sqrt 3) = -4.16 with 2 df
    assert "| scratch | 65.0 | 70.0 | 64.0 | 66.3 | -5.0, -2.0, -4.0 | -3.7 ± 1.5 | -4.16 (2) |" in table
    assert lines[2].startswith("| Cluster-Learngene | 70.0 | 72.0 | 68.0 | 70.0 | - |")
    assert len(lines) == 4  # the curve_top1 entry belongs to the other metric's table


def test_an_unknown_table_name_or_selector_is_one_clear_error():
    with pytest.raises(LearngeneError, match="unknown results table 'nonsense'"):
        render_block("nonsense dataset=digits", [])
    with pytest.raises(LearngeneError, match="write key=value"):
        render_block("paired digits", [])
    with pytest.raises(LearngeneError, match="no paired fine-tuning entries"):
        render_block("paired dataset=digits", [{"table": "paired", "dataset": "cifar"}])
