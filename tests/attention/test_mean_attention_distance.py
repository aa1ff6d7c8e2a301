import math

import pytest
import torch

from learngene import mean_attention_distance
from learngene.attention.distance import patch_distance_matrix


def brute_force_mad(attn, rows, cols, patch, prefix):
    B, H, N, _ = attn.shape
    out = torch.zeros(H, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            total = 0.0
            for qi in range(rows * cols):
                for kj in range(rows * cols):
                    dq = divmod(qi, cols)
                    dk = divmod(kj, cols)
                    dist = patch * math.hypot(dq[0] - dk[0], dq[1] - dk[1])
                    total += float(attn[b, h, prefix + qi, prefix + kj]) * dist
            out[h] += total / (rows * cols)
    return out / B


def test_identity_attention_has_zero_distance():
    G = 16
    attn = torch.eye(G + 1).expand(2, 3, G + 1, G + 1)
    assert torch.allclose(mean_attention_distance(attn, 4, 16), torch.zeros(3))


def test_all_mass_on_the_prefix_token_counts_as_zero_and_is_not_renormalised():
    G = 9
    attn = torch.zeros(1, 2, G + 1, G + 1)
    attn[..., 0] = 1.0  # every query attends only to CLS
    assert torch.allclose(mean_attention_distance(attn, 3, 14), torch.zeros(2))
    # Half on CLS, half uniform over patches: exactly half of the uniform case (no renormalisation).
    uniform = torch.zeros(1, 1, G + 1, G + 1)
    uniform[..., 1:] = 1.0 / G
    half = uniform * 0.5
    half[..., 0] = 0.5
    assert torch.allclose(mean_attention_distance(half, 3, 14), 0.5 * mean_attention_distance(uniform, 3, 14))


def test_uniform_attention_gives_the_mean_pairwise_patch_distance():
    rows, cols, patch = 4, 5, 8
    G = rows * cols
    attn = torch.full((3, 2, G + 1, G + 1), 1.0 / (G + 1))
    attn[..., 1:] = 1.0 / G
    attn[..., 0] = 0.0
    expected = patch_distance_matrix((rows, cols), patch).mean()
    assert torch.allclose(mean_attention_distance(attn, (rows, cols), patch), expected.expand(2), atol=1e-5)


@pytest.mark.parametrize("prefix", [0, 1, 5])
def test_random_attention_matches_the_definition(prefix):
    torch.manual_seed(prefix)
    rows, cols, patch = 3, 4, 16
    N = rows * cols + prefix
    attn = torch.randn(2, 3, N, N).softmax(-1)
    got = mean_attention_distance(attn, (rows, cols), patch, num_prefix_tokens=prefix)
    assert torch.allclose(got.double(), brute_force_mad(attn, rows, cols, patch, prefix), atol=1e-4)


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="prefix"):
        mean_attention_distance(torch.rand(1, 1, 10, 10), 4, 16)
