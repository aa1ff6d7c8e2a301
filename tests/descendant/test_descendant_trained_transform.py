"""A descendant whose FFN transformation T is trained keeps T across save and load, so a tracked run trains it."""

import numpy as np
import torch

import learngene as lg
from learngene.descendant.io import TRANSFORMS_FILE
from learngene.descendant.transform import TRANSFORMS_ATTR


def _trained_t_descendant():
    ancestor = lg.load_ancestor("random:vit_tiny_patch16_224", img_size=32)
    distances = np.random.default_rng(0).uniform(10, 100, (12, 3))
    # [2, 3, 4] is cut by the depth: T keeps 3 outputs and layers 2, 3 use the first two (saved and reloaded so)
    spec = lg.DescendantSpec(depth=4, width_ratio=1, num_classes=5, img_size=32, ffn_groups=[[0, 1], [2, 3, 4]],
                             train_transform=True)
    return lg.build_descendant(ancestor, spec, distances=distances)


def test_trained_transform_survives_save_and_load(tmp_path):
    descendant = _trained_t_descendant()
    model = descendant.model
    x = torch.randn(2, 3, 32, 32)
    model.train()
    model(x).sum().backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()  # move T and the residuals away from their start
    model.eval()
    with torch.no_grad():
        expected = model(x)
    lg.save_descendant(descendant, tmp_path / "d")
    assert (tmp_path / "d" / TRANSFORMS_FILE).is_file()
    back = lg.load_descendant(tmp_path / "d").model
    assert hasattr(back, TRANSFORMS_ATTR)
    t_params = {n for n, _ in back.named_parameters() if n.startswith(TRANSFORMS_ATTR)}
    assert t_params  # T is trainable again
    with torch.no_grad():
        assert torch.allclose(back(x), expected, atol=1e-6)
    # A gradient step after loading reaches T.
    back.train()
    back(x).sum().backward()
    assert all(p.grad is not None for n, p in back.named_parameters() if n in t_params)


def test_plain_weights_still_load_into_timm_alone(tmp_path):
    from safetensors.torch import load_file

    descendant = _trained_t_descendant()
    lg.save_descendant(descendant, tmp_path / "d")
    state = load_file(str(tmp_path / "d" / "model.safetensors"))
    assert not any(k.startswith(TRANSFORMS_ATTR) or "parametrizations" in k for k in state)
