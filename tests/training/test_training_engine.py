"""train_one_epoch / evaluate on a tiny linear model: accumulation, clipping, bf16 autocast, stop, metrics."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from learngene.training.engine import StepContext, evaluate, train_one_epoch
from learngene.training.optim import WarmupCosine


def _context(model: nn.Module, accum: int = 1, **kwargs) -> StepContext:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = WarmupCosine(optimizer, peak_lr=0.1, total_steps=100, warmup_steps=0, min_lr=0.1)
    return StepContext(model=model, optimizer=optimizer, scheduler=scheduler, criterion=nn.CrossEntropyLoss(),
                       device=torch.device("cpu"), accum_steps=accum, **kwargs)


def _batches(n: int, size: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n * size, 6, generator=g)
    y = torch.randint(0, 3, (n * size,), generator=g)
    return [(x[i * size:(i + 1) * size], y[i * size:(i + 1) * size]) for i in range(n)]


def test_accumulation_equals_one_big_batch():
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    big = copy.deepcopy(model)
    small = _batches(4, 4)  # 4 micro-batches of 4 -> 2 steps of 8
    result = train_one_epoch(_context(model, accum=2), small, start_step=10, num_steps=2)
    assert (result["step"], result["steps"], result["images"]) == (12, 2, 16)
    merged = [(torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])) for a, b in zip(small[::2], small[1::2], strict=True)]
    train_one_epoch(_context(big), merged, start_step=0, num_steps=2)
    for p, q in zip(model.parameters(), big.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)


def test_clipping_bounds_the_update():
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = _batches(1, 8)[0]
    train_one_epoch(_context(model, clip_grad=1e-3), [(x * 1000, y)], start_step=0, num_steps=1)
    moved = torch.sqrt(sum(((p - b) ** 2).sum() for p, b in zip(model.parameters(), before, strict=True)))
    assert moved <= 0.1 * 1e-3 + 1e-7  # lr x max-norm


def test_bf16_autocast_on_cpu_and_stop_callback():
    model = nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Linear(16, 3))
    seen = []

    def on_step(step, loss, images):
        seen.append((step, float(loss), images))
        return step == 2  # a stop request after the second step

    result = train_one_epoch(_context(model, amp_dtype=torch.bfloat16), _batches(5, 4), 0, 5, on_step=on_step)
    assert result["stopped"] and result["steps"] == 2 and [s[0] for s in seen] == [1, 2]
    assert all(s[2] == 4 and s[1] > 0 for s in seen)


def test_evaluate_top1_top5_and_loss():
    class Fixed(nn.Module):
        def forward(self, x):
            return x  # the inputs are the logits

    logits = torch.tensor([[5.0, 1, 0, 0, 0, 0], [0.0, 5, 4, 0, 0, 0], [-1.0, 0.1, 0.2, 0.3, 0.4, 9]])
    targets = torch.tensor([0, 2, 0])
    metrics = evaluate(Fixed(), [(logits, targets)], torch.device("cpu"))
    assert metrics["top1"] == pytest.approx(100 / 3) and metrics["top5"] == pytest.approx(200 / 3)
    assert metrics["loss"] == pytest.approx(nn.functional.cross_entropy(logits, targets).item())
    assert metrics["images"] == 3
