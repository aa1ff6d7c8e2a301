import numpy as np
import pytest
import torch
from timm.layers import set_fused_attn  # noqa: F401  (documented alternative; we flip per module)

from learngene import LearngeneError, load_ancestor, mean_attention_distance
from learngene.attention.capture import capture_attention
from learngene.attention.statistics import HeadStatistics, attention_maps, compute_head_statistics
from learngene.probes import load_probe_images


@pytest.fixture(scope="module")
def tiny():
    return load_ancestor("random:vit_small_patch14_reg4_dinov2", img_size=56)


def recomputed_attention(block, x):
    """softmax(q k^T * scale) from the block's own qkv projection, for comparison."""
    attn = block.attn
    B, N, _ = x.shape
    qkv = attn.qkv(block.norm1(x)).reshape(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, _ = qkv.unbind(0)
    return ((q * attn.scale) @ k.transpose(-2, -1)).softmax(-1)


@pytest.mark.parametrize("fused", [True, False])
def test_capture_gives_the_softmax_and_restores_the_fused_setting(tiny, fused):
    model = tiny.model
    for block in model.blocks:
        block.attn.fused_attn = fused
    captured = {}
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        with capture_attention(model, lambda layer, attn: captured.setdefault(layer, attn.clone())):
            model(x)
        tokens = model.norm_pre(model._pos_embed(model.patch_embed(x)))
        expected0 = recomputed_attention(model.blocks[0], tokens)
    assert sorted(captured) == list(range(len(model.blocks)))
    assert captured[0].shape == (2, tiny.summary.num_heads, 5 + 16, 5 + 16)
    assert torch.allclose(captured[0], expected0, atol=1e-5)
    assert all(block.attn.fused_attn == fused for block in model.blocks)
    assert all(not block.attn.attn_drop._forward_hooks for block in model.blocks)


def test_statistics_match_the_mad_of_captured_maps(tiny):
    probes = load_probe_images("builtin", tiny.summary, num_images=5)
    stats = compute_head_statistics(tiny.model, probes, tiny.summary, batch_size=2, device="cpu", statistics="all")
    maps = []
    with torch.no_grad(), capture_attention(tiny.model, lambda layer, attn: maps.append((layer, attn.clone()))):
        tiny.model(probes.tensors)
    layer3 = next(attn for layer, attn in maps if layer == 3)
    expected = mean_attention_distance(layer3, tiny.summary.grid_size, tiny.summary.patch_size, 5)
    assert np.allclose(stats.mean_attention_distance[3], expected.numpy(), atol=1e-4)
    assert stats.num_images == 5
    L, H = tiny.summary.num_layers, tiny.summary.num_heads
    assert stats.entropy.shape == (L, H) and np.all(stats.entropy > 0)
    assert stats.mean_pattern.shape == (L, H, 7, 7)
    # patch queries spread their patch-to-patch mass over offsets: sums are below 1 (the rest went to prefixes)
    assert np.all(stats.mean_pattern.sum(axis=(2, 3)) <= 1 + 1e-6)
    expected_cls = layer3[:, :, 0, 5:].mean(0).reshape(H, 4, 4)  # CLS query over the 4 x 4 patch grid
    assert np.allclose(stats.cls_attention[3], expected_cls.numpy(), atol=1e-5)


def test_json_round_trip(tiny, tmp_path):
    probes = load_probe_images("builtin", tiny.summary, num_images=2)
    stats = compute_head_statistics(tiny.model, probes, tiny.summary, statistics="all")
    back = HeadStatistics.load_json(stats.save_json(tmp_path / "s.json"))
    assert np.allclose(back.mean_attention_distance, stats.mean_attention_distance, atol=1e-5)
    assert back.mean_pattern.shape == stats.mean_pattern.shape
    assert back.ancestor["arch"] == "vit_small_patch14_reg4_dinov2"


def test_probe_images_decode_lazily_one_batch_at_a_time(tiny):
    probes = load_probe_images("builtin", tiny.summary, num_images=6)
    decoded = []
    probes.loaders = [lambda f=f, i=i: (decoded.append(i), f())[1] for i, f in enumerate(probes.loaders)]
    batches = probes.batches(2)
    next(batches)
    assert decoded == [0, 1]


def test_folder_probe_sets_skip_unreadable_files(tiny, tmp_path):
    from PIL import Image

    (tmp_path / "sub").mkdir()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "a.png")
    Image.new("RGB", (30, 50), (10, 200, 10)).save(tmp_path / "sub" / "b.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    probes = load_probe_images(tmp_path, tiny.summary)
    assert probes.names == ["a.png", "sub/b.jpg"] and probes.skipped == 1
    assert probes.tensors.shape == (2, 3, 56, 56)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LearngeneError, match="no readable images"):
        load_probe_images(empty, tiny.summary)


def test_attention_maps_of_one_image(tiny):
    probes = load_probe_images("builtin", tiny.summary, num_images=1)
    maps = attention_maps(tiny.model, probes.tensor(0), tiny.summary, layer=2)
    assert maps.shape == (tiny.summary.num_heads, 21, 21)
    assert np.allclose(maps.sum(-1), 1.0, atol=1e-5)
    with pytest.raises(LearngeneError, match="out of range"):
        attention_maps(tiny.model, probes.tensor(0), tiny.summary, layer=99)


def test_builtin_ancestor_has_real_head_structure_and_a_random_one_does_not(builtin_stats, builtin_ancestor):
    spread = np.ptp(builtin_stats.mean_attention_distance, axis=1)
    assert spread.max() >= 20.0, spread
    random_model = load_ancestor("random:vit_small_patch14_dinov2", img_size=224)
    probes = load_probe_images("builtin", random_model.summary, num_images=4)
    random_stats = compute_head_statistics(random_model.model, probes, random_model.summary)
    assert np.ptp(random_stats.mean_attention_distance, axis=1).max() < 5.0
    assert random_stats.mean_attention_distance.mean() > 100  # every random head looks nearly uniformly far


def reference_maps_by_hand(model, image):
    """Every layer's attention for one image, recomputed block by block from the qkv projections (no capture)."""
    with torch.no_grad():
        x = model.norm_pre(model._pos_embed(model.patch_embed(image[None])))
        maps = []
        for block in model.blocks:
            maps.append(recomputed_attention(block, x)[0].double().numpy())  # (H, N, N)
            x = block(x)
    return maps


def numpy_loop_mad(maps, rows, cols, patch, prefix):
    """method.md step 1 with plain loops: mean over query patches of sum_j A[i, j] * pixel distance (i, j)."""
    table = np.zeros((len(maps), maps[0].shape[0]))
    for layer, heads in enumerate(maps):
        for h, attn in enumerate(heads):
            total = 0.0
            for i in range(rows * cols):
                for j in range(rows * cols):
                    (ri, ci), (rj, cj) = divmod(i, cols), divmod(j, cols)
                    total += attn[prefix + i, prefix + j] * patch * np.hypot(ri - rj, ci - cj)
            table[layer, h] = total / (rows * cols)
    return table


@pytest.mark.parametrize("statistics", ["mad", "all"])
def test_mad_matches_a_numpy_loop_over_one_images_attention(tiny, statistics):
    probes = load_probe_images("builtin", tiny.summary, num_images=1)
    stats = compute_head_statistics(tiny.model, probes, tiny.summary, device="cpu", statistics=statistics)
    rows, cols = tiny.summary.grid_size
    expected = numpy_loop_mad(reference_maps_by_hand(tiny.model, probes.tensor(0)), rows, cols,
                              tiny.summary.patch_size, tiny.summary.num_prefix_tokens)
    assert np.abs(stats.mean_attention_distance - expected).max() < 1e-3


def test_mad_averages_images_like_separate_runs(tiny):
    probes = load_probe_images("builtin", tiny.summary, num_images=5)
    together = compute_head_statistics(tiny.model, probes, tiny.summary, batch_size=2, device="cpu")
    alone = []
    for index in range(5):
        maps = reference_maps_by_hand(tiny.model, probes.tensor(index))
        rows, cols = tiny.summary.grid_size
        alone.append(numpy_loop_mad(maps, rows, cols, tiny.summary.patch_size, tiny.summary.num_prefix_tokens))
    assert np.abs(together.mean_attention_distance - np.mean(alone, axis=0)).max() < 1e-3


def test_entropy_matches_a_numpy_reference(tiny):
    probes = load_probe_images("builtin", tiny.summary, num_images=1)
    stats = compute_head_statistics(tiny.model, probes, tiny.summary, device="cpu", statistics=["entropy"])
    maps = reference_maps_by_hand(tiny.model, probes.tensor(0))
    prefix = tiny.summary.num_prefix_tokens
    expected = [[-(a[prefix:] * np.log(a[prefix:])).sum(-1).mean() for a in heads] for heads in maps]
    assert np.allclose(stats.entropy, expected, atol=1e-4)
    assert np.isnan(stats.mean_attention_distance).sum() == 0  # MAD is always there (zeros are not asked for)


def test_unrequested_statistics_are_placeholders_that_save_and_load(tiny, tmp_path):
    probes = load_probe_images("builtin", tiny.summary, num_images=2)
    stats = compute_head_statistics(tiny.model, probes, tiny.summary, device="cpu")  # MAD only, the default
    L, H = tiny.summary.num_layers, tiny.summary.num_heads
    assert np.isnan(stats.entropy).all() and stats.entropy.shape == (L, H)
    assert stats.mean_pattern.shape == (L, H, 0, 0) and stats.cls_attention.shape == (L, H, 0, 0)
    back = HeadStatistics.load_json(stats.save_json(tmp_path / "mad.json"))
    assert np.allclose(back.mean_attention_distance, stats.mean_attention_distance, atol=1e-5)
    assert back.mean_pattern.size == 0 and np.isnan(back.entropy).all()


def test_unknown_statistics_are_refused_in_one_line(tiny):
    probes = load_probe_images("builtin", tiny.summary, num_images=1)
    with pytest.raises(LearngeneError, match="unknown statistics"):
        compute_head_statistics(tiny.model, probes, tiny.summary, statistics=["mad", "spread"])
