"""The logged training loss and top-1 are the per-step values averaged over the log interval, summed on the device
(no host-device transfer inside the step) and read once per log line."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from learngene.training.engine import RunningMetrics, StepContext, train_one_epoch
from learngene.training.optim import WarmupCosine


def _frozen_context(model: nn.Module, accum: int) -> StepContext:
    # lr 0: the model never changes, so the expected top-1 can be computed from it independently afterwards
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scheduler = WarmupCosine(optimizer, peak_lr=0.0, total_steps=100, warmup_steps=0, warmup_lr=0.0, min_lr=0.0)
    return StepContext(model=model, optimizer=optimizer, scheduler=scheduler, criterion=nn.CrossEntropyLoss(),
                       device=torch.device("cpu"), accum_steps=accum, running=RunningMetrics(torch.device("cpu")))


@pytest.mark.parametrize("soft", [False, True])
def test_logged_values_are_the_per_step_values_averaged(soft):
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    generator = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(12):  # 6 steps of 2 micro-batches of 5
        x = torch.randn(5, 6, generator=generator)
        y = torch.randint(0, 3, (5,), generator=generator)
        if soft:  # mixup-like soft targets: the largest weight on y
            y = 0.7 * nn.functional.one_hot(y, 3).float() + 0.1
        batches.append((x, y))
    ctx = _frozen_context(model, accum=2)
    per_step, logged = [], []

    def on_step(step, loss, images):
        per_step.append(float(loss))  # the step's mean loss over its micro-batches
        if step % 3 == 0:
            logged.append(ctx.running.read(3))
        return False

    train_one_epoch(ctx, batches, start_step=0, num_steps=6, on_step=on_step)
    with torch.no_grad():
        hits = [(model(x).argmax(1) == (y.argmax(1) if soft else y)).float() for x, y in batches]
        losses = [nn.functional.cross_entropy(model(x), y).item() for x, y in batches]
    for interval, record in enumerate(logged):
        steps = range(3 * interval, 3 * interval + 3)
        assert record["loss"] == pytest.approx(sum(per_step[s] for s in steps) / 3, rel=1e-6)  # fp32 steps
        micro = range(6 * interval, 6 * interval + 6)
        assert record["loss"] == pytest.approx(sum(losses[m] for m in micro) / 6, rel=1e-6)
        assert record["top1"] == pytest.approx(100 * torch.cat([hits[m] for m in micro]).mean().item())
    assert len(logged) == 2 and logged[0] != logged[1]
