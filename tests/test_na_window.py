"""``na_window=K`` (docs/algorithm.md §3.8): NA with neighbour runs of at most K steps.

None is exact NA (the golden tests hold its bits); K >= T - 1 is exact NA to the bit; every backend equals the
reference's direct form of the definition (no exits) for short windows, under every reset; the keyword reaches the
op through the rule object (one check, in ``na_cuda.rules.NA``)."""

from __future__ import annotations

import pytest
import torch
from helpers import needs_native

import na_cuda
from na_cuda import reference
from na_cuda.params import LifParams
from na_cuda.rules import NA

N = 37  # four AVX2 float32 packs and a partial one, nine float64 packs and a partial one


def _inputs(T: int, dtype: torch.dtype, seed: int, dense: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse (about 3 %) or dense firing of the paper's neuron, some inhibition, and the upstream gradient."""
    g = torch.Generator().manual_seed(seed)
    level = (0.29 + 0.08 * torch.rand(N, generator=g, dtype=torch.float64)) * (1.9 if dense else 1.0)
    c = level * torch.rand(T, N, generator=g, dtype=torch.float64)
    c = c - 0.2 * torch.rand(T, N, generator=g, dtype=torch.float64) * (torch.rand(N, generator=g) < 0.3)
    return c.to(dtype), torch.randn(T, N, generator=g, dtype=torch.float64).to(dtype)


# (neuron, input scale): the paper's hard reset, v_reset with decay_input, strict spike output, the soft reset,
# snnTorch's subtract reset after the leak, the IF neuron with a soft reset.
NEURONS = {
    "paper": (LifParams(), 1.0),
    "vreset-decayinput": (LifParams(tau_m=3.0, v_reset=-0.3, decay_input=True), 6.0),
    "strict-spike": (LifParams(strict_threshold=True, output="spike"), 1.0),
    "soft": (LifParams(v_reset=None), 1.0),
    "subtract": (LifParams(v_reset=None, reset_mechanism="subtract"), 1.0),
    "if-soft": (LifParams(tau_m=float("inf"), v_reset=None, threshold=4.0), 3.0),
}


@pytest.mark.parametrize(
    "window, error",
    [(0, ValueError), (-3, ValueError), (True, TypeError), (2.0, TypeError), ("8", TypeError), (2**63, ValueError)],
)
def test_na_window_is_checked_once_with_the_fix(window, error):
    with pytest.raises(error, match="na_window.*int >= 1"):
        NA(window=window)
    with pytest.raises(error, match="na_window"):
        na_cuda.lif(torch.rand(4, 3), method="na", na_window=window)


def test_na_window_is_a_keyword_of_na_only():
    assert NA(window=8).options()["na_window"] == 8 and NA().window is None
    assert na_cuda.rules.rule_keywords()["na_window"] is None
    with pytest.raises(ValueError, match="`na_window` is an option of method='na'"):
        na_cuda.lif(torch.rand(4, 3), method="stbp", na_window=8)


@needs_native
def test_the_op_checks_na_window():
    c = torch.rand(4, 3)
    args = (5.0, 2.0, 1.0, 0.0, False, False, "psc", "paper", 3, 10.0)
    with pytest.raises(RuntimeError, match="na_window"):
        torch.ops.na_cuda.na_backward(c, c, *args, 0)
    with pytest.raises(RuntimeError, match="na_window"):
        torch.ops.na_cuda.lif_na(c, *args, na_window=-1)


def _native(g: torch.Tensor, c: torch.Tensor, neuron: LifParams, window, decay=None):
    return NA(window=window).native_backward(g, c, neuron, decay)


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("T", [1, 6, 33, 120])
@pytest.mark.parametrize("name", sorted(NEURONS))
def test_a_window_past_the_end_is_exact_na_to_the_bit(name, T, dtype):
    neuron, scale = NEURONS[name]
    c, g = _inputs(T, dtype, seed=T)
    c = c * scale
    exact = _native(g, c, neuron, None)
    for window in (max(T - 1, 1), T, 2**63 - 1):
        assert torch.equal(_native(g, c, neuron, window), exact), window


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("T, dense", [(9, True), (40, False), (70, False)])
@pytest.mark.parametrize("name", sorted(NEURONS))
def test_native_equals_the_reference_definition(name, T, dense, dtype):
    """The kernels (with the §3.7 exits) against the reference's direct form (no exits), float64 to rounding;
    float32 inputs in the reference's float64. T = 70 with sparse firing takes the merge rules (§3.7)."""
    neuron, scale = NEURONS[name]
    c, g = _inputs(T, dtype, seed=3 * T + dense, dense=dense)
    c = c * scale
    exact = _native(g, c, neuron, None)
    for window in (1, 2, 5, 16):
        got = _native(g, c, neuron, window)
        want = reference.na_backward(g.double(), c.double(), neuron, NA(window=window))
        tol = 1e-9 if dtype == torch.float64 else 2e-3
        torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol * want.abs().max().item())
    if T > 6:
        assert not torch.equal(_native(g, c, neuron, 1), exact)  # the window is in effect


@needs_native
def test_learnable_decay_and_taylor_under_a_window():
    T = 50
    c, g = _inputs(T, torch.float64, seed=11)
    c = c * 5.0
    decay = 0.75 + 0.1 * torch.rand(N, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    neuron = LifParams(decay_input=True)
    for rule in (NA(window=4), NA(first_order="taylor", dist_power=1, window=9)):
        got, gd = rule.native_backward(g, c, neuron, decay)
        want, wd = reference.na_backward(g, c, neuron, rule, decay)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(gd, wd, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["paper", "soft", "subtract"])
def test_the_reference_definition_reaches_exact_na(name):
    """The windowed direct form (a neighbour handing over to the neighbour of its first spike under a hard reset)
    is the exact direct form once the window covers the rest of the sequence."""
    neuron, _ = NEURONS[name]
    T = 25
    c, g = _inputs(T, torch.float64, seed=2, dense=True)
    exact = reference.na_backward(g, c, neuron, NA())
    torch.testing.assert_close(reference.na_backward(g, c, neuron, NA(window=T - 1)), exact, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(reference.na_backward(g, c, neuron, NA(window=3)), exact)


@pytest.mark.parametrize("backend", ["torch", pytest.param("native", marks=needs_native)])
def test_lif_keyword_reaches_the_backward(backend):
    T = 30
    c, g = _inputs(T, torch.float64, seed=4)
    x = c.clone().requires_grad_(True)
    na_cuda.lif(x, method="na", na_window=3, backend=backend).backward(g)
    torch.testing.assert_close(x.grad, reference.na_backward(g, c, LifParams(), NA(window=3)), rtol=1e-10, atol=1e-10)


@needs_native
def test_opcheck_with_a_window():
    c = torch.rand(12, 5, dtype=torch.float64)
    args = (5.0, 2.0, 1.0, 0.0, False, False, "psc", "paper", 3, 10.0, 4)
    torch.library.opcheck(torch.ops.na_cuda.lif_na.default, (c.requires_grad_(), *args))
    torch.library.opcheck(torch.ops.na_cuda.na_backward.default, (torch.rand_like(c), c.detach(), *args))


# -- the keyword everywhere a user picks NA's options ---------------------------------------------------------------
def _lifs(model: torch.nn.Module) -> list:
    return [m for m in model.modules() if isinstance(m, na_cuda.nn.LIF)]


def test_nn_lif_takes_na_window_and_shows_it():
    lif = na_cuda.nn.LIF(na_window=8)
    assert lif.rule == NA(window=8) and "na_window=8" in repr(lif)
    assert "na_window" not in repr(na_cuda.nn.LIF())  # exact NA prints as before
    with pytest.raises(ValueError, match="na_window"):
        na_cuda.nn.LIF(na_window=0)


def test_spikingjelly_convert_takes_na_window():
    sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    from na_cuda.convert import convert

    assert convert(sj_neuron.LIFNode(step_mode="m"), na_window=16).rule.window == 16
    with pytest.raises(TypeError, match="na_window"):
        convert(sj_neuron.LIFNode(step_mode="m"), method="stbp", na_window=16)


def test_snntorch_conversion_takes_na_window():
    snn = pytest.importorskip("snntorch")
    lif = na_cuda.nn.LIF.from_snntorch(snn.Leaky(beta=0.9), method="na", na_window=4)
    assert lif.rule.window == 4


def test_from_nir_takes_na_window():
    nir = pytest.importorskip("nir")
    np = pytest.importorskip("numpy")
    from na_cuda import nir as nnir

    n = 3
    graph = nir.NIRGraph.from_list(
        nir.Affine(weight=np.eye(n), bias=np.zeros(n)),
        nir.LIF(tau=np.full(n, 5e-4), r=np.full(n, 5.0), v_leak=np.zeros(n), v_threshold=np.ones(n)),
        type_check=False,
    )
    lifs = _lifs(nnir.from_nir(graph, method="na", dt=1e-4, na_window=12))
    assert lifs and all(m.rule.window == 12 for m in lifs)


def test_training_cli_flag_reaches_every_lif():
    from na_cuda.train import cli, config, recipe

    assert cli.build_parser().parse_args(["--na-window", "8"]).na_window == 8
    assert cli.build_parser().parse_args([]).na_window is None
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--na-window", "0"])
    cfg = config.make_config("digits", na_window=8)
    assert config.rule_of(cfg) == NA(window=8) and config.flag("na_window") == "--na-window"
    net = recipe.model_from_config(cfg, (1, 8, 8))
    assert all(m.rule.window == 8 for m in _lifs(net))
    with pytest.raises(config.ConfigError, match="na_window"):
        config.make_config("digits", method="stbp", na_window=8)
