"""Drop-in conversion of an existing SNN's neurons to ``na_cuda.nn.LIF`` (``na_cuda.nn.convert``).

spikingjelly 2.0's multi-step ``LIFNode`` / ``IFNode`` compute, per step (its ``neuron/lif.py``)::

    H[t] = V[t-1] + (X[t] - (V[t-1] - V_reset)) / tau     (decay_input=True)
    H[t] = V[t-1] - (V[t-1] - V_reset) / tau + X[t]       (decay_input=False; IFNode: H[t] = V[t-1] + X[t])
    S[t] = heaviside(H[t] - v_threshold)                  (heaviside(0) = 1)
    V[t] = V_reset on a spike (v_reset a float), or H[t] - v_threshold (v_reset=None, soft reset)

which is ``na_cuda.lif`` with ``tau_m=tau`` (``inf`` for IFNode), ``threshold=v_threshold``, the same
``v_reset`` and ``decay_input``, ``output="spike"``; under STBP also the same surrogate and ``detach_reset``.
Nothing is mapped approximately: a setting with no exact equivalent raises, naming the module and the setting.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from torch import nn

from .nn import LIF

#: The converted neuron's own settings: they come from the source neuron, never from ``rule_options``.
_NEURON_KEYS = ("tau_m", "threshold", "v_reset", "decay_input", "output")
#: STBP's settings that come from the source neuron (its surrogate and reset detaching).
_STBP_KEYS = ("surrogate", "surrogate_alpha", "detach_reset")


def convert(model: nn.Module, method: str = "na", **rule_options: Any) -> nn.Module:
    """Replace every spikingjelly multi-step ``LIFNode``/``IFNode`` in ``model`` by the equivalent
    ``na_cuda.nn.LIF(output="spike", method=method, **rule_options)``; returns the model (changed in place; a
    neuron passed as ``model`` itself is returned converted). ``copy.deepcopy`` the model first to keep it.

    Mapped: ``tau`` -> ``tau_m`` (``IFNode``: ``float("inf")``), ``v_threshold`` -> ``threshold``, ``v_reset``
    (a float: hard reset; ``None``: soft reset), ``decay_input``; for ``method="stbp"`` also the surrogate
    (``Sigmoid(alpha)`` -> ``"sigmoid"`` with slope ``alpha``, ``ATan(alpha)`` -> ``"atan"``, ``Rect(alpha)`` ->
    ``"rect"`` of width ``1/alpha``, ``PiecewiseQuadratic(alpha)`` -> ``"triangle"`` of half-width ``1/alpha``:
    the same functions) and ``detach_reset``. ``method="na"`` has its own backward (neither surrogate nor
    ``detach_reset`` is used), so any surrogate converts there. ``rule_options``: the rule's keywords
    (``first_order``, ``dist_power``, ``clip``), ``backend``, ``grad_rescale``, ``tau_s``; not the neuron's.

    State: spikingjelly's neurons keep ``v`` between calls until ``functional.reset_net(model)``; ``na_cuda.nn.LIF``
    starts every call from rest. The converted model therefore equals the original reset before every forward
    (the standard training loop: ``reset_net`` after each batch); a model that carries ``v`` across calls
    (streaming, truncated BPTT over chunks) is not reproduced.

    Raises ``ValueError`` naming the module path and the setting for what has no exact equivalent: single-step
    mode, other neuron types (learnable tau: ``ParametricLIFNode``), surrogates without an na_cuda counterpart
    (STBP), ``store_v_seq``, spikingjelly's neuron-precision option, hooks on the neuron, and snnTorch neurons
    (single-step modules: see the message); ``TypeError`` for ``rule_options`` that the neuron fixes.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"na_cuda.nn.convert: `model` must be a torch.nn.Module; got {type(model).__name__}")
    if method not in ("na", "stbp"):
        raise ValueError(
            f"na_cuda.nn.convert: `method` must be 'na' or 'stbp' (converted neurons output spikes; TSSL-BP is "
            f"defined on PSCs); got {method!r}"
        )
    fixed = sorted(set(rule_options) & set(_NEURON_KEYS + (_STBP_KEYS if method == "stbp" else ())))
    if fixed:
        raise TypeError(
            f"na_cuda.nn.convert: {', '.join(fixed)} come from each converted neuron, not from `rule_options`; "
            "change them on the source model before converting"
        )
    converted: dict[int, nn.Module] = {}  # id(source neuron) -> its LIF: a neuron shared by two paths stays shared

    def replace(module: nn.Module, path: str) -> Optional[nn.Module]:
        if id(module) not in converted:
            new = _replacement(module, path, method, rule_options)
            if new is None:
                return None
            converted[id(module)] = new
        return converted[id(module)]

    root = replace(model, type(model).__name__)
    if root is not None:
        return root
    seen: set[int] = set()
    _convert_children(model, "", replace, seen)
    if not converted:
        raise ValueError("na_cuda.nn.convert: found no spikingjelly LIFNode or IFNode in `model` (nothing to convert)")
    return model


def _convert_children(parent: nn.Module, prefix: str, replace: Any, seen: set[int]) -> None:
    for name, child in list(parent.named_children()):
        path = f"{prefix}.{name}" if prefix else name
        new = replace(child, path)
        if new is not None:
            setattr(parent, name, new)  # Sequential, ModuleList and ModuleDict children are attributes too
        elif id(child) not in seen:
            seen.add(id(child))
            _convert_children(child, path, replace, seen)


def _replacement(module: nn.Module, path: str, method: str, rule_options: dict) -> Optional[nn.Module]:
    """The LIF replacing ``module``, None if it is not a neuron; raises for a neuron that has no equivalent."""
    origin = type(module).__module__
    if origin.startswith("spikingjelly.activation_based.neuron"):
        return _from_spikingjelly(module, path, method, rule_options)
    if origin.startswith("snntorch._neurons"):
        raise ValueError(
            f"na_cuda.nn.convert: cannot convert {path} (snnTorch {type(module).__name__}): " + _snntorch_reason(module)
        )
    return None


def _fail(path: str, module: nn.Module, why: str) -> ValueError:
    return ValueError(f"na_cuda.nn.convert: cannot convert {path} (spikingjelly {type(module).__name__}): {why}")


def _from_spikingjelly(m: nn.Module, path: str, method: str, rule_options: dict) -> nn.Module:
    from spikingjelly.activation_based import neuron  # present: `m` is one of its modules

    if type(m) is neuron.LIFNode:
        node: Any = m  # a spikingjelly LIFNode: its tau (a float) and decay_input are plain attributes
        tau, decay_input = node.tau, node.decay_input
    elif type(m) is neuron.IFNode:
        tau, decay_input = math.inf, False  # no leak; the input is never scaled
    else:
        extra = " (its tau is learnable)" if type(m).__name__ == "ParametricLIFNode" else ""
        raise _fail(path, m, f"no na_cuda equivalent{extra}; only LIFNode and IFNode (exact types) convert")
    if m.step_mode != "m":
        raise _fail(
            path,
            m,
            f"step_mode={m.step_mode!r}: a single-step neuron is called once per time step and "
            "keeps v between calls, na_cuda.nn.LIF simulates a whole [T, ...] window per call; switch the "
            "model to multi-step first (spikingjelly's functional.set_step_mode(model, 'm'), inputs "
            "[T, B, ...])",
        )
    if m.store_v_seq:
        raise _fail(path, m, "store_v_seq=True: na_cuda.nn.LIF does not expose the membrane potential")
    if getattr(m, "_neuron_precision", None) is not None:
        raise _fail(
            path,
            m,
            f"its neuron precision setting {m._neuron_precision!r} is a spikingjelly backend "
            "option; remove it (na_cuda computes float16/bfloat16 in float32)",
        )
    hooks = [kind for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks") if getattr(m, kind, None)]
    if hooks:
        raise _fail(path, m, f"it has {', '.join(hooks)} (e.g. a monitor), which would be lost; remove them")
    kwargs: dict[str, Any] = dict(
        tau_m=tau, threshold=m.v_threshold, v_reset=m.v_reset, decay_input=decay_input, output="spike", method=method
    )
    if method == "stbp":
        surrogate, alpha = _surrogate(m, path)
        kwargs.update(surrogate=surrogate, surrogate_alpha=alpha, detach_reset=m.detach_reset)
    try:
        lif = LIF(**kwargs, **rule_options)
    except (TypeError, ValueError) as e:  # a value na_cuda refuses (e.g. a non-float tau), or a bad rule option
        raise type(e)(f"na_cuda.nn.convert: cannot convert {path} (spikingjelly {type(m).__name__}): {e}") from e
    return lif.train(m.training)


def _surrogate(m: nn.Module, path: str) -> tuple[str, float]:
    """The na_cuda surrogate computing the same derivative as the neuron's spikingjelly surrogate function."""
    fn = m.surrogate_function
    name = type(fn).__name__
    if type(fn).__module__ != "spikingjelly.activation_based.surrogate" or not getattr(fn, "spiking", False):
        raise _fail(path, m, f"surrogate_function {fn!r} is not a spiking spikingjelly surrogate")
    alpha = getattr(fn, "alpha", None)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise _fail(path, m, f"surrogate {name} has alpha={alpha!r}; only a fixed Python number maps")
    alpha = float(alpha)
    # spikingjelly's derivatives (surrogate.py) against na_cuda's (README, reference.surrogate_grad):
    #   Sigmoid            alpha sig(alpha x)(1 - sig(alpha x))       = sigmoid,  k = alpha
    #   ATan               (alpha/2) / (1 + (pi/2 alpha x)^2)         = atan,     alpha
    #   Rect               alpha on |x| < 0.5/alpha                    = rect,     width a = 1/alpha
    #   PiecewiseQuadratic max(0, alpha - alpha^2 |x|)                 = triangle, g = 1/alpha
    mapping = {
        "Sigmoid": ("sigmoid", alpha),
        "ATan": ("atan", alpha),
        "Rect": ("rect", 1.0 / alpha),
        "PiecewiseQuadratic": ("triangle", 1.0 / alpha),
    }
    if name not in mapping:
        raise _fail(
            path,
            m,
            f"surrogate {name} has no na_cuda equivalent under method='stbp' (equivalents: "
            "Sigmoid, ATan, Rect, PiecewiseQuadratic); method='na' converts any surrogate",
        )
    return mapping[name]


def _snntorch_reason(m: nn.Module) -> str:
    """Why an snnTorch neuron cannot be replaced, and the na_cuda.nn.LIF to write by hand where one is exact."""
    why = (
        "snnTorch neurons are single-step modules: the model's forward calls them once per time step and "
        "carries `mem` between calls, so no multi-step module can take their place without rewriting that "
        "loop as layers on [T, B, ...]."
    )
    if type(m).__name__ != "Leaky":
        return why + f" {type(m).__name__} has no na_cuda equivalent either."
    beta = getattr(m, "beta", None)
    beta = float(beta) if beta is not None and beta.numel() == 1 else None
    reset = getattr(m, "reset_mechanism", None)
    learnable = any(p.requires_grad for p in m.parameters(recurse=False))
    if (
        beta is None
        or learnable
        or getattr(m, "inhibition", False)
        or getattr(m, "state_quant", False)
        or not getattr(m, "reset_delay", True)
        or float(getattr(m, "graded_spikes_factor", 1.0)) != 1.0
    ):
        return why + (
            " This Leaky has no na_cuda equivalent either (a learnable or per-neuron beta/threshold, "
            "inhibition, state quantisation, reset_delay=False or graded spikes)."
        )
    beta = min(max(beta, 0.0), 1.0)  # Leaky clamps beta to [0, 1]
    snn_threshold: Any = m.threshold  # a float or a 0-dim tensor (snnTorch keeps it as a buffer)
    tau_m = math.inf if beta == 1.0 else 1.0 / (1.0 - beta)
    common = (
        f"tau_m={tau_m!r}, threshold={float(snn_threshold)!r}, strict_threshold=True (snnTorch fires on "
        "mem > threshold), detach_reset=True (its reset is detached), output='spike', surrogate='atan' for "
        "its default spike_grad (atan(alpha) -> surrogate_alpha=alpha; fast_sigmoid(slope) -> "
        "'fast_sigmoid', surrogate_alpha=slope)"
    )
    if reset == "zero":
        return why + f" Rewritten that way, this Leaky is exactly na_cuda.nn.LIF(v_reset=0.0, {common})."
    if reset == "subtract" and beta == 1.0:
        return why + f" Rewritten that way, this Leaky is exactly na_cuda.nn.LIF(v_reset=None, {common})."
    if reset == "subtract":
        return why + (
            " Nor is there an exact equivalent: with reset_mechanism='subtract' and beta < 1 snnTorch "
            "subtracts the threshold a step late, after the leak (mem = beta mem + x - thr s[t-1]), "
            "where na_cuda (like spikingjelly) subtracts it before (v = u - thr, then the leak)."
        )
    return why + f" Nor is there an exact equivalent of reset_mechanism={reset!r}."
