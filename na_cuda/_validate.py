"""Argument checks of the public API: a clear exception that names the argument and the fix.

The neuron's checks live in ``na_cuda.params.LifParams``, each rule's in its class in ``na_cuda.rules``; this
module keeps the input-tensor check, the backend names and the keyword-dict form used by the training config.
"""

from __future__ import annotations

from typing import Any

import torch

from .params import OUTPUTS, LifParams, choice, compute_dtype  # noqa: F401  (re-exported)
from .params import real as _real  # noqa: F401  (used by losses)
from .rules import FIRST_ORDERS, METHODS, RULES, SURROGATE_DEFAULT_ALPHA, SURROGATES, Rule, make_rule  # noqa: F401

BACKENDS = ("auto", "native", "torch")


def build(
    *,
    tau_m: Any = 5.0,
    tau_s: Any = 2.0,
    threshold: Any = 1.0,
    v_reset: Any = 0.0,
    decay_input: Any = False,
    output: Any = "psc",
    method: Any = "na",
    backend: Any = "auto",
    strict_threshold: Any = False,
    reset_mechanism: Any = None,
    **rule_options: Any,
) -> tuple[LifParams, Rule, str]:
    """The keyword API of ``na_cuda.lif`` as ``(LifParams, rule object, backend)``, all validated; the rules'
    keywords (``first_order``, ``surrogate``, ...) go to :func:`na_cuda.rules.make_rule`."""
    neuron = LifParams(tau_m, tau_s, threshold, v_reset, decay_input, output, strict_threshold, reset_mechanism)
    rule = make_rule(method, **rule_options)
    _no_ignored_options(rule, rule_options)
    rule.check(neuron)
    return neuron, rule, choice("backend", backend, BACKENDS)


def _no_ignored_options(rule: Rule, given: dict[str, Any]) -> None:
    """Another rule's option set to a value other than its default would be silently ignored by ``rule``
    (``method="stbp", clip=3.0``): ValueError naming it. Its default (e.g. from ``as_dict``) passes."""
    own = rule.options()
    for cls in RULES.values():
        for key, default in cls().options().items():
            value = given.get(key)
            if key not in own and value is not None and value != default:
                raise ValueError(
                    f"na_cuda: `{key}` is an option of method={cls.name!r}, which method={rule.name!r} ignores; got "
                    f"{key}={value!r}: leave it out, or use method={cls.name!r}"
                )


def as_dict(neuron: LifParams, rule: Rule, backend: str) -> dict[str, Any]:
    """Every keyword of ``na_cuda.lif`` with its normalised value (the rule's defaults for the other rules' ones)."""
    d: dict[str, Any] = dict(
        tau_m=neuron.tau_m,
        tau_s=neuron.tau_s,
        threshold=neuron.threshold,
        v_reset=neuron.v_reset,
        decay_input=neuron.decay_input,
        output=neuron.output,
        strict_threshold=neuron.strict_threshold,
        reset_mechanism=neuron.reset_mechanism,
        method=rule.name,
        first_order="paper",
        dist_power=3,
        clip=10.0,
        surrogate="rect",
        surrogate_alpha=SURROGATE_DEFAULT_ALPHA["rect"],
        detach_reset=True,
        backend=backend,
    )
    d.update(rule.options())
    return d


def neuron_params(**kwargs: Any) -> dict[str, Any]:
    """Validate the keywords of ``na_cuda.lif`` (see :func:`build`); returns them normalised as a dict."""
    return as_dict(*build(**kwargs))


def input_tensor(c: Any, name: str = "c") -> None:
    """`c` must be a floating tensor of shape [T, ...] with T >= 1."""
    if not isinstance(c, torch.Tensor):
        raise TypeError(f"na_cuda: `{name}` must be a torch.Tensor of shape [T, ...]; got {type(c).__name__}")
    if c.dim() == 0:
        raise ValueError(f"na_cuda: `{name}` must have shape [T, ...] (time first); got a 0-dim tensor. Use c[None]")
    if c.shape[0] == 0:
        raise ValueError(f"na_cuda: `{name}` must have T = {name}.shape[0] >= 1 time steps; got shape {tuple(c.shape)}")
    if not c.dtype.is_floating_point:
        raise TypeError(
            f"na_cuda: `{name}` must be float16, bfloat16, float32 or float64; got {c.dtype}. Convert with .float()"
        )
