"""snnTorch's ``Leaky`` as an ``na_cuda.nn.LIF``: :func:`from_snntorch` (``na_cuda.nn.LIF.from_snntorch``).

Over a window a ``Leaky`` is ``na_cuda.lif`` with its ``reset_mechanism`` (docs/algorithm.md §11),
``strict_threshold=True``, ``detach_reset=True`` and its ``beta`` as ``decay``; nothing is mapped approximately
(docs/convert.md, "How a Leaky maps").
"""

from __future__ import annotations

import inspect
import math
from typing import Any, cast

from torch import nn

from . import surrogates
from ._conversion_options import _check_rule_options
from .params import LifParams

#: snnTorch surrogate factory -> (na_cuda surrogate, the factory's parameter name or None), from the table
#: na_cuda/surrogates.py. The others have no na_cuda counterpart: spike_rate_escape, SSO and LSO (stochastic), SFS
#: (cut below B), heaviside (the spike itself).
SURROGATES = {s.snntorch: (s.name, s.snn_param) for s in surrogates.TABLE if s.snntorch is not None}


#: The LIF's settings that come from the Leaky (or are fixed by its semantics): never from ``rule_options``. Every
#: neuron field but ``tau_s`` (no effect on spikes or membrane) and ``output`` (an argument of its own).
_SOURCE_KEYS = tuple(k for k in LifParams.keywords() if k not in ("tau_s", "output")) + (
    "learn_decay",
    "decay",
    "decay_shape",
)


def _refuse(why: str) -> ValueError:
    return ValueError(f"na_cuda.nn.LIF.from_snntorch: {why}")


def _surrogate(leaky: Any) -> tuple[str, float]:
    """The na_cuda surrogate with the derivative of ``leaky.spike_grad`` (a closure of snntorch.surrogate)."""
    if getattr(leaky, "surrogate_disable", False):
        raise _refuse(
            "surrogate_disable=True: the neuron has no gradient through its spikes, which method='stbp' cannot "
            "reproduce; use method='na' (its own backward) or build the Leaky with surrogate_disable=False"
        )
    fn = leaky.spike_grad
    factory = getattr(fn, "__qualname__", "").split(".")[0]
    if getattr(fn, "__module__", "") != "snntorch.surrogate" or factory not in SURROGATES:
        raise _refuse(
            f"spike_grad {getattr(fn, '__qualname__', fn)!r} has no na_cuda equivalent under method='stbp' "
            f"(equivalents: snntorch.surrogate.{', '.join(SURROGATES)}); method='na' uses none"
        )
    name, param = SURROGATES[factory]
    if param is None:  # a factory without a parameter: the surrogate's default
        return name, surrogates.SURROGATE_DEFAULT_ALPHA[name]
    value = inspect.getclosurevars(fn).nonlocals.get(param)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _refuse(f"spike_grad {factory}({param}={value!r}): only a fixed Python number maps")
    return name, float(value)


def _check_supported(leaky: Any) -> None:
    """Raise for the Leaky options without an exact equivalent."""
    threshold = leaky.threshold
    if isinstance(threshold, nn.Parameter) and threshold.requires_grad:
        raise _refuse("learn_threshold=True: na_cuda's threshold is a fixed float; build the Leaky without it")
    if threshold.numel() != 1:
        raise _refuse(f"a per-neuron threshold (shape {tuple(threshold.shape)}): na_cuda's threshold is one float")
    refusals = [
        (getattr(leaky, "inhibition", False), "inhibition=True (only the largest membrane fires) couples neurons"),
        (getattr(leaky, "state_quant", False), "state_quant quantises the membrane"),
        (not getattr(leaky, "reset_delay", True), "reset_delay=False resets in the step of the spike"),
        (
            float(getattr(leaky, "graded_spikes_factor", 1.0)) != 1.0
            or isinstance(getattr(leaky, "graded_spikes_factor", None), nn.Parameter),
            "graded spikes (graded_spikes_factor != 1 or learnable) scale the output",
        ),
    ]
    for bad, why in refusals:
        if bad:
            raise _refuse(f"{why}; na_cuda has no equivalent")


def from_snntorch(
    leaky: nn.Module, lif_class: type, method: str = "stbp", output: str = "spike", **rule_options: Any
) -> nn.Module:
    """The ``lif_class`` (``na_cuda.nn.LIF``, which calls this as ``LIF.from_snntorch``; this module does not
    import ``na_cuda.nn``, which imports it) that computes over a window ``[T, ...]`` what snnTorch's ``Leaky``
    computes step by step (module docstring): the same spikes (``output="spike"``, snnTorch's ``spk``) or
    membrane potentials (``output="membrane"``, its ``mem``; STBP only). ``method="stbp"`` gives snnTorch's own
    gradient (BPTT with its surrogate: ``atan``, ``fast_sigmoid``, ``sigmoid``); ``method="na"`` trains it with NA
    instead (any surrogate).

    Mapped: ``beta`` (a float or tensor, one per layer or per neuron; learnable with ``learn_beta=True``: the LIF
    gets a parameter ``beta`` with its values, ``learn_decay="beta"``), ``threshold``, ``reset_mechanism``
    (``"subtract"``, ``"zero"``, ``"none"``), ``spike_grad``. ``rule_options`` as ``convert`` takes them:
    ``method="na"``: ``dist_power``, ``clip``, ``na_window``, ``backend``, ``grad_rescale``; ``method="stbp"``:
    ``backend``; the neuron's settings (they come from ``leaky``) and options without effect raise.

    Raises ``ValueError`` for what has no exact equivalent (a learnable or per-neuron threshold, inhibition,
    state quantisation, ``reset_delay=False``, graded spikes, a surrogate without a counterpart under STBP) and
    for other neuron types. State: like every ``na_cuda.nn.LIF`` the result starts each window from rest, which is
    snnTorch's loop after ``utils.reset`` / with ``mem`` initialised to zeros.
    """
    import snntorch

    if type(leaky) is not snntorch.Leaky:
        raise _refuse(
            f"expected an snntorch.Leaky (exact type); got {type(leaky).__module__}.{type(leaky).__name__}, "
            "which has no na_cuda equivalent"
        )
    if method not in ("stbp", "na"):
        raise _refuse(f"`method` must be 'stbp' (snnTorch's gradient) or 'na'; got {method!r}")
    if output not in ("spike", "membrane"):
        raise _refuse(f"`output` must be 'spike' (snnTorch's spk) or 'membrane' (its mem); got {output!r}")
    _check_rule_options(method, rule_options, "na_cuda.nn.LIF.from_snntorch", _SOURCE_KEYS)
    lk = cast(Any, leaky)  # snnTorch's attributes (beta, threshold, reset_mechanism, ...)
    _check_supported(lk)
    if getattr(lk, "init_hidden", False) and getattr(lk, "output", False):
        raise _refuse(
            "init_hidden=True with output=True returns (spk, mem) per step, na_cuda.nn.LIF one tensor; build one "
            "LIF with output='spike' and one with output='membrane', or build the Leaky with output=False"
        )
    beta = lk.beta.detach()
    learn = isinstance(lk.beta, nn.Parameter) and lk.beta.requires_grad
    kwargs: dict[str, Any] = dict(threshold=float(lk.threshold), strict_threshold=True, output=output, method=method)
    mechanism = lk.reset_mechanism
    if mechanism == "zero":
        kwargs["v_reset"] = 0.0
    else:  # "subtract" or "none": after the leak (§11)
        kwargs.update(v_reset=None, reset_mechanism=mechanism)
    if method == "stbp":
        surrogate, alpha = _surrogate(lk)
        kwargs.update(surrogate=surrogate, surrogate_alpha=alpha, detach_reset=True)
    if beta.numel() == 1:  # tau_m for the repr only: the leak is `decay`, snnTorch's own beta
        b = min(max(float(beta), 0.0), 1.0)
        kwargs["tau_m"] = math.inf if b == 1.0 else 1.0 / (1.0 - b)
    kwargs.update(rule_options)
    decay = beta.clone() if learn else beta.clamp(0.0, 1.0)
    lif = lif_class(learn_decay="beta" if learn else None, decay=decay, **kwargs)
    return lif.train(leaky.training)


__all__ = ["from_snntorch", "SURROGATES"]
