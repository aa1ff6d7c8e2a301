"""``learngene size`` without torch: the written-out architectures against timm's models and really built
descendants, and the command's imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from learngene.descendant.arch import KNOWN_VITS, ArchFacts, arch_facts, summary_without_weights
from learngene.descendant.size import descendant_size
from learngene.descendant.spec import DescendantSpec

REPO = Path(__file__).resolve().parents[2]


def _timm_summary(spec: str, arch: str, **kwargs):
    """The reference: timm's own model on the meta device, read by the loader's ``summarize``."""
    import timm

    from learngene.ancestors.loading import summarize

    model = timm.create_model(arch, pretrained=False, device="meta", **kwargs)
    return model, summarize(model, spec, arch, pretrained=not spec.startswith("random:"))


@pytest.mark.parametrize("arch", sorted(KNOWN_VITS))
def test_every_written_out_architecture_equals_timms_model(arch):
    for spec in (arch, f"random:{arch}"):
        model, expected = _timm_summary(spec, arch)
        assert summary_without_weights(spec) == expected
        assert arch_facts(expected) == ArchFacts.from_model(model)


def test_builtin_written_out_equals_timms_model():
    from learngene.ancestors import builtin

    _, expected = _timm_summary("builtin", builtin.ARCH, img_size=builtin.IMG_SIZE, num_classes=0)
    assert summary_without_weights("builtin") == expected


DESIGNS = [
    {},
    {"depth": 6},
    {"depth": 4, "width_ratio": 0.5},
    {"depth": 9, "width_ratio": 1.5, "num_classes": 10},
    {"depth": 6, "schedule": "decreasing", "img_size": 112},
    {"depth": 12, "schedule": "increasing", "num_classes": 7},
    {"depth": 6, "heads": (1, 2, 3, 4, 5, 6)},
    {"depth": 6, "parity": "authors"},
    {"depth": 9, "width_ratio": 0.5, "parity": "authors", "num_classes": 10},
    {"depth": 5, "init": "scratch", "num_classes": 3},
    {"depth": 8, "init": "pretrained-prune"},
    {"depth": 12, "init": "heuristic-learngene"},
    {"depth": 6, "init": "weight-transformation"},
    {"depth": 12, "init": "weight-transformation", "share_layers": 3, "num_classes": 10},
]


@pytest.fixture(scope="module")
def deit_tiny():
    from learngene.ancestors import load_ancestor

    return load_ancestor("random:deit_tiny_patch16_224")


@pytest.mark.parametrize("design", DESIGNS, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()) or "default")
def test_torch_free_size_equals_the_built_descendant(deit_tiny, design):
    from learngene.descendant import build_descendant

    spec = DescendantSpec(**design)
    summary = summary_without_weights("random:deit_tiny_patch16_224")  # written out, no timm model involved
    distances = np.random.default_rng(0).uniform(5, 120, size=(12, 3))
    built = build_descendant(deit_tiny, spec, distances=distances)
    size = descendant_size(summary, spec)
    assert size.params == sum(p.numel() for p in built.model.parameters())
    assert size.inherited_params == built.config["inherited_params"]


@pytest.mark.parametrize("argv", [
    ["size", "--ancestor", "deit_small_patch16_224", "--depth", "6"],
    ["size", "--ancestor", "builtin", "--width-ratio", "decreasing", "--json"],
    ["size", "--ancestor", "random:vit_base_patch16_224", "--table"],
])
def test_size_command_imports_neither_torch_nor_timm(argv):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "learngene", *argv], capture_output=True,
                          text=True, env=env, check=True, timeout=120)
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert done.stdout
    assert not {"torch", "timm", "sklearn", "scipy"} & imported


def test_cheap_descendant_modules_import_no_torch():
    code = ("import sys, learngene.descendant.size, learngene.descendant.spec, learngene.descendant.config, "
            "learngene.design_options, learngene.descendant.arch; "
            "print(sorted({'torch', 'timm'} & set(sys.modules)))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=120)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("package", ["learngene.descendant", "learngene.ancestors"])
def test_every_lazy_public_name_resolves_to_its_defining_module(package):
    import importlib

    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        defining = importlib.import_module(module._EXPORTS[name])
        assert value is getattr(defining, name), name
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018
