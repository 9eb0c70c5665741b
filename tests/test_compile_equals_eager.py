"""``--compile`` changes no number of a run (docs/training.md): the training step compiled by
``na_cuda.train.loop.forward_loss`` is bit-equal to the eager step, over several optimiser steps.

Inductor's layout optimisation (on by default for a graph with convolutions) ran the convolutions channels-last,
whose weight gradient sums in another order: ~1e-7 relative on the first conv layer's gradient at the first step
(NA; STBP's rect surrogate hid it), which the spikes amplified into another run (issue 24: digits,
``--batch-size 4 --seed 0``, epoch-2 test accuracy 94.37 % eager against 93.24 % compiled). ``forward_loss``
compiles with it off; the same command then gives the same metrics.json to the last digit, eager and compiled.
"""

from __future__ import annotations

import pytest
import torch

from na_cuda import train
from na_cuda.train import loop


@pytest.mark.parametrize("method", ["na", "stbp"])
def test_compiled_training_step_is_bit_equal_to_eager(method):
    cfg = train.make_config("digits", method=method, progress=False)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(cfg.T, 4, 1, 8, 8, generator=g) > 0.5).float()
    y = torch.arange(4) % 10
    runs = []
    for compile_mode in (None, "default"):
        torch._dynamo.reset()
        torch.manual_seed(0)
        net = train.model_from_config(cfg, (1, 8, 8))
        step = loop.forward_loss(train.make_config("digits", method=method, compile=compile_mode), net)
        opt = torch.optim.AdamW(net.parameters(), lr=5e-3)
        trace = []
        for _ in range(3):
            opt.zero_grad()
            out, loss = step(x, y)
            loss.backward()
            trace.append((out.detach(), loss.detach(), [p.grad.clone() for p in net.parameters()]))
            opt.step()
        runs.append(trace)
    for (o0, l0, g0), (o1, l1, g1) in zip(*runs):
        assert torch.equal(o0, o1) and torch.equal(l0, l1)
        assert all(torch.equal(a, b) for a, b in zip(g0, g1)), [float((a - b).abs().max()) for a, b in zip(g0, g1)]
