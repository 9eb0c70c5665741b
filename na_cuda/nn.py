"""Modules: the multi-step LIF neuron, the [T, B] folding wrapper, and NA's layer-wise gradient rescaling.
See docs/api.md."""

from __future__ import annotations

import math
import threading
import warnings
from typing import Any, Callable, Optional, Union, cast

import torch
from torch import nn

from . import _validate, functional
from .params import LifParams, clamp_decay
from .rules import NA, Rule

#: Parametrisations of a learnable decay (docs/algorithm.md §12): "sigmoid" is spikingjelly's PLIF
#: (``1/tau_m = sigmoid(w)``, so ``lam = 1 - sigmoid(w)``), "beta" is snnTorch's ``learn_beta`` (``lam = beta``,
#: clamped to [0, 1]).
LEARN_DECAY = ("sigmoid", "beta")


class GradRescale:
    r"""Layer-wise rescaling of NA gradients, as the authors' released code does it (spec §4). Off unless attached.

    Each NA layer's input gradient is multiplied by ``1.2 * ln(m_last / (m + 1e-5) + 1.02)``, with ``m`` the
    mean ``|grad_c|`` of that layer in this backward pass. The output NA layer (the first NA backward of the
    pass) uses ``m_last = m``; every later layer uses the output layer's mean ``|grad_c|`` *after* its own
    rescale, ``m_out * scale_out``: the released ``functions/na.py`` calls ``update_norm`` a second time after the
    rescale, overwriting the stored mean that the hidden layers then read.

    ``round_decimals``: the released code stores those means rounded to 3 decimals (``round(mean.item(), 3)``);
    ``round_decimals=3`` reproduces that (rounded on the device with ``torch.round``, no host synchronisation),
    ``None`` (default) keeps them exact. ``m`` itself (the denominator) is never rounded, as in the released code.

    One instance is shared by the LIF layers of a network; see ``enable_grad_rescale``. The output layer is the
    one called last in the forward pass: each forward call gets an increasing index, and the first backward
    node whose index exceeds the stored one starts a new pass. Each thread has its own counter and stored mean
    (a pass is one thread's forward calls, and its backward nodes use the state their forward used), so one model
    trained from several threads at once gives every pass the serial run's gradients. A ``torch.compile``'d
    model uses the creating thread's state from every thread: run it from one thread at a time.

    The per-pass state (the call counter, the index of the last output layer and the stored mean) lives in
    one-element tensors on the input's device, updated in place, never in Python numbers: ``torch.compile`` then
    sees the same graph on every call (a Python counter is a constant to dynamo, so each call recompiled until
    the recompile limit), and the updates are tensor mutations that ``fullgraph=True`` accepts (a Python
    attribute set in a backward is an "unsafe side effect" to dynamo). Shape ``[1]``, not ``[]``: dynamo reads a
    0-dim CPU tensor as a Python scalar and restarts its first trace. The selection is ``torch.where``, not an
    ``if``, for the same reason, and it keeps the rescale free of host synchronisations.
    """

    def __init__(self, round_decimals: Optional[int] = None) -> None:
        if round_decimals is not None and (
            isinstance(round_decimals, bool) or not isinstance(round_decimals, int) or round_decimals < 0
        ):
            raise ValueError(
                f"na_cuda: `round_decimals` must be None or an int >= 0 (3 = the released code); got {round_decimals!r}"
            )
        self.round_decimals = round_decimals
        self._main = _PassState()
        self._init_threads()

    def _init_threads(self) -> None:
        # Passes of other threads than the creating one get their own _PassState (thread-local): a pass is the
        # forward calls of one thread, so one model used from several threads at once rescales each pass as a
        # serial run would (with one shared counter the passes interleaved, and a hidden layer read another
        # thread's output-layer mean).
        self._owner = threading.get_ident()
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        del d["_owner"], d["_local"]  # a thread-local cannot be pickled or copied; the copy starts its own
        return d

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)
        self._init_threads()

    def __repr__(self) -> str:
        return f"GradRescale(round_decimals={self.round_decimals})"

    def _passes(self) -> _PassState:
        """The per-pass state of the calling thread. Under torch.compile it is the creating thread's (dynamo
        traces no thread-local; a compiled model with the rescale is for one thread at a time)."""
        if torch.compiler.is_compiling() or threading.get_ident() == self._owner:
            return self._main
        passes = getattr(self._local, "passes", None)
        if passes is None:
            passes = self._local.passes = _PassState()
        return passes

    def _next_index(self, device: torch.device) -> torch.Tensor:
        """The calling thread's next forward index (``_PassState.next_index``)."""
        return self._passes().next_index(device)

    def _round(self, m: torch.Tensor) -> torch.Tensor:
        return m if self.round_decimals is None else torch.round(m, decimals=self.round_decimals)

    def _rescale(self, passes: _PassState, index: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        # mean |grad| as one reduction (no |grad| temporary), accumulated in float64: a float32 L1 norm on the
        # CPU sums naively and came out 2.4e-4 (relative) low on a conv layer of the MNIST net, where the released
        # torch.mean(torch.abs(grad)) is accurate to ~1e-8 (tests/test_golden.py, the network step)
        m = torch.linalg.vector_norm(grad.detach(), ord=1, dtype=torch.float64)
        m = m / max(grad.numel(), 1)
        output_layer = index > passes.last_index  # the first NA backward of a new pass
        m_last = torch.where(output_layer, self._round(m), passes.m_last)
        scale = 1.2 * torch.log(m_last / (m + 1e-5) + 1.02)
        passes.last_index.copy_(torch.where(output_layer, index, passes.last_index))
        # mean |grad * scale| = m * scale (scale > 0): the released second update_norm, without a 2nd pass
        passes.m_last.copy_(torch.where(output_layer, self._round(m * scale), passes.m_last))
        return grad * scale.to(grad.dtype)


class _PassState:
    """The per-pass state of GradRescale (see its docstring): the forward call counter, the index of the last output
    layer and its stored mean, one-element tensors updated in place."""

    def __init__(self) -> None:
        self.calls = torch.zeros(1, dtype=torch.int64)
        # -1 < every index: the first backward ever starts a pass, whatever the stored mean
        self.last_index = torch.full((1,), -1, dtype=torch.int64)
        self.m_last = torch.zeros(1, dtype=torch.float64)

    def next_index(self, device: torch.device) -> torch.Tensor:
        """This forward call's index (a fresh ``[1]`` tensor); moves the state to ``device`` on first use there."""
        if self.calls.device != device:
            self.calls, self.last_index, self.m_last = (
                t.to(device) for t in (self.calls, self.last_index, self.m_last)
            )
        self.calls.add_(1)
        return self.calls.clone()  # a copy: the counter moves on with the next call


class _RescaleGrad(torch.autograd.Function):
    """Identity forward; backward applies GradRescale to the gradient that reaches the LIF input."""

    @staticmethod
    def forward(ctx: Any, c: torch.Tensor, state: GradRescale, passes: _PassState, index: torch.Tensor) -> torch.Tensor:
        ctx.state, ctx.passes = state, passes
        ctx.save_for_backward(index)
        return c.view_as(c)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        (index,) = ctx.saved_tensors
        return ctx.state._rescale(ctx.passes, index, grad), None, None, None


class LIF(nn.Module):
    """Multi-step LIF neuron ``[T, ...] -> [T, ...]`` trained with NA, STBP or TSSL-BP (see ``na_cuda.lif``).

    Stateless between calls: every call simulates the whole window from rest. The neuron parameters are plain
    floats, held as ``self.neuron`` (a ``na_cuda.params.LifParams``) and ``self.rule`` (a rule object of
    ``na_cuda.rules``); ``self.params`` is the same as a keyword dict. Without a decay option the module has no
    parameters or buffers, so ``.to()``/``.double()`` and state dicts of the surrounding model work unchanged.
    ``grad_rescale``: a ``GradRescale`` shared with the other NA layers of the network (spec §4), default off.

    Learnable time constants (docs/algorithm.md §12): ``learn_decay="sigmoid"`` is spikingjelly's PLIF (Fang et
    al. 2021): a parameter ``w`` with ``1/tau_m = sigmoid(w)``, initialised from ``tau_m`` as PLIF does
    (``w = -log(tau_m - 1)``); ``learn_decay="beta"`` is snnTorch's ``learn_beta``: a parameter ``beta`` = the leak
    ``lam`` itself (clamped to [0, 1] in the forward), initialised to ``1 - 1/tau_m``. ``decay_shape`` is the
    parameter's shape: ``()`` one per layer, or a shape that broadcasts against the input's ``[B, ...]`` (e.g.
    ``(features,)``, ``(channels, 1, 1)``) for one per neuron or channel. ``decay`` (a float or tensor of leaks
    ``lam`` in [0, 1]) sets the initial values instead of ``tau_m`` (its shape is the parameter's), or, without
    ``learn_decay``, a fixed leak held as a buffer (snnTorch's non-learnable tensor ``beta``). Every rule and
    backend computes the decay's gradient inside its backward pass. ``decay_values()`` returns the current
    ``lam``.

    Input is time first, ``[T, B, ...]``. A 2-dim input with more than 64 rows is most likely ``[B, N]`` and
    warns once per module; feed ``[B, T, ...]`` data as ``x.transpose(0, 1)``.

    The neuron and rule keywords are those of ``na_cuda.lif`` (the fields of ``LifParams`` and the rule classes);
    ``LIF(neuron=LifParams(...), rule=STBP(surrogate="atan", alpha=2.0))`` passes the objects instead.
    """

    def __init__(
        self,
        *,
        neuron: Optional[LifParams] = None,
        rule: Optional[Rule] = None,
        grad_rescale: Optional[GradRescale] = None,
        learn_decay: Optional[str] = None,
        decay_shape: tuple[int, ...] = (),
        decay: Union[float, torch.Tensor, None] = None,
        **options: Any,
    ) -> None:
        super().__init__()
        self.neuron, self.rule, self.backend = _validate.build(neuron=neuron, rule=rule, **options)
        self.learn_decay = learn_decay
        self._init_decay(learn_decay, decay_shape, decay)
        if grad_rescale is not None and not isinstance(grad_rescale, GradRescale):
            raise TypeError(f"na_cuda: `grad_rescale` must be a na_cuda.nn.GradRescale or None; got {grad_rescale!r}")
        self.grad_rescale = grad_rescale
        self._layout_warned = False

    def _init_decay(
        self, learn: Optional[str], shape: tuple[int, ...], decay: Union[float, torch.Tensor, None]
    ) -> None:
        """The decay's parameter (``w`` or ``beta``) or buffer (``decay``), from ``decay`` or ``tau_m`` (§12)."""
        if learn is not None and learn not in LEARN_DECAY:
            raise ValueError(
                f"na_cuda: `learn_decay` must be None, 'sigmoid' (PLIF) or 'beta' (snnTorch); got {learn!r}"
            )
        if not isinstance(shape, tuple) or not all(isinstance(n, int) and not isinstance(n, bool) for n in shape):
            raise TypeError(f"na_cuda: `decay_shape` must be a tuple of ints, e.g. () or (128,); got {shape!r}")
        if any(n < 1 for n in shape):
            raise ValueError(f"na_cuda: `decay_shape` must be a tuple of sizes >= 1, e.g. () or (128,); got {shape}")
        if decay is None:
            if learn is None:
                if shape != ():
                    raise ValueError("na_cuda: `decay_shape` needs learn_decay='sigmoid' or 'beta' (or a `decay`)")
                return
            try:
                lam = torch.full(shape, self.neuron.lam, dtype=torch.get_default_dtype())
            except RuntimeError:  # e.g. (2**40,): the allocator's refusal, which does not name the argument
                raise ValueError(
                    f"na_cuda: `decay_shape` {shape} ({math.prod(shape)} values) cannot be allocated; it is the "
                    "decay's shape: () one per layer, or a shape broadcasting to the input's [B, ...]"
                ) from None
        else:
            lam = _decay_tensor(decay)
            if shape not in ((), tuple(lam.shape)):
                raise ValueError(f"na_cuda: `decay_shape` {shape} differs from the shape of `decay` {tuple(lam.shape)}")
            if learn == "beta":  # a beta parameter is clamped to [0, 1] in the forward: any finite value
                if not bool(lam.isfinite().all()):
                    raise ValueError(
                        "na_cuda: `decay` (snnTorch's beta, clamped to [0, 1] in the forward) must be finite; got "
                        f"{_some(lam)}"
                    )
            elif not bool(((lam >= 0) & (lam <= 1)).all()):  # NaN fails both comparisons
                raise ValueError(f"na_cuda: `decay` (the leak lam = 1 - 1/tau_m) must lie in [0, 1]; got {_some(lam)}")
        if learn == "sigmoid":
            tau = self.neuron.tau_m
            if decay is None and not 1.0 < tau < math.inf:
                raise ValueError(
                    f"na_cuda: learn_decay='sigmoid' (PLIF, 1/tau_m = sigmoid(w)) needs 1 < tau_m < inf; got {tau}"
                )
            if decay is None:  # PLIF's own initialisation, w = -log(tau - 1)
                w = torch.full(shape, -math.log(tau - 1.0), dtype=torch.get_default_dtype())
            else:
                w = torch.log((1.0 - lam) / lam)  # 1 - lam = sigmoid(w)
                if not bool(w.isfinite().all()):  # lam = 0 or 1 (or so close that the quotient overflows)
                    raise ValueError(
                        "na_cuda: `decay` with learn_decay='sigmoid' (PLIF, lam = 1 - sigmoid(w)) must lie in the open "
                        f"interval (0, 1): lam = 0 or 1 is w = +-inf; got {_some(lam)}"
                    )
            self.w = nn.Parameter(w)
        elif learn == "beta":
            self.beta = nn.Parameter(lam)
        else:
            self.register_buffer("decay", lam)

    def decay_values(self) -> Optional[torch.Tensor]:
        """The leak ``lam`` the forward uses (a tensor of the decay's shape, differentiable), or None without a
        decay option (then ``lam = 1 - 1/tau_m``)."""
        if self.learn_decay == "sigmoid":
            return 1.0 - torch.sigmoid(self.w)
        if self.learn_decay == "beta":
            return clamp_decay(self.beta)
        return getattr(self, "decay", None)

    @property
    def params(self) -> dict[str, Any]:
        """Every keyword of ``na_cuda.lif`` with this module's value."""
        return _validate.as_dict(self.neuron, self.rule, self.backend)

    @classmethod
    def from_snntorch(cls, leaky: nn.Module, method: str = "stbp", **options: Any) -> LIF:
        """The ``LIF`` computing what the snnTorch ``Leaky`` neuron ``leaky`` computes over a window; see
        ``na_cuda.snntorch.from_snntorch`` (docs/algorithm.md §11)."""
        from .snntorch import from_snntorch

        return cast("LIF", from_snntorch(leaky, cls, method=method, **options))

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        _validate.input_tensor(c, "input")
        if c.dim() == 2 and c.shape[0] > _LAYOUT_WARN_T and not self._layout_warned:
            self._layout_warned = True
            warnings.warn(
                f"na_cuda: LIF input of shape {tuple(c.shape)} looks like [B, N]; na_cuda wants time first "
                "[T, B, ...]; use x.transpose(0, 1)",
                UserWarning,
                stacklevel=2,
            )
        if self.grad_rescale is not None and torch.is_grad_enabled() and c.requires_grad:
            passes = self.grad_rescale._passes()
            c = _RescaleGrad.apply(c, self.grad_rescale, passes, passes.next_index(c.device))
        # snnTorch's beta goes unclamped: na_cuda.lif clamps it inside the op (§12), the same values and gradient.
        decay = self.beta if self.learn_decay == "beta" else self.decay_values()
        return functional.apply(c, self.neuron, self.rule, self.backend, decay)

    def extra_repr(self) -> str:
        s = f"{self.neuron.extra_repr()}, {self.rule.extra_repr()}, backend={self.backend!r}"
        d = self.decay_values()
        if d is not None:
            shape = tuple(d.shape)
            s += f", learn_decay={self.learn_decay!r}, decay_shape={shape}" if self.learn_decay else f", decay={shape}"
        return s

    # -- spikingjelly's module protocol (a converted model keeps working with its functional helpers) ----------
    @property
    def step_mode(self) -> str:
        """Always ``"m"`` (multi-step: one call takes the whole ``[T, ...]`` window), as spikingjelly names it."""
        return "m"

    @step_mode.setter
    def step_mode(self, value: str) -> None:
        if value != "m":
            raise ValueError(
                f"na_cuda: nn.LIF is multi-step only (one step would read the batch as time); got step_mode={value!r}; "
                "keep the model multi-step (functional.set_step_mode(model, 'm')) and feed [T, B, ...]"
            )

    def reset(self) -> None:
        """No-op: every call starts from rest, so there is no state (``functional.reset_net`` may call it)."""


def _decay_tensor(decay: Any) -> torch.Tensor:
    """``nn.LIF``'s ``decay`` as a detached real tensor with real values (a float tensor keeps its dtype, anything
    else gets the default dtype); TypeError/ValueError naming ``decay`` for what is not one."""
    if isinstance(decay, torch.Tensor):
        if decay.is_complex() or decay.dtype == torch.bool:
            raise TypeError(f"na_cuda: `decay` must be a real tensor of leaks in [0, 1]; got dtype {decay.dtype}")
        if decay.is_meta:
            raise ValueError(
                "na_cuda: `decay` is on the meta device (no values to check or copy); pass a CPU or CUDA tensor, "
                "or leave `decay` out and load the values into the module's parameter later"
            )
        keep = decay.dtype.is_floating_point  # its values exactly
        return decay.detach().to(None if keep else torch.get_default_dtype()).clone()
    why = "a float in [0, 1] or a tensor of them (one per layer, or of the decay_shape)"
    if isinstance(decay, (bool, str, bytes, complex)):
        raise TypeError(f"na_cuda: `decay` must be {why}; got {type(decay).__name__} {decay!r}")
    try:
        lam = torch.as_tensor(decay, dtype=torch.get_default_dtype())
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(f"na_cuda: `decay` must be {why}; got {decay!r} ({e})") from None
    return lam.clone()


def _some(lam: torch.Tensor) -> str:
    """A short view of the decay's values for an error message."""
    return str(lam.item()) if lam.numel() == 1 else f"values {lam.flatten()[:8].tolist()}"


#: nn.LIF warns (once) about a 2-dim input with more time steps than this: typical windows are 4-32 steps.
_LAYOUT_WARN_T = 64


def enable_grad_rescale(model: nn.Module, round_decimals: Optional[int] = None) -> GradRescale:
    """Attach one shared ``GradRescale(round_decimals)`` to every NA ``LIF`` in ``model`` (spec §4); returns it."""
    state = GradRescale(round_decimals)
    found = False
    for module in model.modules():
        if isinstance(module, LIF) and isinstance(module.rule, NA):
            module.grad_rescale = state
            found = True
    if not found:
        raise ValueError("na_cuda: enable_grad_rescale found no na_cuda.nn.LIF with method='na' in `model`")
    return state


class SeqToANN(nn.Module):
    """Apply stateless layers to a time-first sequence: folds ``[T, B, ...]`` into ``[T*B, ...]``, runs
    ``modules`` in order (as ``nn.Sequential``), and unfolds the result to ``[T, B, ...]``."""

    def __init__(self, *modules: nn.Module) -> None:
        super().__init__()
        if not modules:
            raise ValueError("na_cuda: SeqToANN needs at least one module, e.g. SeqToANN(nn.Conv2d(1, 15, 5))")
        self.module = modules[0] if len(modules) == 1 else nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(f"na_cuda: SeqToANN expects input [T, B, ...]; got shape {tuple(x.shape)}")
        t, b = x.shape[0], x.shape[1]
        y = self.module(x.flatten(0, 1))
        return y.unflatten(0, (t, b))


def __getattr__(name: str) -> Callable[..., nn.Module]:
    """``na_cuda.nn.convert``: the drop-in conversion of spikingjelly models, which lives in ``na_cuda.convert``
    (that module depends on this one, not the reverse; this PEP 562 hook resolves the name on first use)."""
    if name == "convert":
        from .convert import convert

        return convert
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
