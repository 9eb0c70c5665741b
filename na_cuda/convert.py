"""Drop-in conversion of an existing SNN's neurons to ``na_cuda.nn.LIF`` (``na_cuda.nn.convert``).

spikingjelly's ``LIFNode`` / ``IFNode`` / ``ParametricLIFNode`` are ``na_cuda.lif`` with the same tau, threshold,
reset and ``decay_input`` (docs/convert.md, "How a neuron maps"); nothing is mapped approximately. One mapper per
neuron type (:func:`_mappers`); the checks every neuron shares run before it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from torch import nn

from . import surrogates
from ._conversion_options import _check_rule_options
from .nn import LIF

#: Methods a subclass may define without changing the neuron's forward (everything the mapper reads is state).
_HARMLESS_OVERRIDES = frozenset({"__init__", "extra_repr", "__repr__", "__str__"})
#: The dynamics methods of spikingjelly's neurons (SimpleBaseNode, older releases): a subclass defining one means
#: to change the forward, even where the mapped type (2.0's LIFNode/IFNode) no longer calls it.
_DYNAMICS = frozenset({"neuronal_charge", "neuronal_fire", "neuronal_reset"})


@dataclass
class ConversionReport:
    """What :func:`convert` did: ``converted`` as ``(path, source type, replacement)``, ``skipped`` (only with
    ``strict=False``) as ``(path, source type, reason)``. ``str(report)`` is a table."""

    converted: list[tuple[str, str, nn.Module]] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    #: ``(path, path of its first use)`` for each further use of a neuron the model holds at several paths: the
    #: same replacement sits at both (converted once, shared parameters stay shared), or it stays at both (skipped).
    shared: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"na_cuda.nn.convert: converted {len(self.converted)}, skipped {len(self.skipped)}"]
        lines += [f"  converted {path} ({src}) -> {type(new).__name__}" for path, src, new in self.converted]
        lines += [f"  skipped   {path} ({src}): {why}" for path, src, why in self.skipped]
        lines += [f"  shared    {path}: the same module as {first}" for path, first in self.shared]
        return "\n".join(lines)


class _Refusal(ValueError):
    """A neuron with no exact equivalent: raised, or recorded as skipped under ``strict=False``."""


def convert(
    model: nn.Module,
    method: str = "na",
    *,
    strict: bool = True,
    verbose: bool = False,
    return_report: bool = False,
    **rule_options: Any,
) -> Any:
    """Replace every spikingjelly neuron in ``model`` by the equivalent ``na_cuda.nn.LIF(output="spike",
    method=method, **rule_options)``; returns the model (changed in place; a neuron passed as ``model`` itself is
    returned converted), or ``(model, ConversionReport)`` with ``return_report=True``. ``copy.deepcopy`` the model
    first to keep it. ``verbose=True`` prints the report.

    Mapped: ``LIFNode`` and ``IFNode`` (and subclasses that override none of their methods): ``tau`` ->
    ``tau_m`` (``IFNode``: ``float("inf")``), ``v_threshold`` -> ``threshold``, ``v_reset`` (a float: hard reset;
    ``None``: soft reset), ``decay_input``; for ``method="stbp"`` also the surrogate (``Sigmoid(alpha)`` ->
    ``"sigmoid"`` with slope ``alpha``, ``ATan(alpha)`` -> ``"atan"``, ``Rect(alpha)`` -> ``"rect"`` of width
    ``1/alpha``, ``PiecewiseQuadratic(alpha)`` -> ``"triangle"`` of half-width ``1/alpha``: the same functions) and
    ``detach_reset``. ``method="na"`` has its own backward (neither surrogate nor ``detach_reset`` is used), so any
    surrogate converts there. ``ParametricLIFNode`` (PLIF, ``1/tau = sigmoid(w)``) becomes an
    ``nn.LIF(learn_decay="sigmoid")`` holding a copy of its ``w`` (docs/algorithm.md §12), with the same settings
    mapped as for ``LIFNode``. A neuron inside ``layer.MultiStepContainer`` (stepped by the container) is unwrapped;
    one inside ``layer.SeqToANNContainer`` (one step on ``[T*B, ...]``) becomes a one-step LIF.

    ``rule_options``: ``method="na"``: ``dist_power``, ``clip``, ``na_window``, ``backend``, ``grad_rescale``;
    ``method="stbp"``: ``backend``. Anything else raises: the neuron's own settings, the other method's options,
    options without effect on a spike output (``tau_s``, ``first_order``) and ``strict_threshold=True``.

    ``strict=False``: a neuron without an exact equivalent stays as it is; a warning and the report list it.

    State: spikingjelly's neurons keep ``v`` between calls until ``functional.reset_net(model)``; ``na_cuda.nn.LIF``
    starts every call from rest (its ``reset()`` is a no-op). The converted model therefore equals the original
    reset before every forward (the standard training loop); a model that carries ``v`` across calls (streaming,
    truncated BPTT over chunks) is not reproduced.

    Raises ``ValueError`` naming the module path, its type and what to do, for what has no exact equivalent;
    ``TypeError`` for ``rule_options`` that the method or the neuron does not take.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"na_cuda.nn.convert: `model` must be a torch.nn.Module; got {type(model).__name__}")
    if method not in ("na", "stbp"):
        raise ValueError(
            f"na_cuda.nn.convert: `method` must be 'na' or 'stbp' (converted neurons output spikes; TSSL-BP is "
            f"defined on PSCs); got {method!r}"
        )
    for name, value in (("strict", strict), ("verbose", verbose), ("return_report", return_report)):
        if not isinstance(value, bool):
            raise TypeError(f"na_cuda.nn.convert: `{name}` must be True or False; got {value!r}")
    _check_rule_options(method, rule_options)
    ctx = _Context(method, rule_options, strict)
    root = ctx.visit(model, "", type(model).__name__)
    if root is None:
        _convert_children(model, "", ctx, set(), _stepping_container(model, ""))
    if not ctx.report.converted and not ctx.report.skipped and not _holds_lif(model):
        # (a model whose neurons are already na_cuda's converts to itself: convert is idempotent)
        raise ValueError("na_cuda.nn.convert: found no spikingjelly neuron in `model` (nothing to convert)")
    if ctx.report.skipped:
        skipped = "\n".join(f"  {path} ({src}): {why}" for path, src, why in ctx.report.skipped)
        warnings.warn(
            f"na_cuda.nn.convert(strict=False): skipped {len(ctx.report.skipped)} neuron(s) without an exact "
            f"equivalent; they stay as they are:\n{skipped}",
            UserWarning,
            stacklevel=2,
        )
    if ctx.report.shared:
        uses = ", ".join(f"{path} (= {first})" for path, first in ctx.report.shared)
        warnings.warn(
            f"na_cuda.nn.convert: a neuron used at several places ({uses}) is one na_cuda.nn.LIF at all of them; "
            "note that spikingjelly carries the neuron's v from one use into the next within a forward (until "
            "reset_net), while na_cuda.nn.LIF starts every call from rest: the outputs of the later uses can differ",
            UserWarning,
            stacklevel=2,
        )
    if ctx.report.converted:
        _forget_reset_cache(model)
    if verbose:
        print(ctx.report)
    out = model if root is None else root
    return (out, ctx.report) if return_report else out


def _holds_lif(model: nn.Module) -> bool:
    """``model`` is or contains an ``na_cuda.nn.LIF`` (e.g. it was converted before)."""
    return any(isinstance(m, LIF) for m in model.modules())


def _children(parent: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every ``(name, child)`` of ``parent``, a module held under two names twice (``named_children`` yields a
    module once, which left the second use of a shared neuron unconverted)."""
    return [(name, child) for name, child in parent._modules.items() if child is not None]


def _forget_reset_cache(model: nn.Module) -> None:
    """spikingjelly's ``reset_net`` caches the modules it resets per model; the swap invalidates that cache."""
    try:
        from spikingjelly.activation_based import functional
    except ImportError:  # pragma: no cover - a spikingjelly model was converted, so it is importable
        return
    invalidate = getattr(functional, "invalidate_reset_cache", None)
    if invalidate is not None:
        invalidate(model)


def _expr(path: str) -> str:
    """``model`` followed by the attribute/index accesses that reach ``path`` (pasteable in an error message)."""
    out = "model"
    for part in path.split(".") if path else []:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if part.isidentifier() else f"[{part!r}]")
    return out


def _convert_children(
    parent: nn.Module, prefix: str, ctx: _Context, seen: set[int], inside: Optional[str] = None
) -> None:
    """Convert below ``parent``; ``inside``: the spikingjelly container (other than the two unwrapped ones) that
    calls the modules below step by step, if any."""
    for name, child in _children(parent):
        path = f"{prefix}.{name}" if prefix else name
        new = ctx.visit(child, path, path, inside)
        if new is not None:
            setattr(parent, name, new)  # Sequential, ModuleList and ModuleDict children are attributes too
        elif id(child) not in seen:
            seen.add(id(child))
            _convert_children(child, path, ctx, seen, inside or _stepping_container(child, path))


def _stepping_container(module: nn.Module, path: str) -> Optional[str]:
    """``"<type> at <path>"`` for a spikingjelly container that runs its content its own way (recurrent, T-last,
    step-mode containers: ``set_step_mode`` leaves their content alone), else None."""
    if not type(module).__module__.startswith("spikingjelly.activation_based.layer"):
        return None
    names = {"StepModeContainer", "TLastMultiStepContainer", "TLastSeqToANNContainer"}
    names |= {"ElementWiseRecurrentContainer", "LinearRecurrentContainer"}
    if any(c.__name__ in names for c in type(module).__mro__):
        return f"{type(module).__name__} at {path or 'the root'}"
    return None


class _Context:
    """One conversion: the method and rule options, the report, and the replacement of each neuron seen (a neuron
    shared by two paths stays shared)."""

    def __init__(self, method: str, rule_options: dict, strict: bool) -> None:
        self.method, self.rule_options, self.strict = method, rule_options, strict
        self.report = ConversionReport()
        self.done: dict[int, Optional[nn.Module]] = {}
        self.first_path: dict[int, str] = {}  # where each neuron or container was met first (the report's `shared`)

    def lif(self, m: nn.Module, path: str, **neuron: Any) -> LIF:
        """The ``na_cuda.nn.LIF`` with the neuron settings ``neuron`` (``tau_m``, ``threshold``, ``v_reset``,
        ``decay_input``), this conversion's method and rule options, and under STBP ``m``'s surrogate and
        ``detach_reset``; in ``m``'s train/eval mode."""
        kwargs: dict[str, Any] = dict(output="spike", method=self.method, **neuron)
        if self.method == "stbp":
            surrogate, alpha = _surrogate(m, path)
            kwargs.update(surrogate=surrogate, surrogate_alpha=alpha, detach_reset=m.detach_reset)
        try:
            lif = LIF(**kwargs, **self.rule_options)
        except (TypeError, ValueError) as e:  # a value na_cuda refuses (e.g. a non-float tau)
            raise _refuse(path, m, str(e)) from e
        return lif.train(m.training)

    def visit(self, module: nn.Module, path: str, shown: str, inside: Optional[str] = None) -> Optional[nn.Module]:
        """The replacement of ``module`` (None: keep it, and look inside). ``shown``: the path in messages;
        ``inside``: see :func:`_convert_children`."""
        if id(module) in self.done:
            return self._again(module, shown)
        kind = _kind(module)
        if kind == "container":
            new = _unwrap_container(module, path, self, inside)
        elif kind is not None:
            new = self.neuron(module, path, shown, None, inside)
        else:
            return None
        self.done[id(module)] = new
        self.first_path[id(module)] = shown
        return new

    def _again(self, module: nn.Module, shown: str) -> Optional[nn.Module]:
        """A module met before at another path: the same replacement (recorded in the report's ``shared``)."""
        self.report.shared.append((shown, self.first_path[id(module)]))
        return self.done[id(module)]

    def neuron(
        self, m: nn.Module, path: str, shown: str, container: Optional[nn.Module], inside: Optional[str] = None
    ) -> Optional[nn.Module]:
        """The LIF replacing the neuron ``m`` (after the checks every neuron shares); under ``strict=False`` None
        for one without an equivalent (recorded as skipped)."""
        if id(m) in self.done:
            return self._again(m, shown)
        new: Optional[nn.Module] = None
        try:
            if type(m).__module__.startswith("snntorch"):
                raise _snntorch_refusal(m, path)
            if inside is not None:
                raise _refuse(
                    path,
                    m,
                    f"it is inside {inside}, which runs it its own way (step by step, recurrently or time-last); "
                    "na_cuda has no equivalent of that container. Convert with strict=False to leave it as it is",
                )
            base, mapper = _mapper(m, path)
            _check_neuron(m, path, base, container)
            new = mapper(m, path, self)
            self.report.converted.append((shown, type(m).__name__, new))
        except _Refusal as e:
            if self.strict:
                raise ValueError(str(e)) from e.__cause__
            self.report.skipped.append((shown, type(m).__name__, str(e).split(": ", 2)[-1]))
        self.done[id(m)] = new
        self.first_path[id(m)] = shown
        return new


def _kind(module: nn.Module) -> Optional[str]:
    """What ``module`` is to convert: "neuron" (spikingjelly), "snntorch" (an snnTorch neuron), "container" (a
    spikingjelly MultiStepContainer or SeqToANNContainer holding a neuron directly), or None (look inside)."""
    if type(module).__module__.startswith("snntorch._neurons"):
        return "snntorch"
    if _is_spikingjelly_neuron(module):
        return "neuron"
    if not type(module).__module__.startswith("spikingjelly.activation_based.layer"):
        return None
    from spikingjelly.activation_based import layer

    if isinstance(module, (layer.MultiStepContainer, layer.SeqToANNContainer)) and any(
        _is_spikingjelly_neuron(c) for c in module.children()
    ):
        return "container"
    return None


def _is_spikingjelly_neuron(module: nn.Module) -> bool:
    """A spikingjelly neuron: an instance of a class of its ``neuron`` package (``BaseNode``, ``SimpleBaseNode``,
    PSN, ...), user subclasses included."""
    return any(c.__module__.startswith("spikingjelly.activation_based.neuron") for c in type(module).__mro__)


# -- the mappers: one per spikingjelly neuron type ------------------------------------------------------------
Mapper = Callable[[nn.Module, str, _Context], nn.Module]


def _lif_node(m: nn.Module, path: str, ctx: _Context) -> nn.Module:
    """``LIFNode``: ``tau`` -> ``tau_m``; threshold, reset and ``decay_input`` as they are."""
    return ctx.lif(m, path, tau_m=m.tau, threshold=m.v_threshold, v_reset=m.v_reset, decay_input=m.decay_input)


def _if_node(m: nn.Module, path: str, ctx: _Context) -> nn.Module:
    """``IFNode``: no leak (``tau_m=inf``), the input never scaled (``decay_input=False``)."""
    return ctx.lif(m, path, tau_m=math.inf, threshold=m.v_threshold, v_reset=m.v_reset, decay_input=False)


def _parametric_lif_node(m: nn.Module, path: str, ctx: _Context) -> nn.Module:
    """spikingjelly's ``ParametricLIFNode`` (PLIF, Fang et al. 2021): ``1/tau = sigmoid(w)`` with ``w`` learnable,
    ``decay_input``, ``v_threshold``, ``v_reset``; under STBP also its surrogate and ``detach_reset`` (through
    ``ctx.lif``). The replacement is ``na_cuda.nn.LIF(learn_decay="sigmoid")`` holding a copy of ``w`` (same value,
    dtype and ``requires_grad``): the same forward, and under STBP the same gradient, ``w``'s included
    (docs/algorithm.md §12)."""
    import torch

    src: torch.Tensor = getattr(m, "w")  # noqa: B009  (an nn.Parameter; mypy types module attributes loosely)
    w = src.detach()
    if w.is_meta:
        raise _refuse(
            path,
            m,
            "its w is on the meta device (no value to copy); materialise the model first (model.to_empty(device="
            "'cpu') and load its state dict), then convert",
        )
    if w.numel() != 1:
        raise _refuse(path, m, f"its w has shape {tuple(w.shape)}; PLIF's w is one number per layer")
    k = float(torch.sigmoid(w))  # 1/tau
    tau = 1.0 / k if k > 0.0 else math.inf
    lif = ctx.lif(
        m,
        path,
        tau_m=tau if 1.0 < tau < math.inf else 2.0,  # tau_m only initialises w, overwritten below
        threshold=m.v_threshold,
        v_reset=m.v_reset,
        decay_input=m.decay_input,
        learn_decay="sigmoid",
    )
    lif.w = nn.Parameter(w.clone().reshape(()), requires_grad=src.requires_grad)
    return lif


def _mappers() -> dict[type, Mapper]:
    """spikingjelly neuron type -> its mapper (spikingjelly is importable: a neuron of it is being converted)."""
    from spikingjelly.activation_based import neuron

    return {neuron.LIFNode: _lif_node, neuron.IFNode: _if_node, neuron.ParametricLIFNode: _parametric_lif_node}


def _mapper(m: nn.Module, path: str) -> tuple[type, Mapper]:
    """The mapped type ``m`` is (or subclasses) and its mapper; raises for a type without one."""
    table = _mappers()
    for cls in type(m).__mro__:
        if cls in table:
            return cls, table[cls]
    names = ", ".join(sorted(c.__name__ for c in table))
    raise _refuse(
        path,
        m,
        f"no na_cuda equivalent; convert maps {names} (and their subclasses that override none of their "
        "methods). Convert with strict=False to leave it as it is",
    )


def _check_neuron(m: nn.Module, path: str, base: type, container: Optional[nn.Module]) -> None:
    """The checks every spikingjelly neuron shares, before its mapper. ``container``: the MultiStepContainer or
    SeqToANNContainer that holds it (which calls it as a single-step neuron), if any."""
    overridden = sorted(
        {
            name
            for cls in type(m).__mro__[: type(m).__mro__.index(base)]
            for name, attr in vars(cls).items()
            if name not in _HARMLESS_OVERRIDES
            and (hasattr(base, name) or name in _DYNAMICS)
            and (callable(attr) or isinstance(attr, (property, staticmethod, classmethod)))
        }
    )
    if overridden:
        raise _refuse(
            path,
            m,
            f"it subclasses {base.__name__} and overrides {', '.join(overridden)}, so it may compute something "
            f"else than {base.__name__}; convert with strict=False to leave it as it is (a subclass that overrides "
            "only __init__ or extra_repr converts)",
        )
    if m.step_mode != ("m" if container is None else "s"):
        if container is None:
            why = (
                f"step_mode={m.step_mode!r}: a single-step neuron is called once per time step and keeps v between "
                "calls, na_cuda.nn.LIF simulates a whole [T, ...] window per call; switch the model to multi-step "
                "first: spikingjelly.activation_based.functional.set_step_mode(model, 'm') (inputs [T, B, ...])"
            )
        else:
            name = type(container).__name__
            shape = "[T*B, ...] as one step" if name == "SeqToANNContainer" else "[B, ...] once per time step"
            why = (
                f"step_mode={m.step_mode!r} inside a {name}, which calls it with {shape}: a multi-step neuron "
                f"would read the first dimension as time. Build it with step_mode='s', or take it out of the "
                f"container in step_mode='m'"
            )
        raise _refuse(path, m, why)
    fn = getattr(m, "surrogate_function", None)
    if fn is not None and getattr(fn, "spiking", True) is False:
        raise _refuse(
            path,
            m,
            f"its surrogate {type(fn).__name__}(spiking=False) makes the neuron output a smooth activation, not "
            "spikes; build the surrogate with spiking=True",
        )
    if getattr(m, "store_v_seq", False):
        raise _refuse(
            path,
            m,
            f"store_v_seq=True: na_cuda.nn.LIF does not expose the membrane potential; set {_expr(path)}"
            ".store_v_seq = False",
        )
    if getattr(m, "_neuron_precision", None) is not None:
        raise _refuse(
            path,
            m,
            f"its neuron precision setting {m._neuron_precision!r} is a spikingjelly backend option (na_cuda "
            f"computes float16/bfloat16 in float32); remove it: {_expr(path)}._neuron_precision = None",
        )
    for owner, who in ((m, "it has"), (container, f"its {type(container).__name__} (unwrapped) has")):
        hooks = [k for k in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks") if getattr(owner, k, None)]
        if hooks and (owner is m or _is_multistep_container(owner)):
            raise _refuse(
                path,
                m,
                f"{who} {', '.join(hooks)} (e.g. a monitor), which would be lost; remove them (handle.remove() on "
                "the handles register_forward_hook returned) and attach them to the converted module",
            )


def _is_multistep_container(module: Optional[nn.Module]) -> bool:
    """A spikingjelly MultiStepContainer (unwrapped by convert; a SeqToANNContainer is kept)."""
    return any(c.__name__ == "MultiStepContainer" for c in type(module).__mro__) if module is not None else False


def _unwrap_container(c: nn.Module, path: str, ctx: _Context, inside: Optional[str]) -> Optional[nn.Module]:
    """A MultiStepContainer or SeqToANNContainer holding neurons, rebuilt around their replacements.

    ``MultiStepContainer(a, n, b)`` runs ``a``, ``n``, ``b`` on each step in turn; since no module feeds back, that
    is ``a`` on every step, then ``n`` over the window, then ``b`` (``MultiStepContainer(a), LIF,
    MultiStepContainer(b)``). In a ``SeqToANNContainer`` the neuron runs one step on ``[T*B, ...]``: a one-step LIF.
    """
    from spikingjelly.activation_based import layer

    stepped = _is_multistep_container(c)
    prefix = f"{path}." if path else ""
    parts: list[nn.Module] = []
    run: list[nn.Module] = []
    for name, child in _children(c):
        if not _is_spikingjelly_neuron(child):
            run.append(child)
            continue
        child_path = prefix + name
        new = ctx.neuron(child, child_path, child_path, c, inside)
        if new is None:  # skipped (strict=False): it keeps running in the container
            run.append(child)
        elif stepped:
            if run:
                parts.append(layer.MultiStepContainer(*run))
            parts.append(new)
            run = []
        else:
            setattr(c, name, nn.Sequential(nn.Unflatten(0, (1, -1)), new, nn.Flatten(0, 1)))
    if not stepped:
        return c
    if not parts:  # every neuron in it was skipped
        return None
    if run:
        parts.append(layer.MultiStepContainer(*run))
    return parts[0] if len(parts) == 1 else nn.Sequential(*parts)


def _refuse(path: str, module: nn.Module, why: str) -> _Refusal:
    origin = "snnTorch" if type(module).__module__.startswith("snntorch") else "spikingjelly"
    shown = path or type(module).__name__
    return _Refusal(f"na_cuda.nn.convert: cannot convert {shown} ({origin} {type(module).__name__}): {why}")


def _surrogate(m: nn.Module, path: str) -> tuple[str, float]:
    """The na_cuda surrogate computing the same derivative as the neuron's spikingjelly surrogate function."""
    fn = m.surrogate_function
    name = type(fn).__name__
    if type(fn).__module__ != "spikingjelly.activation_based.surrogate":
        raise _refuse(path, m, f"surrogate_function {fn!r} is not a spikingjelly surrogate; method='na' uses none")
    # the spikingjelly class of each na_cuda surrogate, and how its parameter maps (na_cuda/surrogates.py)
    mapping = {s.spikingjelly: s for s in surrogates.TABLE if s.spikingjelly is not None}
    if name not in mapping:
        raise _refuse(
            path,
            m,
            f"surrogate {name} has no na_cuda equivalent under method='stbp' (equivalents: "
            f"{', '.join(mapping)}); method='na' converts any surrogate",
        )
    spec = mapping[name]
    for key, want in spec.sj_fixed.items():
        if getattr(fn, key, None) != want:
            raise _refuse(path, m, f"surrogate {name} has {key}={getattr(fn, key, None)!r}; only {key}={want} maps")
    alpha = getattr(fn, spec.sj_param, None)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise _refuse(path, m, f"surrogate {name} has {spec.sj_param}={alpha!r}; only a fixed Python number maps")
    return spec.name, spec.sj_alpha(float(alpha))


def _snntorch_refusal(m: nn.Module, path: str) -> _Refusal:
    """Why an snnTorch neuron cannot be replaced in place, and the code that converts a Leaky."""
    why = (
        "snnTorch neurons are single-step modules: the model's forward calls them once per time step and "
        "carries `mem` between calls, so no multi-step module can take their place inside that loop."
    )
    if type(m).__name__ != "Leaky":
        return _refuse(path, m, why + f" {type(m).__name__} has no na_cuda equivalent.")
    return _refuse(
        path,
        m,
        why + " Rewrite the loop as layers on [T, B, ...] and build this neuron with "
        f'`lif = na_cuda.nn.LIF.from_snntorch({_expr(path)}, method="stbp")` (snnTorch\'s own BPTT gradient; '
        'method="na" trains it with NA).',
    )
