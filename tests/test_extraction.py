import numpy as np
import pytest
import torch

from learngene import LearngeneError, extract_learngene, load_ancestor, load_learngene, save_learngene
from learngene.head_weights import read_head, write_head


@pytest.fixture(scope="module")
def tiny():
    return load_ancestor("random:vit_small_patch14_reg4_dinov2", img_size=56)


@pytest.fixture(scope="module")
def table(tiny):
    rng = np.random.default_rng(0)
    return rng.uniform(10, 120, (tiny.summary.num_layers, tiny.summary.num_heads))


def test_head_slices_follow_timms_q_k_v_by_heads_layout(tiny):
    attn = tiny.model.blocks[0].attn
    H, D, C = attn.num_heads, attn.head_dim, tiny.summary.embed_dim
    head = read_head(attn, 2)
    qkv_w = attn.qkv.weight.reshape(3, H, D, C)
    assert torch.equal(head["q_weight"], qkv_w[0, 2]) and torch.equal(head["v_weight"], qkv_w[2, 2])
    assert torch.equal(head["k_bias"], attn.qkv.bias.reshape(3, H, D)[1, 2])
    assert torch.equal(head["proj_weight"], attn.proj.weight[:, 2 * D : 3 * D])
    # Writing every head back into a fresh module reproduces the attention output exactly.
    from timm.layers import Attention

    clone = Attention(C, num_heads=H, qkv_bias=True)
    for h in range(H):
        write_head(clone, h, read_head(attn, h))
    clone.proj.bias.data.copy_(attn.proj.bias)
    x = torch.randn(2, 7, C)
    with torch.no_grad():
        assert torch.allclose(clone(x), attn(x), atol=1e-6)


def test_centroids_carry_the_real_heads_with_biases(tiny, table):
    lg = extract_learngene(tiny, table, eps=10, ffn_groups=None)
    for layer_idx, block in enumerate(tiny.model.blocks):
        assert len(lg.heads[layer_idx]) == len(lg.priority(layer_idx)) == len(lg.layers[layer_idx].clusters)
        for k, head_index in enumerate(lg.priority(layer_idx)):
            expected = read_head(block.attn, head_index)
            assert set(lg.heads[layer_idx][k]) == set(expected)
            assert all(torch.equal(lg.heads[layer_idx][k][key], expected[key]) for key in expected)
        assert torch.equal(lg.ffn[layer_idx]["fc1.weight"], block.mlp.fc1.weight)
        assert torch.equal(lg.shared[f"blocks.{layer_idx}.ls1.gamma"], block.ls1.gamma)
    for key in ("cls_token", "reg_token", "pos_embed", "patch_embed.proj.weight", "norm.weight"):
        assert torch.equal(lg.shared[key], tiny.model.state_dict()[key])


def test_average_centroids_average_the_members(tiny, table):
    lg = extract_learngene(tiny, table, eps=30, centroid="average", ffn_groups=None)
    layer_idx = int(np.argmax([max(len(c) for c in layer.clusters) for layer in lg.layers]))
    members = lg.layers[layer_idx].clusters[0]
    assert len(members) > 1
    expected = torch.stack([read_head(tiny.model.blocks[layer_idx].attn, h)["q_weight"] for h in members]).mean(0)
    assert torch.allclose(lg.heads[layer_idx][0]["q_weight"], expected)


def test_grouped_layers_inherit_the_first_layers_ffn(tiny, table):
    lg = extract_learngene(tiny, table, ffn_groups=[[1, 2, 3]])
    first = tiny.model.blocks[1].mlp
    for layer_idx in (1, 2, 3):
        assert torch.equal(lg.ffn[layer_idx]["fc2.weight"], first.fc2.weight)
        assert lg.group_of(layer_idx) == ([1, 2, 3], layer_idx - 1)
    assert lg.group_of(0) is None
    ungrouped = extract_learngene(tiny, table, ffn_groups=None)
    assert lg.num_params < ungrouped.num_params < tiny.summary.num_params


def test_save_and_load_round_trip(tiny, table, tmp_path):
    lg = extract_learngene(tiny, table, ffn_groups=[[4, 5]], provenance={"probe": "unit test"})
    save_learngene(lg, tmp_path / "lg")
    back = load_learngene(tmp_path / "lg")
    assert back.ffn_groups == [[4, 5]] and back.provenance["probe"] == "unit test"
    assert back.num_params == lg.num_params and back.ancestor == lg.ancestor
    assert [back.priority(layer_idx) for layer_idx in range(12)] == [lg.priority(layer_idx) for layer_idx in range(12)]
    assert torch.equal(back.heads[3][0]["v_bias"], lg.heads[3][0]["v_bias"])
    with pytest.raises(LearngeneError, match="already exists"):
        save_learngene(lg, tmp_path / "lg")


def test_force_replaces_a_learngene_but_never_a_descendant_or_foreign_folder(tiny, table, tmp_path):
    lg = extract_learngene(tiny, table, ffn_groups=[[4, 5]])
    save_learngene(lg, tmp_path / "lg")
    (tmp_path / "lg" / "learngene.json").write_text("stale")
    save_learngene(lg, tmp_path / "lg", force=True)
    assert load_learngene(tmp_path / "lg").ffn_groups == [[4, 5]]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "data.csv").write_text("1,2")
    with pytest.raises(LearngeneError, match="did not write it"):
        save_learngene(lg, tmp_path / "other", force=True)
    assert (tmp_path / "other" / "data.csv").read_text() == "1,2"
    (tmp_path / "lg" / ".learngene-output.json").write_text(
        '{"format": "learngene-output/1", "kind": "descendant"}')
    with pytest.raises(LearngeneError, match="holds a descendant, not a learngene"):
        save_learngene(lg, tmp_path / "lg", force=True)


def test_statistics_from_another_ancestor_are_rejected(tiny):
    with pytest.raises(LearngeneError, match="layers x"):
        extract_learngene(tiny, np.ones((12, 3)))


def _edit_description(directory, edit):
    import json

    path = directory / "learngene.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps(edit(data)))


@pytest.mark.parametrize("edit", [
    lambda data: [data],  # a JSON list, not an object (before: TypeError)
    lambda data: {k: v for k, v in data.items() if k != "layers"},  # (before: KeyError 'layers')
    lambda data: {**data, "layers": data["layers"][:2]},  # before: accepted, then IndexError while building
    lambda data: {**data, "layers": [{**data["layers"][0], "centroids": data["layers"][0]["centroids"] + [0]},
                                     *data["layers"][1:]]},  # before: accepted with an empty head
])
def test_a_damaged_learngene_description_is_refused_when_loaded(tiny, table, tmp_path, edit):
    save_learngene(extract_learngene(tiny, table), tmp_path / "lg")
    assert len(load_learngene(tmp_path / "lg").layers) == tiny.summary.num_layers  # intact: loads
    _edit_description(tmp_path / "lg", edit)
    with pytest.raises(LearngeneError, match=r"the learngene in .*lg is incomplete or damaged .*learngene extract"):
        load_learngene(tmp_path / "lg")


def test_ffn_groups_as_text_mean_what_they_mean_on_the_command_line(tiny, table):
    # Before: "2-3" was read character by character ("an FFN group needs at least 2 layers, got ['2']") and
    # "none" failed with int()'s ValueError.
    assert extract_learngene(tiny, table, ffn_groups="2-3,5-6").ffn_groups == [[2, 3], [5, 6]]
    assert extract_learngene(tiny, table, ffn_groups="none").ffn_groups == []


@pytest.mark.parametrize(("ancestor", "distances", "message"), [
    ("builtin", None, r"needs a loaded ancestor, got str"),  # before: AttributeError 'str' has no 'summary'
    (None, [[1.0, 2.0], [3.0]], r"statistics must be a table of numbers"),  # before: numpy's inhomogeneous shape
])
def test_wrong_kinds_of_input_are_refused_in_one_line(tiny, table, ancestor, distances, message):
    with pytest.raises(LearngeneError, match=message):
        extract_learngene(ancestor or tiny, table if distances is None else distances)
