"""Rewrite the tables of docs/results.md from docs/results.json (or, with --check, fail when they differ).

Usage::

    python scripts/results_tables.py            # rewrite the marked tables in place
    python scripts/results_tables.py --check    # exit 1 and name the stale tables when the page is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from learngene.atomic import write_text_atomic
    from learngene.evaluation.results_doc import BLOCK, update_document

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--page", default=str(ROOT / "docs" / "results.md"))
    parser.add_argument("--data", default=str(ROOT / "docs" / "results.json"))
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a table is stale")
    args = parser.parse_args(argv)
    page = Path(args.page)
    text = page.read_text(encoding="utf-8")
    entries = json.loads(Path(args.data).read_text(encoding="utf-8"))
    updated = update_document(text, entries)
    blocks = len(BLOCK.findall(text))
    if updated == text:
        print(f"{page}: {blocks} tables up to date")
        return 0
    if args.check:
        old = {m.group("spec"): m.group("body") for m in BLOCK.finditer(text)}
        new = {m.group("spec"): m.group("body") for m in BLOCK.finditer(updated)}
        stale = [spec for spec in old if old[spec] != new.get(spec)]
        print(f"{page}: stale tables {', '.join(stale)}; run python scripts/results_tables.py", file=sys.stderr)
        return 1
    write_text_atomic(page, updated)
    print(f"{page}: rewrote {blocks} tables")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
