"""The LIF neuron op: `na_cuda.lif` (docs/api.md)."""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import _backend, _validate, ops, reference
from .params import LifParams, clamp_decay, compute_dtype
from .rules import Rule


@_validate.with_keywords
def lif(
    c: torch.Tensor,
    *,
    neuron: Optional[LifParams] = None,
    rule: Optional[Rule] = None,
    decay: Optional[torch.Tensor] = None,
    **options: Any,
) -> torch.Tensor:
    r"""Multi-step LIF neuron, time first: ``c [T, ...] -> out [T, ...]``.

    Forward (paper eq. 1-4, spec §2; options: docs/algorithm.md §9), per neuron, ``lam = 1 - 1/tau_m``
    (``tau_m = inf``: the IF neuron), ``beta = 1/tau_m`` if ``decay_input`` else 1::

        hard reset (v_reset = vr, 0 = the paper; v starts at vr):
            u[t] = lam (v - vr) + vr + beta c[t];  s[t] = H(u[t] - threshold)  (H(0) = 1);  v = vr if s[t] else u[t]
        soft reset (v_reset=None; v starts at 0):
            u[t] = lam v + beta c[t];  v = u[t] - threshold if s[t] else u[t]
        a[t] = (1 - 1/tau_s) a + s[t] / tau_s

    and ``out`` is ``a`` (``output="psc"``), ``s`` (``output="spike"``) or ``u`` (``output="membrane"``, STBP
    only): spikingjelly 2.0 ``LIFNode``/``IFNode`` semantics. ``reset_mechanism`` (docs/algorithm.md §11) gives
    snnTorch's ``Leaky`` resets: ``"subtract"`` ``u[t] = lam u[t-1] + beta c[t] - threshold s[t-1]`` (the
    threshold subtracted after the leak), ``"none"`` (no reset), ``"zero"`` (= ``v_reset=0.0``).
    ``decay`` (§12): a tensor broadcastable to ``c.shape[1:]`` that replaces ``lam = 1 - 1/tau_m`` (and, with
    ``decay_input``, scales the input by ``1 - decay``), clamped to [0, 1] as snnTorch clamps ``beta``; it is
    differentiable: every rule and backend computes ``dL/d decay`` inside its backward.
    ``strict_threshold=True`` fires on ``u[t] > threshold`` instead (``H(0) = 0``: the authors' released
    code, ``mem > threshold``); it differs only on exact ties, and under NA makes ``phi(0) = +clip``. The backward
    depends on ``method`` (a rule of ``na_cuda.rules.RULES``):

    - ``"na"``: Neighborhood Aggregation with simple neighbourhood selection (eq. 13, 16, 17): for every step
      ``p`` the firing there is flipped, the rest of the window re-simulated, and the first-order loss change
      ``dL_p`` is scaled by ``phi(threshold - u[p]) = clamp((threshold - u[p])^-dist_power, -clip, clip)``.
      ``first_order="paper"`` weighs PSC changes by the error signal e of eq. 7 (the authors' code);
      ``"taylor"`` by ``dL/da`` (the exact first-order term). ``na_window=K`` (opt-in, default None: exact)
      re-simulates each neighbour for at most ``K`` steps past its flip (docs/algorithm.md §3.8): cheaper on long,
      sparsely firing windows, approximate for ``K < T - 1``.
    - ``"stbp"``: BPTT with a surrogate derivative (``surrogate`` = "rect" | "triangle" | "sigmoid" | "atan" |
      "fast_sigmoid", width/slope ``surrogate_alpha``, defaults 1, 1, 4, 2, 25); ``detach_reset`` treats the
      spike in the reset as a constant.
    - ``"tssl"``: TSSL-BP (Zhang & Li 2020), ``output="psc"`` and a hard reset only.

    ``grad_c`` carries the input scale ``beta``. ``backend``: ``"native"`` = the compiled kernel for the tensor's
    device (error if not compiled),
    ``"torch"`` = the pure-PyTorch reference, ``"auto"`` = native when
    it can, else the reference with a one-time warning. float16/bfloat16 are computed in float32.

    The keywords (``inspect.signature(na_cuda.lif)`` lists them with their defaults) are the fields of
    ``na_cuda.LifParams`` and of the rule classes (``STBP.alpha`` is the keyword ``surrogate_alpha``); pass
    ``neuron=LifParams(...)`` and/or ``rule=NA(...)/STBP(...)/TSSL()`` instead of them.
    """
    _validate.input_tensor(c)
    neuron, rule, backend = _validate.build(neuron=neuron, rule=rule, **options)
    return apply(c, neuron, rule, backend, decay)


def per_neuron_decay(decay: Any, c: torch.Tensor) -> torch.Tensor:
    """``decay`` (a tensor broadcastable to ``c.shape[1:]``) as the ops take it: one value per neuron ``[N]``, in the
    compute dtype of ``c``, differentiable (autograd sums the gradient back to its shape). The ops and the reference
    clamp it to [0, 1] themselves (docs/algorithm.md §12), so a decay already in the compute dtype reaches them
    unclamped (no elementwise passes before the kernel)."""
    if not isinstance(decay, torch.Tensor) or not decay.dtype.is_floating_point:
        raise TypeError(f"na_cuda: `decay` must be a floating-point torch.Tensor or None; got {type(decay).__name__}")
    if decay.device != c.device:
        raise ValueError(f"na_cuda: `decay` is on {decay.device} but the input is on {c.device}; move it there")
    # Size by size rather than torch.broadcast_shapes, whose error under torch.compile(dynamic=True) is dynamo's
    # TorchRuntimeError without this message.
    shape, want = tuple(decay.shape), tuple(c.shape[1:])
    if len(shape) > len(want) or any(d != 1 and d != n for d, n in zip(reversed(shape), reversed(want))):
        raise ValueError(
            f"na_cuda: `decay` of shape {tuple(decay.shape)} does not broadcast to the input's neuron shape "
            f"{tuple(c.shape[1:])} (c.shape[1:]); use a scalar (one per layer) or a per-neuron shape such as "
            f"{tuple(c.shape[2:])}"
        )
    cdt = compute_dtype(c.dtype)
    # Another dtype is clamped before it is rounded: the gradient mask is that of the unrounded value.
    d = decay if decay.dtype == cdt else clamp_decay(decay).to(cdt)
    return d.expand(c.shape[1:]).reshape(-1).contiguous()  # a scalar's expand would stay a stride-0 view


def apply(
    c: torch.Tensor, neuron: LifParams, rule: Rule, backend: str, decay: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """`lif` on already-validated parameters (as returned by `_validate.build`); used by `nn.LIF`. ``decay``: see
    :func:`lif`."""
    rule.fit_dtype(neuron, c.dtype)
    d = None if decay is None else per_neuron_decay(decay, c)
    if _backend.use_native(backend, c.device):
        return ops.call_rule(rule.name, c, rule.native_args(neuron, d))
    return reference.rule_forward(rule, c, neuron, d)
