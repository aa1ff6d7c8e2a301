"""Saving and loading descendants, and the timm surface the model keeps."""

from __future__ import annotations

import json

import pytest
import torch

from learngene.descendant import DescendantSpec, build_descendant, load_descendant, save_descendant
from learngene.errors import LearngeneError


@pytest.fixture(scope="module")
def descendant(tiny_ancestor, tiny_distances):
    spec = DescendantSpec(depth=5, heads=[1, 4, 3, 6, 2], num_classes=7, ffn_groups=[[2, 3]])
    return build_descendant(tiny_ancestor, spec, distances=tiny_distances)


def _explicit(model):
    for block in model.blocks:
        block.attn.fused_attn = False
    return model.eval()


def test_round_trip_gives_identical_outputs(descendant, tmp_path):
    save_descendant(descendant, tmp_path / "d")
    loaded = load_descendant(tmp_path / "d")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(_explicit(loaded.model)(x), _explicit(descendant.model)(x))
    assert loaded.config["head_sources"] == descendant.config["head_sources"]
    assert loaded.spec == descendant.spec
    assert all(p.requires_grad for p in loaded.model.parameters())
    assert not any(t.is_meta for t in loaded.model.state_dict().values())


def test_config_records_spec_provenance_and_sources(descendant, tmp_path):
    save_descendant(descendant, tmp_path / "d")
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    assert config["heads_per_layer"] == [1, 4, 3, 6, 2]
    assert config["spec"]["init"] == "cluster-learngene" and config["spec"]["depth"] == 5
    assert config["provenance"]["ancestor"] == "random:test_vit4"
    assert config["provenance"]["eps"] == 10.0 and config["provenance"]["min_heads"] == 1
    assert [len(row) for row in config["head_sources"]] == [1, 4, 3, 6, 2]


def test_loads_with_timm_and_torch_alone(descendant, tmp_path):
    """The recipe in config.json rebuilds the model from stock timm modules without this package."""
    import timm
    from safetensors.torch import load_file
    from timm.layers import Attention

    save_descendant(descendant, tmp_path / "d")
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    recipe = config["timm"]
    model = timm.create_model(recipe["arch"], depth=recipe["depth"], img_size=recipe["img_size"],
                              num_classes=recipe["num_classes"])
    for block, heads in zip(model.blocks, config["heads_per_layer"], strict=True):
        block.attn = Attention(model.embed_dim, num_heads=heads, attn_head_dim=config["head_dim"], qkv_bias=True)
    model.load_state_dict(load_file(str(tmp_path / "d" / "model.safetensors")))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(_explicit(model)(x), _explicit(descendant.model)(x))


def test_trained_transform_saves_plain_weights_and_keeps_t_for_training(tiny_ancestor, tiny_distances, tmp_path):
    spec = DescendantSpec(depth=4, width_ratio=1, num_classes=3, ffn_groups=[[0, 1, 2]], train_transform=True)
    built = build_descendant(tiny_ancestor, spec, distances=tiny_distances)
    optimizer = torch.optim.SGD(built.model.parameters(), lr=0.1)
    built.model.train()
    built.model(torch.randn(2, 3, 32, 32)).square().mean().backward()
    optimizer.step()  # T and the residuals move: the saved weights must be the current T(centroid) + residual
    save_descendant(built, tmp_path / "t")
    loaded = load_descendant(tmp_path / "t")
    # model.safetensors is plain timm weights; T comes back from transforms.safetensors so training continues.
    assert hasattr(loaded.model, "ffn_transforms")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(_explicit(loaded.model)(x), _explicit(built.model)(x))
    assert sum(p.numel() for p in loaded.model.parameters()) == built.config["trainable_params"]


def test_force_replaces_only_a_descendant_we_wrote(descendant, tmp_path):
    out = tmp_path / "exists"
    save_descendant(descendant, out)
    with pytest.raises(LearngeneError, match="already exists"):
        save_descendant(descendant, out)
    (out / "config.json").write_text("stale")
    save_descendant(descendant, out, force=True)
    assert json.loads((out / "config.json").read_text())["heads_per_layer"] == [1, 4, 3, 6, 2]
    assert sorted(p.name for p in out.iterdir()) == [".learngene-output.json", "config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["exists"]  # no staging or old copy left beside it


def test_force_never_replaces_a_foreign_folder(descendant, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(LearngeneError, match="did not write it"):
        save_descendant(descendant, out, force=True)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    save_descendant(descendant, tmp_path / "ours")
    (tmp_path / "ours" / "notes.txt").write_text("added by hand")
    with pytest.raises(LearngeneError, match=r"files learngene did not write \(notes.txt\)"):
        save_descendant(descendant, tmp_path / "ours", force=True)
    assert (tmp_path / "ours" / "notes.txt").read_text() == "added by hand"


def _config_write_fails(monkeypatch):
    """The weights are on disk, then the config write hits a full disk: a failure midway through the directory."""
    from learngene.descendant.config import DescendantConfig

    def full(self, directory):
        (directory / "config.json").write_text('{"half": ')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(DescendantConfig, "save", full)


def test_failure_leaves_nothing_half_written(descendant, tmp_path, monkeypatch):
    _config_write_fails(monkeypatch)
    with pytest.raises(LearngeneError, match="disk full while writing .*new"):
        save_descendant(descendant, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_replacement_leaves_the_old_descendant_intact(descendant, tmp_path, monkeypatch):
    out = save_descendant(descendant, tmp_path / "d")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _config_write_fails(monkeypatch)
    with pytest.raises(LearngeneError, match="disk full while writing"):
        save_descendant(descendant, out, force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["d"]
    assert load_descendant(out).config["heads_per_layer"] == [1, 4, 3, 6, 2]


def test_load_rejects_a_directory_without_a_descendant(tmp_path):
    with pytest.raises(LearngeneError, match="not a saved descendant"):
        load_descendant(tmp_path)


def test_timm_surface_optimizer_ema_and_classifier(descendant):
    from timm.optim import create_optimizer_v2
    from timm.utils import ModelEmaV3

    model = descendant.model
    assert {"pos_embed", "cls_token", "reg_token"} <= model.no_weight_decay()
    optimizer = create_optimizer_v2(model, opt="adamw", lr=1e-3, weight_decay=0.05)
    no_decay = [g for g in optimizer.param_groups if g["weight_decay"] == 0.0]
    assert any(p is model.pos_embed for g in no_decay for p in g["params"])
    ema = ModelEmaV3(model, decay=0.9)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    model(x).logsumexp(dim=1).mean().backward()
    optimizer.step()
    ema.update(model)
    features = model.forward_features(x)  # (B, N, C)
    assert features.shape == (2, 1 + 4, 96)  # one register token + 2 x 2 patches
    assert model.forward_head(features).shape == (2, 7)
    model.reset_classifier(11)
    assert model(x).shape == (2, 11)


def test_descendant_config_is_the_typed_reader_of_config_json(descendant, tmp_path):
    from learngene.descendant.config import DescendantConfig

    out = save_descendant(descendant, tmp_path / "d")
    raw = json.loads((out / "config.json").read_text())
    config = DescendantConfig.load(out)
    assert (config.timm.arch, config.timm.depth, config.heads_per_layer) == (raw["timm"]["arch"], 5, [1, 4, 3, 6, 2])
    assert config.init == "cluster-learngene" and config.params == raw["params"]
    assert config.to_dict() == raw  # nothing lost or reordered in meaning
    raw["added_later"] = {"by": "a newer version"}
    (out / "config.json").write_text(json.dumps(raw))
    DescendantConfig.load(out).save(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["added_later"] == {"by": "a newer version"}


@pytest.mark.parametrize("text, message", [
    (None, "not a saved descendant"),
    ("{truncated", "is corrupt"),
    ('{"format": "something-else/3"}', "has format 'something-else/3'"),
    ('{"timm": {"arch": "vit_tiny_patch16_224"}}', "not a complete descendant config"),
    ('[1, 2]', "not a JSON object"),
])
def test_descendant_config_errors_are_one_line(tmp_path, text, message):
    from learngene.descendant.config import DescendantConfig

    if text is not None:
        (tmp_path / "config.json").write_text(text)
    with pytest.raises(LearngeneError, match=message):
        DescendantConfig.load(tmp_path)


def test_weights_that_do_not_fit_the_config_are_refused_in_one_line(descendant, tmp_path):
    save_descendant(descendant, tmp_path / "d")
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    config["heads_per_layer"] = [1] * len(config["heads_per_layer"])  # a hand edit: fewer heads than the weights
    (tmp_path / "d" / "config.json").write_text(json.dumps(config))
    # Before: PyTorch's message, one line per mismatched tensor inside the error.
    with pytest.raises(LearngeneError) as caught:
        load_descendant(tmp_path / "d")
    message = str(caught.value)
    assert "\n" not in message
    assert "do not match its config.json" in message and "tensor(s) of another shape, e.g. blocks.1.attn.qkv" in message


def test_a_damaged_transforms_file_is_refused_in_one_line_and_a_missing_one_warned(tiny_ancestor, tiny_distances,
                                                                                     tmp_path, caplog):
    spec = DescendantSpec(depth=5, num_classes=3, ffn_groups=[[2, 3]], train_transform=True)
    save_descendant(build_descendant(tiny_ancestor, spec, distances=tiny_distances), tmp_path / "d")
    from safetensors.torch import load_file, save_file

    path = tmp_path / "d" / "transforms.safetensors"
    saved = load_file(str(path))
    save_file({k: v for k, v in saved.items() if k != "0.fc1_bias"}, str(path))
    # Before: KeyError '0.fc1_bias' (and a truncated file: safetensors' SafetensorError).
    with pytest.raises(LearngeneError, match=r"transforms.safetensors is corrupt or incomplete \(missing '0.fc1_bias'\)"):
        load_descendant(tmp_path / "d")
    path.write_bytes(b"garbage")
    with pytest.raises(LearngeneError, match=r"transforms.safetensors is corrupt or incomplete"):
        load_descendant(tmp_path / "d")
    path.unlink()
    with caplog.at_level("WARNING"):
        load_descendant(tmp_path / "d")  # before: silently lost T
    assert "transforms.safetensors is missing" in caplog.text


def test_saving_something_else_is_refused_and_writes_nothing(tiny_ancestor, tmp_path):
    from learngene import save_learngene

    # Before: AttributeError ('Ancestor' object has no attribute 'config' / 'shared').
    with pytest.raises(LearngeneError, match=r"save_descendant saves a Descendant .*got Ancestor"):
        save_descendant(tiny_ancestor, tmp_path / "d")
    with pytest.raises(LearngeneError, match=r"save_learngene saves a Learngene .*got Ancestor"):
        save_learngene(tiny_ancestor, tmp_path / "g")
    assert list(tmp_path.iterdir()) == []
