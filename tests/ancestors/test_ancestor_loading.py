import time

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from learngene import LearngeneError, load_ancestor
from learngene.ancestors import builtin


def test_builtin_conversion_matches_the_onnx_graph(builtin_ancestor):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    graph = onnx.load(str(builtin.onnx_path()))
    graph.graph.output.append(onnx.helper.make_empty_tensor_value_info(builtin.ONNX_OUTPUT_FEATURES))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    expected = session.run([builtin.ONNX_OUTPUT_FEATURES], {"input_image": x.numpy()})[0]
    with torch.no_grad():
        got = builtin_ancestor.model.forward_features(x).numpy()
    assert got.shape == expected.shape == (2, 257, 384)
    assert np.abs(got - expected).max() < 1e-3


def test_builtin_summary(builtin_ancestor):
    s = builtin_ancestor.summary
    assert (s.arch, s.num_layers, s.num_heads, s.embed_dim, s.head_dim) == ("vit_small_patch14_dinov2", 12, 6, 384, 64)
    assert (s.patch_size, s.img_size, s.grid_size, s.num_prefix_tokens) == (14, 224, (16, 16), 1)
    assert s.layer_scale and s.qkv_bias and s.pretrained
    assert s.num_params == sum(p.numel() for p in builtin_ancestor.model.parameters())
    assert s.mean == pytest.approx((0.485, 0.456, 0.406))
    assert not builtin_ancestor.model.training


def test_builtin_cache_is_reused_and_a_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNGENE_CACHE_DIR", str(tmp_path))
    first = builtin.builtin_state_dict()
    path = builtin.cached_weights_path()
    assert path.parent == tmp_path and path.is_file()
    path.write_bytes(b"truncated")
    again = builtin.builtin_state_dict()
    assert torch.equal(first["blocks.3.attn.qkv.weight"], again["blocks.3.attn.qkv.weight"])


@pytest.mark.parametrize("name, patch, prefix", [
    ("vit_tiny_patch16_224", 16, 1),
    ("vit_small_patch14_reg4_dinov2", 14, 5),
    ("vit_base_patch8_224", 8, 1),
])
def test_random_models_of_the_vit_family(name, patch, prefix):
    ancestor = load_ancestor(f"random:{name}", img_size=112)
    s = ancestor.summary
    assert (s.patch_size, s.num_prefix_tokens, s.img_size) == (patch, prefix, 112)
    assert s.grid_size == (112 // patch, 112 // patch)
    assert not s.pretrained


def _tiny_weights(tmp_path):
    source = load_ancestor("random:vit_tiny_patch16_224", img_size=64)
    return source, source.model.state_dict()


@pytest.mark.parametrize("layout", ["safetensors", "pth-model", "pt-state_dict-module", "dir"])
def test_weights_files_load_through_the_adapter(tmp_path, layout):
    source, state = _tiny_weights(tmp_path)
    if layout == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif layout == "pth-model":
        path = tmp_path / "w.pth"
        torch.save({"model": state, "epoch": 3}, path)
    elif layout == "pt-state_dict-module":
        path = tmp_path / "w.pt"
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        (tmp_path / "d").mkdir()
        torch.save(state, tmp_path / "d" / "weights.pth")
        path = tmp_path / "d"
    loaded = load_ancestor(f"{path}@vit_tiny_patch16_224", img_size=64)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), source.model(x), atol=1e-6)
    # --arch is the alternative to @ARCH
    assert load_ancestor(str(path), arch="vit_tiny_patch16_224", img_size=64).summary.num_layers == 12


def test_weights_at_another_resolution_are_resampled(tmp_path):
    _, state = _tiny_weights(tmp_path)
    path = tmp_path / "w.pth"
    torch.save(state, path)
    loaded = load_ancestor(f"{path}@vit_tiny_patch16_224", img_size=96)
    assert loaded.model.pos_embed.shape[1] == 1 + 6 * 6


def test_a_missing_classifier_is_reported_not_fatal(tmp_path):
    _, state = _tiny_weights(tmp_path)
    path = tmp_path / "w.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("head.")}, path)
    loaded = load_ancestor(f"{path}@vit_tiny_patch16_224", img_size=64)
    assert loaded.load_report.missing == ["head.weight", "head.bias"]


@pytest.mark.parametrize("spec, message", [
    ("deit_smal_patch16_224", "did you mean deit_small_patch16_224"),
    ("random:not_a_model_at_all", "unknown model name"),
    ("/no/such/file.pth@vit_tiny_patch16_224", "does not exist"),
    ("weights.pth", "needs its architecture"),
])
def test_bad_specs_say_what_to_do(spec, message):
    with pytest.raises(LearngeneError, match=message):
        load_ancestor(spec)


def test_offline_uncached_hub_model_fails_fast_with_a_hint():
    start = time.monotonic()
    with pytest.raises(LearngeneError, match="builtin"):
        load_ancestor("deit_small_patch16_224")
    assert time.monotonic() - start < 1.0


def test_corrupt_and_mismatched_weights_are_clear_errors(tmp_path):
    corrupt = tmp_path / "broken.safetensors"
    corrupt.write_bytes(b"\x00garbage")
    with pytest.raises(LearngeneError, match="corrupt"):
        load_ancestor(f"{corrupt}@vit_tiny_patch16_224")
    _, state = _tiny_weights(tmp_path)
    path = tmp_path / "tiny.pth"
    torch.save(state, path)
    with pytest.raises(LearngeneError, match="architecture"):
        load_ancestor(f"{path}@vit_small_patch16_224", img_size=64)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LearngeneError, match="no weights file"):
        load_ancestor(f"{empty}@vit_tiny_patch16_224")


# ------------------------------------------------------------------------------------------- other resolutions
@pytest.mark.parametrize("img_size", [112, 448])
def test_builtin_at_other_resolutions_matches_the_onnx_graph(img_size):
    """The graph resamples its own 37 x 37 position table to any input grid: the independent reference."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    ancestor = load_ancestor("builtin", img_size=img_size)
    s = ancestor.summary
    assert (s.img_size, s.grid_size) == (img_size, (img_size // 14, img_size // 14))
    graph = onnx.load(str(builtin.onnx_path()))
    for dim in graph.graph.input[0].type.tensor_type.shape.dim[2:]:  # the export fixed 224 x 224; free it
        dim.ClearField("dim_value")
        dim.dim_param = "side"
    del graph.graph.value_info[:]  # shapes inferred for 224 px
    graph.graph.output.append(onnx.helper.make_empty_tensor_value_info(builtin.ONNX_OUTPUT_FEATURES))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 3, img_size, img_size, generator=torch.Generator().manual_seed(0))
    expected = session.run([builtin.ONNX_OUTPUT_FEATURES], {"input_image": x.numpy()})[0]
    with torch.no_grad():
        got = ancestor.model.forward_features(x).numpy()
    assert got.shape == expected.shape == (1, 1 + (img_size // 14) ** 2, 384)
    assert np.abs(got - expected).max() < 1e-3


@pytest.mark.parametrize("spec, img_size, message", [
    ("builtin", 100, "multiple of 14 such as 98"),
    ("builtin", 7, "multiple of 14 such as 14"),
    ("random:vit_tiny_patch16_224", 100, "multiple of 16 such as 96"),
    ("random:vit_tiny_patch16_224", 0, "positive number of pixels"),
    # Before: a misleading "cannot build ... as a ViT (... got float); choose a VisionTransformer model" / TypeError.
    ("random:vit_tiny_patch16_224", float("nan"), r"positive number of pixels \(got nan\)"),
    ("random:vit_tiny_patch16_224", "32", r"positive number of pixels \(got '32'\)"),
])
def test_invalid_resolutions_are_one_line(spec, img_size, message):
    with pytest.raises(LearngeneError, match=message):
        load_ancestor(spec, img_size=img_size)


@pytest.mark.parametrize("img_size", [112, 448])
def test_builtin_analyze_at_other_resolutions_from_the_command_line(tmp_path, capsys, img_size):
    import json

    from learngene.cli import main

    out = tmp_path / "stats.json"
    argv = ["analyze", "--ancestor", "builtin", "--img-size", str(img_size), "--num-images", "1", "--out", str(out)]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert data["ancestor"]["img_size"] == img_size and np.asarray(data["mean_attention_distance"]).shape == (12, 6)
    grid = img_size // 14
    assert np.asarray(data["cls_attention"]).shape == (12, 6, grid, grid)
    assert main(["analyze", "--ancestor", "builtin", "--img-size", "113", "--out", str(tmp_path / "x.json")]) == 2
    assert "multiple of 14" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- identity
def test_the_weights_hash_tells_ancestors_apart_but_not_resolutions(builtin_ancestor, tmp_path):
    import timm

    assert len(builtin_ancestor.summary.weights_sha256) == 16
    assert load_ancestor("builtin", img_size=112).summary.weights_sha256 == builtin_ancestor.summary.weights_sha256
    hashes = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        model = timm.create_model("vit_tiny_patch16_224", img_size=32)
        save_file(model.state_dict(), str(tmp_path / f"w{seed}.safetensors"))
        hashes.append(load_ancestor(f"{tmp_path}/w{seed}.safetensors@vit_tiny_patch16_224", img_size=32)
                      .summary.weights_sha256)
    assert hashes[0] == hashes[1] != hashes[2]
    assert load_ancestor("random:vit_tiny_patch16_224", img_size=32).summary.weights_sha256 == ""


def test_a_pathlib_path_is_a_weights_file_and_other_objects_are_refused_in_one_line(tmp_path):
    # Before: AttributeError "'PosixPath' object has no attribute 'strip'" (and the same for None).
    model = load_ancestor("random:test_vit4", img_size=32).model
    path = tmp_path / "anc.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    loaded = load_ancestor(path, arch="test_vit4", img_size=32)
    assert torch.equal(loaded.model.blocks[0].attn.qkv.weight, model.blocks[0].attn.qkv.weight)
    with pytest.raises(LearngeneError, match=r"the ancestor must be given as text \(got NoneType\)"):
        load_ancestor(None)
