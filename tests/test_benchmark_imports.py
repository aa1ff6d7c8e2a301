"""Every name a benchmark or script imports from the project exists.

Benchmarks and scripts import most of the project inside functions (so ``--help`` stays fast), where a renamed
name only fails when that code runs, e.g. on a borrowed GPU. paired_finetune.py imported ``EPS`` from
learngene.evaluation.designs for a whole round after the paper's thresholds moved to learngene.clustering.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted([*ROOT.glob("benchmarks/*.py"), *ROOT.glob("scripts/*.py")])


def project_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every ``from learngene... / app... import name`` anywhere in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] in {"learngene", "app"}:
            found += [(node.module, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_project_name_it_imports_exists(path):
    missing = []
    for module, name in project_imports(path):
        imported = importlib.import_module(module)
        if not hasattr(imported, name):
            try:  # a submodule imported by name: from learngene import attention
                importlib.import_module(f"{module}.{name}")
            except ModuleNotFoundError:
                missing.append(f"{module}.{name}")
    assert not missing, f"{path.name} imports names that do not exist: {missing}"
