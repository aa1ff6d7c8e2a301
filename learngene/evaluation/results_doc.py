"""The tables of ``docs/results.md``, rendered from ``docs/results.json`` so the page cannot drift from the data.

``docs/results.md`` marks each generated table with a pair of HTML comments::

    <!-- table: paired dataset=digits metric=final_top1 -->
    | ... the rendered table ... |
    <!-- /table -->

The first word names the renderer (:data:`RENDERERS`); the ``key=value`` pairs select the entries of
``results.json`` it renders (``table`` is the renderer's own table name). ``scripts/results_tables.py`` rewrites
every block in place; ``--check`` fails when the page differs from what the data says (a test runs it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from learngene.errors import LearngeneError

Entry = dict[str, Any]

BLOCK = re.compile(r"(<!-- table: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- /table -->)", re.DOTALL)

# Probe rows in table order; the null sits after prune.
PROBE_COLUMNS = ("ancestor", "cluster-learngene", "pretrained-prune", "random-heads", "first-heads",
                 "heuristic-learngene", "auto-learngene", "heuristic-layers-only", "auto-layers-only",
                 "authors-slicing", "scratch")
SCORES = (("linear", "linear"), ("knn", "5-NN"))
PAIRED_LABELS = {"cluster-learngene": "Cluster-Learngene", "random-heads": "random heads, same shape",
                 "pretrained-prune": "prune (first H_d heads)", "scratch": "scratch"}


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table of ``header`` and ``rows`` (cells already formatted)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.1f}"


def _probe_label(row: str) -> str:
    from learngene.evaluation.designs import ROWS

    return ROWS[row].label if row in ROWS else row


def render_probe_null(entries: list[Entry]) -> str:
    """One line per (dataset, score): every row's score, the null's mean ± sd, the Cluster-Learngene percentile."""
    if not entries:
        raise LearngeneError("no probe entries match this table")
    rows = [r for r in PROBE_COLUMNS if any(r in e["rows"] for e in entries) and r != "random-heads"]
    draws = {e["null"]["draws"] for e in entries}
    first = entries[0]
    null_header = f"null, mean ± sd ({'/'.join(map(str, sorted(draws)))} draws)"
    header = [f"w = {first['width']}, {first['images']} images"]
    for row in rows:
        header.append(_probe_label(row))
        if row == "pretrained-prune":
            header.append(null_header)
    header.append("CL percentile")
    rows_out = []
    for entry in entries:
        for key, name in SCORES:
            cells = [f"{entry['dataset']}, {name}"]
            for row in rows:
                score = entry["rows"].get(row, {}).get(key)
                cells.append("-" if score is None else _pct(score))
                if row == "pretrained-prune":
                    null = entry["null"][key]
                    cells.append(f"{_pct(null['mean'])} ± {_pct(null['std'])}")
            cells.append(f"{entry['cluster_percentile'][key]:.0f}")
            rows_out.append(cells)
    return _markdown(header, rows_out)


def render_probe_percentiles(entries: list[Entry]) -> str:
    """The Cluster-Learngene percentile within the null, one line per dataset, one column per width."""
    widths = list(dict.fromkeys(e["width"] for e in entries))
    datasets = list(dict.fromkeys(e["dataset"] for e in entries))
    header = ["dataset, linear / 5-NN"] + [f"w = {w}" if w[0].isdigit() else w for w in widths]
    rows_out = []
    for dataset in datasets:
        cells = [dataset]
        for width in widths:
            match = [e for e in entries if e["dataset"] == dataset and e["width"] == width]
            if not match:
                cells.append("-")
                continue
            percentile = match[0]["cluster_percentile"]
            cells.append(f"{percentile['linear']:.0f} / {percentile['knn']:.0f} ({match[0]['null']['draws']} draws)")
        rows_out.append(cells)
    return _markdown(header, rows_out)


def render_paired(entries: list[Entry]) -> str:
    """Each row's score per seed, and its paired difference from Cluster-Learngene (one metric per table)."""
    if not entries:
        raise LearngeneError("no paired fine-tuning entries match this table")
    seeds = sorted({int(s) for e in entries for s in e["per_seed"]})
    header = (["row"] + [f"seed {s}" for s in seeds]
              + ["mean", "Δ vs CL per seed", "mean Δ ± sd", "paired t (df)", "p", "seeds above CL"])
    rows_out = []
    for entry in entries:
        per_seed = entry["per_seed"]
        cells = [PAIRED_LABELS.get(entry["row"], entry["row"])]
        cells += [f"{per_seed[str(s)]:.1f}" if str(s) in per_seed else "-" for s in seeds]
        cells.append(f"{entry['mean']:.1f}")
        paired = entry.get("paired")
        if paired is None:
            cells += ["-"] * 5
        else:
            n = len(paired["seeds"])
            cells.append(", ".join(f"{d:+.1f}" for d in paired["differences"]))
            cells.append(f"{paired['mean']:+.1f}" + (f" ± {paired['sd']:.1f}" if paired["sd"] is not None else ""))
            cells.append("-" if paired["t"] is None else f"{paired['t']:+.2f} ({n - 1})")
            cells.append("-" if paired["p"] is None else "< 0.001" if paired["p"] < 0.001 else f"{paired['p']:.3f}")
            cells.append(f"{paired['wins']} of {n}")
        rows_out.append(cells)
    return _markdown(header, rows_out)


def render_comparison(entries: list[Entry]) -> str:
    """A ``learngene compare`` table (main or ablation), exactly as ``learngene compare`` writes it."""
    from learngene.compare.report import markdown_table

    if not entries:
        raise LearngeneError("no comparison entries match this table")
    text = markdown_table(entries).strip()
    # compare's report starts each dataset with a heading; the page has its own.
    return "\n".join(line for line in text.splitlines() if not line.startswith("### ")).strip()


# renderer name -> (the results.json "table" it reads, the renderer)
RENDERERS: dict[str, tuple[str, Callable[[list[Entry]], str]]] = {
    "main": ("main", render_comparison),
    "ablation": ("ablation", render_comparison),
    "probe-null": ("probe", render_probe_null),
    "probe-percentiles": ("probe", render_probe_percentiles),
    "paired": ("paired", render_paired),
}


def _matches(entry: Entry, selectors: dict[str, str]) -> bool:
    for key, wanted in selectors.items():
        if key.startswith("not-"):
            if str(entry.get(key[4:])) == wanted:
                return False
        elif str(entry.get(key)) != wanted:
            return False
    return True


def render_block(spec: str, entries: list[Entry]) -> str:
    """Render the block whose marker says ``spec`` (e.g. ``"paired dataset=digits"``) from ``entries``."""
    name, *pairs = spec.split()
    if name not in RENDERERS:
        raise LearngeneError(f"unknown results table {name!r} in docs/results.md; choose from {', '.join(RENDERERS)}")
    table, render = RENDERERS[name]
    selectors = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise LearngeneError(f"bad selector {pair!r} in table marker {spec!r}; write key=value")
        selectors[key] = value
    chosen = [e for e in entries if e.get("table") == table and _matches(e, selectors)]
    return render(chosen)


def update_document(text: str, entries: list[Entry]) -> str:
    """``text`` with every marked table re-rendered from ``entries``."""

    def replace(match: re.Match) -> str:
        return f"{match.group(1)}{render_block(match.group('spec'), entries)}\n{match.group(4)}"

    return BLOCK.sub(replace, text)
