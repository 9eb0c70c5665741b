"""NIR import and export (issue 22, docs/nir.md): ``na_cuda.nir.from_nir`` / ``to_nir``.

- every node type against an independent forward-Euler simulation of NIR's ODEs (numpy, float64);
- our model -> to_nir -> (nir.write / nir.read) -> from_nir: outputs and gradients bit for bit, every neuron option;
- snnTorch 1.0: Leaky networks -> export_to_nir -> from_nir give snnTorch's spikes and STBP gradients (1e-6 float32,
  1e-12 float64); graphs its exporter writes that nir's type check rejects (scalar beta) are accepted; our model ->
  to_nir -> snnTorch's import_from_nir runs to the same spikes;
- Norse 1.1: our model -> to_nir -> norse's from_nir runs to the same spikes;
- refusals name the node, its type and the reason; strict=False placeholders; malformed and other-version files.

nir (and, for the peers' own NIR code, nirtorch, snnTorch, Norse) are optional: the tests skip without them.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir", reason="nir is not installed (pip install na_cuda[nir])")

from na_cuda import nir as nnir  # noqa: E402
from na_cuda.nn import LIF, SeqToANN  # noqa: E402

DT = 1e-4


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def _drive(shape: tuple, seed: int, dtype=torch.float32, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) * scale).to(dtype)


# ---------------------------------------------------------------------------------------------------------------
# optional dependency


def test_import_na_cuda_does_not_need_nir():
    code = (
        "import sys; sys.modules['nir'] = None\n"  # makes `import nir` fail
        "import na_cuda\n"
        "try:\n    import na_cuda.nir\nexcept ImportError as e:\n    print('ERR', e)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "ERR" in run.stdout and "pip install na_cuda[nir]" in run.stdout


# ---------------------------------------------------------------------------------------------------------------
# every node against forward Euler of the ODE (an independent numpy simulation)


def _euler(graph_nodes: list, x: np.ndarray) -> np.ndarray:
    """A chain of NIR nodes on x [T, B, ...], forward Euler with step DT (docs/nir.md), in float64."""
    for node in graph_nodes:
        T = x.shape[0]
        if isinstance(node, nir.Affine):
            x = x @ node.weight.T + node.bias
        elif isinstance(node, nir.Linear):
            x = x @ node.weight.T
        elif isinstance(node, nir.Scale):
            x = x * node.scale
        elif isinstance(node, (nir.LIF, nir.IF, nir.LI, nir.I, nir.CubaLIF, nir.CubaLI)):
            v = np.zeros_like(x[0]) + getattr(node, "v_leak", 0.0)
            cur = np.zeros_like(x[0])
            out = []
            for t in range(T):
                inp = x[t]
                if isinstance(node, (nir.CubaLIF, nir.CubaLI)):
                    cur = cur + DT / node.tau_syn * (-cur + node.w_in * inp)
                    inp = cur
                if isinstance(node, (nir.IF, nir.I)):
                    v = v + node.r * inp
                else:
                    tau = node.tau_mem if isinstance(node, (nir.CubaLIF, nir.CubaLI)) else node.tau
                    v = v + DT / tau * (node.v_leak - v + node.r * inp)
                if isinstance(node, (nir.LIF, nir.IF, nir.CubaLIF)):
                    s = (v > node.v_threshold).astype(np.float64)
                    v = np.where(s > 0, node.v_reset, v)
                    out.append(s)
                else:
                    out.append(v.copy())
            x = np.stack(out)
        else:
            raise AssertionError(type(node))
    return x


def _neurons(n: int) -> dict:
    rng = np.random.default_rng(1)
    tau = np.full(n, 5 * DT)
    return {
        "LIF": nir.LIF(tau=tau, r=np.full(n, 5.0), v_leak=np.zeros(n), v_threshold=np.full(n, 1.0)),
        "LIF per-neuron tau, r=1, v_reset=v_leak=-0.2": nir.LIF(
            tau=rng.uniform(2, 8, n) * DT,
            r=np.ones(n),
            v_leak=np.full(n, -0.2),
            v_threshold=np.full(n, 0.3),
            v_reset=np.full(n, -0.2),
        ),
        "LIF r=3": nir.LIF(tau=tau, r=np.full(n, 3.0), v_leak=np.zeros(n), v_threshold=np.full(n, 0.8)),
        "IF": nir.IF(r=np.full(n, 0.7), v_threshold=np.full(n, 1.0)),
        "CubaLIF": nir.CubaLIF(
            tau_syn=np.full(n, 3 * DT),
            tau_mem=rng.uniform(2, 8, n) * DT,
            r=np.full(n, 4.0),
            v_leak=np.zeros(n),
            v_threshold=np.full(n, 0.5),
            w_in=np.full(n, 2.0),
        ),
        "LI": nir.LI(tau=rng.uniform(2, 8, n) * DT, r=np.full(n, 2.0), v_leak=np.full(n, 0.1)),
        "I": nir.I(r=np.full(n, 0.5)),
        "CubaLI": nir.CubaLI(tau_syn=np.full(n, 2 * DT), tau_mem=np.full(n, 4 * DT), r=np.ones(n), v_leak=np.zeros(n)),
    }


@pytest.mark.parametrize("kind", list(_neurons(4)))
def test_node_equals_forward_euler(kind):
    n = 4
    rng = np.random.default_rng(2)
    aff = nir.Affine(weight=rng.normal(size=(n, 3)), bias=rng.normal(size=n) * 0.1)
    nodes = [aff, _neurons(n)[kind], nir.Scale(scale=np.linspace(0.5, 1.5, n))]
    graph = nir.NIRGraph.from_list(*nodes, type_check=False)
    model = nnir.from_nir(graph, method="stbp", dt=DT)
    x = _drive((12, 5, 3), 3, torch.float64)
    want = _euler(nodes, x.numpy())
    got = model(x).detach().numpy()
    assert model(x).dtype == torch.float64
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_layers_and_lif_fused_psc():
    torch.manual_seed(0)
    conv = nir.Conv2d(
        input_shape=(9, 9),
        weight=np.random.default_rng(0).normal(size=(3, 1, 3, 3)),
        stride=1,
        padding=1,
        dilation=1,
        groups=1,
        bias=np.zeros(3),
    )
    nodes = [
        conv,
        nir.SumPool2d(kernel_size=np.array([3, 3]), stride=np.array([3, 3]), padding=np.array([0, 0])),
        nir.AvgPool2d(kernel_size=np.array([3, 3]), stride=np.array([3, 3]), padding=np.array([0, 0])),
        nir.Flatten(input_type={"input": np.array([3, 1, 1])}, start_dim=0, end_dim=-1),
        nir.Linear(weight=np.random.default_rng(1).normal(size=(4, 3))),
        nir.LIF(tau=np.full(4, 5 * DT), r=np.full(4, 5.0), v_leak=np.zeros(4), v_threshold=np.full(4, 0.2)),
        nir.LI(tau=np.full(4, 2 * DT), r=np.ones(4), v_leak=np.zeros(4)),  # the PSC of the LIF: fused
    ]
    model = nnir.from_nir(nir.NIRGraph.from_list(*nodes, type_check=False), dt=DT)
    lifs = [m for m in model.modules() if isinstance(m, LIF)]
    assert len(lifs) == 1 and lifs[0].neuron.output == "psc" and lifs[0].neuron.tau_s == pytest.approx(2.0)
    x = _drive((6, 2, 1, 9, 9), 4, torch.float64)
    ref = nn.Sequential(
        SeqToANN(nn.Conv2d(1, 3, 3, padding=1, dtype=torch.float64), nn.AvgPool2d(3, divisor_override=1)),
        SeqToANN(nn.AvgPool2d(3), nn.Flatten(), nn.Linear(3, 4, bias=False, dtype=torch.float64)),
        LIF(tau_m=5.0, tau_s=2.0, threshold=0.2, strict_threshold=True),
    )
    with torch.no_grad():
        ref[0].module[0].weight.copy_(torch.as_tensor(conv.weight))
        ref[0].module[0].bias.zero_()
        ref[1].module[2].weight.copy_(torch.as_tensor(nodes[4].weight))
    got, want = model(x), ref(x)
    assert torch.allclose(got, want, rtol=0, atol=1e-12) and want.abs().sum() > 0


def test_non_chain_graph_runs_in_topological_order():
    """A skip connection (lif1 feeds affine2 and the skip) and a node with two inputs (summed)."""
    rng = np.random.default_rng(5)
    lif = lambda n, thr: nir.LIF(
        tau=np.full(n, 4 * DT), r=np.full(n, 4.0), v_leak=np.zeros(n), v_threshold=np.full(n, thr)
    )
    nodes = {
        "out": nir.Output(output_type={"output": np.array([3])}),  # listed first: order comes from the edges
        "a2": nir.Affine(weight=rng.normal(size=(3, 5)), bias=np.zeros(3)),
        "skip": nir.Linear(weight=rng.normal(size=(3, 5))),
        "lif2": lif(3, 0.5),
        "in": nir.Input(input_type={"input": np.array([4])}),
        "a1": nir.Affine(weight=rng.normal(size=(5, 4)), bias=np.zeros(5)),
        "lif1": lif(5, 0.3),
    }
    edges = [
        ("lif2", "out"),
        ("a2", "lif2"),
        ("skip", "lif2"),
        ("lif1", "a2"),
        ("lif1", "skip"),
        ("in", "a1"),
        ("a1", "lif1"),
    ]
    model = nnir.from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), dt=DT)
    x = _drive((10, 3, 4), 6, torch.float64)
    h = torch.as_tensor(_euler([nodes["a1"], nodes["lif1"]], x.numpy()))
    pre = _euler([nodes["a2"]], h.numpy()) + _euler([nodes["skip"]], h.numpy())
    want = _euler([nodes["lif2"]], pre)
    np.testing.assert_allclose(model(x).detach().numpy(), want, atol=1e-12)
    # and it exports back as the same graph
    again = nnir.from_nir(nnir.to_nir(model, x, dt=DT), dt=DT)
    assert torch.equal(again(x), model(x))


# ---------------------------------------------------------------------------------------------------------------
# round trip: our model -> to_nir -> from_nir, bit for bit

OPTIONS = {
    "default (psc, u >= thr)": dict(),
    "spike, strict": dict(output="spike", strict_threshold=True),
    "tau_m=2.3, threshold=0.6": dict(tau_m=2.3, threshold=0.6, output="spike"),
    "v_reset=-0.3": dict(v_reset=-0.3),
    "decay_input": dict(decay_input=True, tau_m=3.0),
    "IF (tau_m=inf)": dict(tau_m=float("inf"), output="spike"),
    "tau_s=4": dict(tau_s=4.0),
    "learn_decay=sigmoid per neuron": dict(learn_decay="sigmoid", decay_shape=(6,), tau_m=3.0),
    "learn_decay=beta": dict(learn_decay="beta", tau_m=4.0),
    "fixed decay tensor": dict(decay=torch.linspace(0.5, 0.9, 6), output="spike"),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ["na", "stbp"])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_round_trip_bit_for_bit(option, method, dtype, tmp_path):
    torch.manual_seed(0)
    kw = dict(OPTIONS[option])
    if method == "stbp" and kw.get("output", "psc") != "spike":
        kw.setdefault("output", "psc")
    net = nn.Sequential(
        SeqToANN(nn.Linear(4, 6)),
        LIF(method=method, **kw),
        SeqToANN(nn.Linear(6, 3, bias=False)),
        LIF(method=method, threshold=0.5),
    ).to(dtype)
    with torch.no_grad():
        net[0].module.weight.mul_(4.0)
        net[2].module.weight.mul_(4.0)
    if "learn_decay" in kw:  # trained values, not the initial ones
        with torch.no_grad():
            for p in net[1].parameters(recurse=False):
                p.add_(torch.rand_like(p) * 0.3)
    x = _drive((7, 5, 4), 1, dtype)
    path = tmp_path / "g.nir"
    nir.write(path, nnir.to_nir(net, x, dt=DT))
    back = nnir.from_nir(nnir.read(path), method=method, dt=DT)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = net(xa), back(xb)
    assert ya.dtype == yb.dtype == dtype and torch.equal(ya, yb) and ya.abs().sum() > 0
    assert torch.equal(net[:2](x), back.nodes["1"](back.nodes["0"](x)))  # the first layer's output too
    w = torch.rand_like(ya)
    (ya * w).sum().backward()
    (yb * w).sum().backward()
    assert torch.equal(xa.grad, xb.grad)
    assert torch.equal(net[0].module.weight.grad, back.nodes["0"].module.weight.grad)


def test_paper_network_round_trip(tmp_path):
    """models.build_model's MNIST network (its SumPool2d is NIR's SumPool2d and a Scale): bit for bit."""
    from na_cuda import models

    torch.manual_seed(8)
    net = models.build_model("mnist", (1, 28, 28), method="na", tau_m=5.0, tau_s=2.0)
    x = _drive((5, 3, 1, 28, 28), 15)
    path = tmp_path / "mnist.nir"
    nir.write(path, nnir.to_nir(net, x))
    back = nnir.from_nir(path, method="na")
    ya, yb = net(x), back(x)
    assert torch.equal(ya, yb) and ya.sum() > 0
    ya.pow(2).sum().backward()
    yb.pow(2).sum().backward()
    ours = [m.weight.grad for m in back.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert all(torch.equal(a.weight.grad, b) for a, b in zip(net.weight_layers(), ours))


def test_export_refuses_what_nir_cannot_say():
    for lif, why in [
        (LIF(v_reset=None), "soft"),
        (LIF(v_reset=None, reset_mechanism="subtract", strict_threshold=True, output="spike"), "soft or snnTorch"),
        (LIF(method="stbp", output="membrane"), "membrane"),
        (LIF(tau_m=float("inf"), v_reset=-0.5, output="spike"), "IF neuron with v_reset"),
    ]:
        with pytest.raises(nnir.NIRError, match=why):
            nnir.to_nir(nn.Sequential(SeqToANN(nn.Linear(3, 2)), lif))
    with pytest.raises(nnir.NIRError, match="MaxPool1d"):
        nnir.to_nir(nn.Sequential(SeqToANN(nn.Linear(3, 2)), SeqToANN(nn.MaxPool1d(2))), torch.zeros(1, 1, 3))

    class Custom(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(nnir.NIRError, match="own forward"):
        nnir.to_nir(Custom(), torch.zeros(2, 1, 3))
    with pytest.raises(ValueError, match="sample_input"):
        nnir.to_nir(nn.Sequential(SeqToANN(nn.Conv2d(1, 2, 3)), LIF()))


# ---------------------------------------------------------------------------------------------------------------
# refusals and placeholders on import


def _chain(*nodes):
    return nir.NIRGraph.from_list(*nodes, type_check=False)


def _lif(n=3, **kw):
    d = dict(tau=np.full(n, 5 * DT), r=np.full(n, 5.0), v_leak=np.zeros(n), v_threshold=np.ones(n))
    d.update(kw)
    return nir.LIF(**d)


REFUSED = {
    "per-neuron v_threshold": (_lif(v_threshold=np.array([1.0, 0.5, 1.0])), "per-neuron v_threshold"),
    "v_leak != v_reset": (_lif(v_leak=np.full(3, 0.2)), "v_leak"),
    "tau < dt": (_lif(tau=np.full(3, 0.5 * DT)), "tau must be finite and >= dt"),
    "fractional Delay": (nir.Delay(delay=np.full(3, 1.5 * DT)), "whole steps"),
    "AvgPool2d with padding": (
        nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([1, 1])),
        "padded zeros",
    ),
    "IF v_reset != 0": (nir.IF(r=np.ones(3), v_threshold=np.ones(3), v_reset=np.full(3, -0.1)), "initial potential"),
    "Threshold <= 0": (nir.Threshold(threshold=np.zeros(3)), "threshold"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_nodes_name_node_type_reason(case):
    node, why = REFUSED[case]
    graph = _chain(nir.Linear(weight=np.ones((3, 3))), node)
    with pytest.raises(nnir.NIRError, match=why) as e:
        nnir.from_nir(graph, dt=DT)
    assert type(node).__name__ in str(e.value) and "node '" in str(e.value)
    with pytest.warns(UserWarning, match="placeholder"):
        model = nnir.from_nir(graph, dt=DT, strict=False)
    assert len(model.report.placeholders) == 1 and model.report.placeholders[0][1] == type(node).__name__
    with pytest.raises(NotImplementedError, match="placeholder"):
        model(torch.zeros(2, 1, 3, dtype=torch.float64))


def test_recurrent_edge_refused_snntorch_rleaky():
    pytest.importorskip("nirtorch", reason="nirtorch is not installed")
    snn = pytest.importorskip("snntorch", reason="snnTorch is not installed")
    from snntorch.export_nir import export_to_nir

    net = nn.Sequential(nn.Linear(4, 3), snn.RLeaky(beta=0.9, linear_features=3, init_hidden=True, output=True))
    graph = export_to_nir(net, torch.zeros(4))
    with pytest.raises(nnir.NIRError, match="recurrent"):
        nnir.from_nir(graph)


def test_accepted_nodes_and_options():
    # whole-step Delay, Threshold as a memoryless LIF, nested graphs inlined
    x = _drive((6, 2, 3), 7, torch.float64)
    inner = _chain(nir.Scale(scale=np.array([2.0, 1.0, 0.5])))
    nodes = {
        "in": nir.Input(input_type={"input": np.array([3])}),
        "sub": inner,
        "d": nir.Delay(delay=np.full(3, 2 * DT)),
        "th": nir.Threshold(threshold=np.full(3, 1.5)),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }
    g = nir.NIRGraph(nodes=nodes, edges=[("in", "sub"), ("sub", "d"), ("d", "th"), ("th", "out")], type_check=False)
    y = nnir.from_nir(g, dt=DT)(x)
    want = torch.zeros_like(x)
    want[2:] = (x[:-2] * torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64) > 1.5).double()
    assert torch.equal(y, want)
    with pytest.raises(TypeError, match="neuron's own settings"):
        nnir.from_nir(g, tau_m=3.0)
    with pytest.raises(ValueError, match="dt"):
        nnir.from_nir(g, dt=0.0)
    with pytest.raises(ValueError, match="clip") as e:
        nnir.from_nir(g, method="na", clip=-1.0)  # a bad rule option is the caller's error, not a node's
    assert "node" not in str(e.value)


# ---------------------------------------------------------------------------------------------------------------
# files


def test_file_errors_are_clear(tmp_path):
    h5py = pytest.importorskip("h5py")
    with pytest.raises(FileNotFoundError, match="no file"):
        nnir.from_nir(tmp_path / "missing.nir")
    text = tmp_path / "text.nir"
    text.write_text("not a graph")
    with pytest.raises(nnir.NIRError, match="not an HDF5 file"):
        nnir.read(text)
    empty = tmp_path / "empty.nir"
    with h5py.File(empty, "w") as f:
        f.create_dataset("version", data="1.0.8")
    with pytest.raises(nnir.NIRError, match="no 'node' group"):
        nnir.read(empty)
    # a graph written by another nir version in a format this one does not read (a node type it does not know, a
    # field renamed): one line naming the version, no h5py traceback
    good = tmp_path / "good.nir"
    nir.write(good, _chain(nir.Linear(weight=np.ones((2, 2))), _lif(2)))
    for name in ["unknown type", "renamed field"]:
        other = tmp_path / f"other_{len(name)}.nir"
        other.write_bytes(good.read_bytes())
        with h5py.File(other, "r+") as f:
            del f["version"]
            f.create_dataset("version", data="0.9.0")
            node = f["node"]
            if name == "unknown type":
                del node["nodes/lif/type"]
                node["nodes/lif"].create_dataset("type", data="LIFv2")
            else:
                node["nodes/lif"].move("tau", "tau_mem_renamed")
        with pytest.raises(nnir.NIRError, match="written by nir 0.9.0") as e:
            nnir.from_nir(other)
        assert "h5py" not in str(e.value).split(":")[0]
    truncated = tmp_path / "truncated.nir"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(nnir.NIRError):
        nnir.read(truncated)


# ---------------------------------------------------------------------------------------------------------------
# snnTorch


def _snn_net(snn, reset, dtype, conv: bool):
    torch.manual_seed(3)
    kw = dict(init_hidden=True, reset_mechanism=reset)
    if conv:
        layers = [
            nn.Conv2d(1, 2, 3),
            snn.Leaky(beta=torch.full((2, 4, 4), 0.85), threshold=torch.ones(2, 4, 4), **kw),
            nn.Flatten(),
            nn.Linear(32, 3),
            snn.Leaky(beta=torch.linspace(0.7, 0.95, 3), threshold=torch.full((3,), 0.8), output=True, **kw),
        ]
    else:
        layers = [
            nn.Linear(5, 4),
            snn.Leaky(beta=torch.linspace(0.6, 0.95, 4), threshold=torch.ones(4), **kw),
            nn.Linear(4, 3),
            snn.Leaky(beta=torch.full((3,), 0.9), threshold=torch.full((3,), 0.7), output=True, **kw),
        ]
    net = nn.Sequential(*layers).to(dtype)
    with torch.no_grad():
        for m in net:
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.abs_().mul_(1.5)
                m.bias.fill_(-3.0 if conv and isinstance(m, nn.Linear) else -0.6)  # firing rates 0.3-0.4
    return net


def _float64_spikes(monkeypatch, surrogate) -> None:
    """snnTorch's ATan with its spikes in the input's dtype (``(x > 0).float()`` otherwise), nothing else changed."""

    def forward(ctx, input_, alpha):
        ctx.save_for_backward(input_)
        ctx.alpha = alpha
        return (input_ > 0).to(input_.dtype)

    monkeypatch.setattr(surrogate.ATan, "forward", staticmethod(forward))


def _snn_run(snn, net, x):
    from snntorch import utils

    utils.reset(net)
    return torch.stack([net(x[t])[0] for t in range(x.shape[0])])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("conv", [False, True], ids=["linear", "conv"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_snntorch_export_equals_snntorch(reset, conv, dtype, monkeypatch):
    pytest.importorskip("nirtorch", reason="nirtorch is not installed")
    snn = pytest.importorskip("snntorch", reason="snnTorch is not installed")
    from snntorch import surrogate
    from snntorch.export_nir import export_to_nir

    if dtype == torch.float64:  # snnTorch's spikes are float32, which a float64 layer after them cannot take
        _float64_spikes(monkeypatch, surrogate)

    net = _snn_net(snn, reset, dtype, conv)
    shape = (1, 6, 6) if conv else (5,)
    graph = (
        export_to_nir(net, torch.zeros(1, *shape, dtype=dtype), ignore_dims=[0])
        if conv
        else export_to_nir(net, torch.zeros(*shape, dtype=dtype))
    )
    # snnTorch's exporter writes every Leaky as NIR's LIF, which resets to v_reset = 0: the graph is the network
    # with reset_mechanism="zero" whatever the Leaky had (docs/nir.md), so that is what it is compared with
    ref_net = _snn_net(snn, "zero", dtype, conv)
    model = nnir.from_nir(graph, method="stbp", surrogate="atan", surrogate_alpha=2.0, dt=DT)
    assert next(model.parameters()).dtype == dtype
    x = _drive((12, 4, *shape), 9, dtype, scale=1.5)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    want, got = _snn_run(snn, ref_net, xa), model(xb)
    assert torch.equal(got, want) and 0 < want.mean() < 1
    w = _drive(want.shape, 10, dtype)
    (want * w).sum().backward()
    (got * w).sum().backward()
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    errors = [_rel(xb.grad, xa.grad)]
    ours = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    theirs = [m for m in ref_net if isinstance(m, (nn.Linear, nn.Conv2d))]
    errors += [_rel(a.weight.grad, b.weight.grad) for a, b in zip(ours, theirs)]
    assert max(errors) < tol, errors


def test_snntorch_scalar_beta_graph_nir_rejects_is_accepted(monkeypatch):
    """snnTorch 1.0's exporter with nir 1.0.8 fails nir's type check on a Leaky with scalar beta/threshold
    ("type mismatch: 0.output: [[3]] -> 1.input: []"); the graph itself (before that check) imports, its shapes
    taken from the neighbouring nodes, and runs to snnTorch's spikes."""
    nirtorch = pytest.importorskip("nirtorch", reason="nirtorch is not installed")
    snn = pytest.importorskip("snntorch", reason="snnTorch is not installed")
    from snntorch import surrogate
    from snntorch.export_nir import _extract_snntorch_module, export_to_nir

    _float64_spikes(monkeypatch, surrogate)
    torch.manual_seed(4)
    net = nn.Sequential(
        nn.Linear(5, 4),
        snn.Leaky(beta=0.9, init_hidden=True, reset_mechanism="zero"),
        nn.Linear(4, 3),
        snn.Leaky(beta=0.8, threshold=0.5, init_hidden=True, output=True, reset_mechanism="zero"),
    ).double()
    with pytest.raises(ValueError, match="type mismatch"):
        export_to_nir(net, torch.zeros(5, dtype=torch.float64))
    graph = nirtorch.extract_nir_graph(net, _extract_snntorch_module, torch.zeros(5, dtype=torch.float64))
    model = nnir.from_nir(graph, method="stbp", surrogate="atan", dt=DT)
    x = _drive((15, 3, 5), 11, torch.float64) * 2
    want = _snn_run(snn, net, x)
    assert torch.equal(model(x), want) and want.sum() > 0
    # a graph whose scalar neuron sits between layers that disagree is refused, naming the node
    graph.nodes["2"] = nir.Affine(weight=np.ones((3, 7)), bias=np.zeros(3))
    with pytest.raises(nnir.NIRError, match="node '2'"):
        nnir.from_nir(graph)


def test_our_model_runs_in_snntorch_import():
    pytest.importorskip("nirtorch", reason="nirtorch is not installed")
    pytest.importorskip("snntorch", reason="snnTorch is not installed")
    from snntorch import utils
    from snntorch.import_nir import import_from_nir

    torch.manual_seed(5)
    net = nn.Sequential(
        SeqToANN(nn.Linear(6, 5)),
        LIF(tau_m=5.0, output="spike", method="na"),
        SeqToANN(nn.Linear(5, 3)),
        LIF(tau_m=2.5, threshold=0.5, output="spike", strict_threshold=True),
    )
    with torch.no_grad():
        net[0].module.weight.mul_(3)
    x = _drive((16, 4, 6), 12)
    sn = import_from_nir(nnir.to_nir(net, x, dt=DT))
    utils.reset(sn)
    theirs = torch.stack([sn(x[t])[0] for t in range(x.shape[0])])
    ours = net(x)
    assert torch.equal(theirs, ours) and 0 < ours.mean() < 1


def test_our_model_runs_in_norse_import():
    pytest.importorskip("nirtorch", reason="nirtorch is not installed")
    norse_nir = pytest.importorskip("norse.torch.utils.import_nir", reason="norse is not installed")
    torch.manual_seed(6)
    # Norse reads a LIF's input scale as dt/tau and ignores r: our decay_input=True neuron (r = 1) is that neuron
    net = nn.Sequential(
        SeqToANN(nn.Linear(6, 5)),
        LIF(tau_m=4.0, decay_input=True, output="spike", strict_threshold=True),
        SeqToANN(nn.Linear(5, 3)),
        LIF(tau_m=2.0, decay_input=True, threshold=0.3, output="spike"),
    )
    with torch.no_grad():
        net[0].module.weight.mul_(6)
    x = _drive((16, 4, 6), 13)
    model = norse_nir.from_nir(nnir.to_nir(net, x, dt=DT), dt=DT)
    state, outs = None, []
    for t in range(x.shape[0]):
        y, state = model(x[t], state)
        outs.append(y)
    ours = net(x)
    assert torch.equal(torch.stack(outs), ours) and 0 < ours.mean() < 1


# ---------------------------------------------------------------------------------------------------------------
# training


def test_imported_graph_trains_with_na():
    torch.manual_seed(7)
    net = nn.Sequential(SeqToANN(nn.Linear(8, 16)), LIF(), SeqToANN(nn.Linear(16, 2)), LIF())
    model = nnir.from_nir(nnir.to_nir(net), method="na", dt=DT)
    x = _drive((5, 32, 8), 14)
    y = (x.mean((0, 2)) > x.mean()).long()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(model(x).sum(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_train_cli_model_nir(tmp_path):
    """python -m na_cuda.train --model-nir PATH trains the graph (digits, 1 epoch) and writes OUT/model.nir."""
    net = nn.Sequential(SeqToANN(nn.Flatten(), nn.Linear(64, 30)), LIF(), SeqToANN(nn.Linear(30, 10)), LIF())
    graph = tmp_path / "digits.nir"
    nir.write(graph, nnir.to_nir(net))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "na_cuda.train", "--model-nir", str(graph), "--epochs", "1", "--out", str(out)]
    run = subprocess.run([*cmd, "--no-progress"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "the trained graph is" in run.stdout
    trained = nnir.from_nir(out / "model.nir")
    assert not torch.equal(trained.nodes["1"].module.weight, net[0].module[1].weight)  # it trained
    bad = subprocess.run(
        [*cmd[:3], str(tmp_path / "missing.nir"), "--out", str(tmp_path / "r2")], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--model-nir" in bad.stderr and "missing.nir" in bad.stderr
