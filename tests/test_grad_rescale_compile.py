"""`torch.compile` of a network with NA's layer-wise gradient rescaling (`na_cuda.nn.GradRescale`, spec §4).

The rescale keeps per-pass state across calls. Held in Python numbers it made dynamo recompile on every call
(the call index was a new constant each time) until the recompile limit, and `fullgraph=True` failed ("HOP:
Unsafe side effect", a Python attribute set in a backward). These tests train a 3-layer NA net compiled with
`fullgraph=True` for several steps, count the graphs dynamo compiles (recompiles are errors here), and compare
every step's gradients and rescale state with the same net run eagerly.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import na_cuda
from na_cuda.nn import LIF, SeqToANN, enable_grad_rescale


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Forget compiled code before and after: a later test compiling nn.Sequential.forward at other shapes
    would otherwise recompile it with dynamic shapes (dynamo's automatic dynamic)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _net(round_decimals):
    torch.manual_seed(0)
    net = nn.Sequential(
        SeqToANN(nn.Linear(12, 16)),
        LIF(),
        SeqToANN(nn.Linear(16, 16)),
        LIF(),
        SeqToANN(nn.Linear(16, 4)),
        LIF(),
    ).double()
    return net, enable_grad_rescale(net, round_decimals)


def _graph_count(backend: str):
    """A dynamo backend that counts the non-empty graphs it is handed (a recompile hands it another one)."""
    graphs = []

    def count(gm: torch.fx.GraphModule, example_inputs):
        if any(n.op == "call_function" for n in gm.graph.nodes):
            graphs.append(gm)
        return torch._dynamo.lookup_backend(backend)(gm, example_inputs)

    return count, graphs


@pytest.mark.parametrize(
    "backend,round_decimals",
    [
        ("aot_eager", None),
        ("aot_eager", 3),
        pytest.param("inductor", 3, marks=pytest.mark.slow),
    ],
)
def test_compiled_grad_rescale_trains_with_one_graph(backend, round_decimals):
    eager, state = _net(round_decimals)
    compiled_net, compiled_state = copy.deepcopy((eager, state))  # the copy's LIFs share the copied state
    assert compiled_net[1].grad_rescale is compiled_state
    count, graphs = _graph_count(backend)
    compiled = torch.compile(compiled_net, backend=count, fullgraph=True)
    opt_e = torch.optim.SGD(eager.parameters(), lr=0.5)
    opt_c = torch.optim.SGD(compiled_net.parameters(), lr=0.5)
    g = torch.Generator().manual_seed(1)
    steps = 5
    with torch._dynamo.config.patch(error_on_recompile=True):
        for step in range(steps):
            x = torch.rand(5, 8, 12, generator=g, dtype=torch.float64) * 1.5
            target = torch.rand(5, 8, 4, generator=g, dtype=torch.float64)
            for net, opt in ((eager, opt_e), (compiled, opt_c)):
                opt.zero_grad()
                ((net(x) - target) ** 2).sum().backward()
            grads_e = [p.grad for p in eager.parameters()]
            grads_c = [p.grad for p in compiled_net.parameters()]
            assert all(ge.abs().sum() > 0 for ge in grads_e)  # every layer gets a gradient: the rescale acts
            # inductor fuses (and so rounds) the float64 arithmetic differently; aot_eager runs eager kernels
            tol = 0.0 if backend == "aot_eager" else 1e-12
            for ge, gc in zip(grads_e, grads_c):
                torch.testing.assert_close(gc, ge, rtol=tol, atol=tol)
            torch.testing.assert_close(compiled_state._main.m_last, state._main.m_last, rtol=tol, atol=tol)
            assert compiled_state._main.calls.item() == state._main.calls.item() == 3 * (step + 1)
            opt_e.step()
            opt_c.step()
    assert len(graphs) == 1, f"{len(graphs)} graphs compiled for {steps} training steps"


def test_grad_rescale_state_follows_the_input_device_and_dtype():
    """The state is created on the CPU and moves to the device of the first input it sees; the index is a
    tensor, so two forwards give two distinct, increasing indices."""
    state = na_cuda.nn.GradRescale()
    i1, i2 = state._next_index(torch.device("cpu")), state._next_index(torch.device("cpu"))
    assert (i1.item(), i2.item()) == (1, 2) and i1.dtype == torch.int64
    if torch.cuda.is_available():
        i3 = state._next_index(torch.device("cuda", 0))
        assert i3.device.type == "cuda" and i3.item() == 3 and state._main.m_last.device.type == "cuda"
