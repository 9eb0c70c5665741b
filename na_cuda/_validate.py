"""The keyword API of ``na_cuda.lif`` / ``nn.LIF``, derived from the typed objects, and the input-tensor check.

Every keyword, its default and its check live in a field of ``LifParams`` (na_cuda/params.py) or of a rule class
(na_cuda/rules.py); :func:`build` only routes keywords to them (docs/development.md, "Add a neuron option").
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional

import torch

from .params import LifParams, choice
from .rules import METHODS, RULES, Rule, make_rule, rule_keywords

BACKENDS = ("auto", "native", "torch")


def keywords() -> dict[str, Any]:
    """Every keyword of ``na_cuda.lif`` with its default: the neuron's fields, ``method``, every rule's fields,
    ``backend``."""
    return dict(_KEYWORDS)


_NEURON_KEYWORDS = LifParams.keywords()
_RULE_KEYWORDS = rule_keywords()
_KEYWORDS = {**_NEURON_KEYWORDS, "method": METHODS[0], **_RULE_KEYWORDS, "backend": BACKENDS[0]}


def build(
    *, neuron: Optional[LifParams] = None, rule: Optional[Rule] = None, **options: Any
) -> tuple[LifParams, Rule, str]:
    """``(LifParams, rule object, backend)`` of the keyword API, all validated. ``neuron`` / ``rule`` pass the
    typed objects instead of their keywords (mixing an object with its own keywords is a TypeError)."""
    unknown = [k for k in options if k not in _KEYWORDS]
    if unknown:
        raise TypeError(f"na_cuda: unknown keyword(s) {', '.join(unknown)}; see help(na_cuda.lif) for the keywords")
    backend = choice("backend", options.pop("backend", BACKENDS[0]), BACKENDS)
    if neuron is None:
        neuron = LifParams.from_keywords(options)
    else:
        neuron = _given("neuron", neuron, LifParams, [k for k in options if k in _NEURON_KEYWORDS])
    method = options.pop("method", None)
    if rule is not None:
        rule = _given("rule", rule, Rule, [k for k in options if k in _RULE_KEYWORDS])
    if rule is None:
        rule = make_rule(METHODS[0] if method is None else method, **_rule_options(options))
    elif method is not None and method != rule.name:
        raise TypeError(f"na_cuda: method={method!r} contradicts rule={rule!r}; pass one of them")
    rule.check(neuron)
    return neuron, rule, backend


def _rule_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in _RULE_KEYWORDS}


def _given(name: str, obj: Any, cls: type, clash: list[str]) -> Any:
    """``obj`` (an instance of ``cls`` passed as ``name=``), refused next to keywords it would ignore."""
    if not isinstance(obj, cls):
        raise TypeError(f"na_cuda: `{name}` must be a na_cuda.{cls.__name__} or None; got {type(obj).__name__}")
    if clash:
        raise TypeError(f"na_cuda: pass either {name}= or its keywords ({', '.join(sorted(clash))}), not both")
    return obj


def as_dict(neuron: LifParams, rule: Rule, backend: str) -> dict[str, Any]:
    """Every keyword of ``na_cuda.lif`` with its normalised value (the defaults for the other rules' keywords)."""
    d: dict[str, Any] = {**neuron.options(), "method": rule.name}
    for cls in RULES.values():
        d.update(cls().options())
    return {**d, **rule.options(), "backend": backend}


def neuron_params(**kwargs: Any) -> dict[str, Any]:
    """Validate the keywords of ``na_cuda.lif`` (see :func:`build`); returns them normalised as a dict."""
    return as_dict(*build(**kwargs))


def with_keywords(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (which takes ``**options``) with a signature that lists every keyword of :func:`keywords` and its
    default, for ``help()`` and ``inspect.signature``."""
    sig = inspect.signature(fn)
    params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    taken = {p.name for p in params}
    params += [
        inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in keywords().items() if k not in taken
    ]
    fn.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return fn


def input_tensor(c: Any, name: str = "c") -> None:
    """`c` must be a floating tensor of shape [T, ...] with T >= 1."""
    if not isinstance(c, torch.Tensor):
        raise TypeError(f"na_cuda: `{name}` must be a torch.Tensor of shape [T, ...]; got {type(c).__name__}")
    if c.dim() == 0:
        raise ValueError(f"na_cuda: `{name}` must have shape [T, ...] (time first); got a 0-dim tensor; use c[None]")
    if c.shape[0] == 0:
        raise ValueError(f"na_cuda: `{name}` must have T = {name}.shape[0] >= 1 time steps; got shape {tuple(c.shape)}")
    if not c.dtype.is_floating_point:
        raise TypeError(f"na_cuda: `{name}` must be float16, bfloat16, float32 or float64; got {c.dtype}; use .float()")
