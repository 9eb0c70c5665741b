"""Losses, desired spike trains and the prediction rule used by the NA, TSSL-BP and TET papers (spec §7).

``psc``, ``van_rossum`` (NA eq. 5), ``na_desired_spikes``, ``tssl_desired_spikes``, ``spike_count`` (TSSL-BP),
``tet``, ``sdt`` (TET) and ``spike_count_predictions``; outputs are time first ``[T, B, classes]``, labels
``[B]``. The only host sync is the label check (``check_labels=False`` skips it). docs/training.md, "Losses
(na_cuda.losses) in detail".
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F

from .params import real as _real

__all__ = [
    "psc",
    "van_rossum",
    "na_desired_spikes",
    "tssl_desired_spikes",
    "spike_count",
    "tet",
    "sdt",
    "spike_count_predictions",
]

REDUCTIONS = ("mean", "sum")


# ----------------------------------------------------------------------------------------------------------------
# Argument checks (all raise with the argument's name and the fix).
# ----------------------------------------------------------------------------------------------------------------
def _tau_s(tau_s: Any) -> float:
    tau_s = _real("tau_s", tau_s)
    if tau_s < 1.0:
        raise ValueError(
            f"na_cuda: `tau_s` must be >= 1 (the PSC decay is 1 - 1/tau_s, which must lie in [0, 1)); got {tau_s}"
        )
    return tau_s


def _reduction(reduction: Any) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"na_cuda: `reduction` must be 'mean' (over the batch) or 'sum'; got {reduction!r}")
    return reduction


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"na_cuda: `{name}` must be a Python int; got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"na_cuda: `{name}` must be >= 1; got {value}")
    return value


def _outputs(x: Any, name: str = "outputs", *, floating: bool = True) -> tuple[int, int, int]:
    """`x` must be a tensor [T, B, classes] with T, B, classes >= 1; returns (T, B, classes)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"na_cuda: `{name}` must be a torch.Tensor of shape [T, B, classes]; got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(
            f"na_cuda: `{name}` must have shape [T, B, classes] (time first, 3 dims); got {x.dim()} dims, shape "
            f"{tuple(x.shape)}. Flatten the feature dims into `classes` or add the missing dim (e.g. {name}[None])"
        )
    if min(x.shape) < 1:
        raise ValueError(f"na_cuda: `{name}` must have T, B, classes >= 1; got shape {tuple(x.shape)}")
    if floating and not x.dtype.is_floating_point:
        raise TypeError(f"na_cuda: `{name}` must be a floating tensor; got {x.dtype}. Convert with .float()")
    return x.shape[0], x.shape[1], x.shape[2]


def _labels(
    labels: Any, num_classes: int, batch: Optional[int], device: Optional[torch.device], check_range: bool = True
) -> None:
    """`labels` must be an integer tensor [B] with values in [0, num_classes), on `device` when given. The dtype,
    shape and device checks read only metadata; the range check (``check_range``) reads the values."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"na_cuda: `labels` must be an integer torch.Tensor of shape [B]; got {type(labels).__name__}")
    if labels.dtype == torch.bool or labels.dtype.is_floating_point or labels.dtype.is_complex:
        raise TypeError(
            f"na_cuda: `labels` must hold integer class indices (int64); got {labels.dtype}. Convert with .long()"
        )
    if labels.dim() != 1:
        raise ValueError(
            f"na_cuda: `labels` must have shape [B] (one class index per sample, not one-hot); got shape "
            f"{tuple(labels.shape)}"
        )
    if labels.shape[0] < 1:
        raise ValueError("na_cuda: `labels` must hold at least one label (B >= 1); got an empty tensor")
    if batch is not None and labels.shape[0] != batch:
        raise ValueError(
            f"na_cuda: `labels` has B = {labels.shape[0]} entries but the outputs have B = {batch} "
            f"(outputs are [T, B, classes], time first; transpose batch-first outputs with .transpose(0, 1))"
        )
    if device is not None and labels.device != device:
        raise ValueError(
            f"na_cuda: `labels` is on {labels.device} but the outputs are on {device}; "
            f"move it with .to({str(device)!r})"
        )
    if not check_range:
        return
    # An out-of-range index would otherwise become a silent all-zero target row (desired trains, spike_count) or a
    # device-side assert (cross-entropy). Compiled: an asynchronous device-side assert (no graph break, no sync).
    # Eager: min and max read back to the host (free for CPU labels, one device->host sync otherwise).
    if torch.compiler.is_compiling():
        torch._assert_async(((labels >= 0) & (labels < num_classes)).all(), "na_cuda: `labels` out of [0, classes)")
        return
    lo, hi = torch.stack(torch.aminmax(labels)).tolist()
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"na_cuda: `labels` must lie in [0, classes) = [0, {num_classes}); got values in [{lo}, {hi}]")


def _one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[B, classes] with 1 at the label, built by comparison (no scatter, no sync)."""
    classes = torch.arange(num_classes, device=device)
    return (labels.to(device).unsqueeze(1) == classes).to(dtype)


def _float_dtype(dtype: Any) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"na_cuda: `dtype` must be a floating torch.dtype (e.g. torch.float32); got {dtype!r}")
    return dtype


# ----------------------------------------------------------------------------------------------------------------
# Kernel and kernel loss.
# ----------------------------------------------------------------------------------------------------------------
def psc(spikes: torch.Tensor, tau_s: float) -> torch.Tensor:
    r"""First-order synaptic kernel applied along dim 0 (NA paper eq. 2-3, spec §2)::

        a[t] = (1 - 1/tau_s) a[t-1] + s[t] / tau_s,     a[-1] = 0

    i.e. ``a = sigma * s`` with ``sigma[k] = (1/tau_s)(1 - 1/tau_s)^k``. The same filter as the neuron's PSC
    output and as ``psp`` in the released NA / TSSL-BP ``loss_f.py`` (there: ``syn = syn - syn/tau_s + s[t]``,
    ``a[t] = syn / tau_s``, the same recursion). Used to turn desired spike trains into target PSCs.

    Args:
        spikes: floating tensor ``[T, ...]`` (time first), any trailing shape.
        tau_s: synaptic time constant, ``>= 1``.
    Returns:
        ``a`` with the shape and dtype of ``spikes``; differentiable w.r.t. ``spikes``.
    """
    if not isinstance(spikes, torch.Tensor):
        raise TypeError(f"na_cuda: `spikes` must be a torch.Tensor of shape [T, ...]; got {type(spikes).__name__}")
    if spikes.dim() == 0 or spikes.shape[0] < 1:
        raise ValueError(
            f"na_cuda: `spikes` must have shape [T, ...] with T >= 1 (time first); got shape {tuple(spikes.shape)}"
        )
    if not spikes.dtype.is_floating_point:
        raise TypeError(f"na_cuda: `spikes` must be a floating tensor; got {spikes.dtype}. Convert with .float()")
    tau_s = _tau_s(tau_s)
    kappa = 1.0 - 1.0 / tau_s
    out = []
    a = spikes[0] / tau_s
    out.append(a)
    for t in range(1, spikes.shape[0]):
        a = kappa * a + spikes[t] / tau_s
        out.append(a)
    return torch.stack(out, dim=0)


def van_rossum(
    out_psc: torch.Tensor,
    target_spikes: torch.Tensor,
    tau_s: float,
    reduction: str = "mean",
    target_filters: int = 1,
) -> torch.Tensor:
    r"""Van Rossum / kernel loss, NA paper eq. 5 (spec §7)::

        L_b = 1/2 * sum_{t, classes} (psc(d)[t] - a[t])^2,     L = mean_b L_b   ("mean")  or  sum_b L_b  ("sum")

    ``a = out_psc`` is the output layer's PSC (the neuron's ``output="psc"``), ``d = target_spikes`` the desired
    spike trains (``na_desired_spikes`` / ``tssl_desired_spikes``), filtered with the same kernel (``psc``).
    The released NA / TSSL-BP code (``loss_f.py``, ``spike_kernel`` / ``loss_kernel``) sums over the batch too,
    i.e. ``reduction="sum"``; the default here averages over the batch so the scale does not depend on B.

    Args:
        out_psc: floating ``[T, B, classes]``.
        target_spikes: ``[T, B, classes]`` desired spikes, floating (cast to ``out_psc.dtype``; no grad); an
            integer tensor raises TypeError (labels or counts by mistake, most often).
        tau_s: synaptic time constant of the kernel, ``>= 1`` (use the output neuron's).
        reduction: ``"mean"`` (over the batch) or ``"sum"``.
        target_filters: how often the desired train is PSC-filtered: 1 is eq. 5; 2 is the released NA code, whose
            ``main.py`` filters the desired train once and whose ``loss_kernel`` filters it again (for an all-ones
            train at T = 5, tau_s = 2 the target becomes [0.25, 0.5, 0.6875, 0.8125, 0.890625] instead of
            [0.5, 0.75, 0.875, 0.9375, 0.96875]).
    Returns:
        0-dim tensor; gradient ``dL/da[t] = a[t] - psc(d)[t]`` (divided by B for ``"mean"``).
    """
    T, B, C = _outputs(out_psc, "out_psc")
    if not isinstance(target_spikes, torch.Tensor):
        raise TypeError(
            f"na_cuda: `target_spikes` must be a torch.Tensor [T, B, classes]; got {type(target_spikes).__name__}"
        )
    if tuple(target_spikes.shape) != (T, B, C):
        raise ValueError(
            f"na_cuda: `target_spikes` must have the shape of `out_psc` [T, B, classes] = {(T, B, C)}; got "
            f"{tuple(target_spikes.shape)}. Build it with na_desired_spikes(labels, classes, T)"
        )
    if target_spikes.device != out_psc.device:
        raise ValueError(
            f"na_cuda: `target_spikes` is on {target_spikes.device} but `out_psc` is on {out_psc.device}; "
            "move it with .to(out_psc.device)"
        )
    if not target_spikes.dtype.is_floating_point:
        # An integer target is refused rather than cast: it is most often labels or counts put in by mistake, and
        # the desired trains of this module are floating (0./1. spikes).
        raise TypeError(
            f"na_cuda: `target_spikes` must be a floating tensor of desired spikes (0./1.); got {target_spikes.dtype}."
            " Build it with na_desired_spikes(labels, classes, T, dtype=out_psc.dtype), or convert with .float()"
        )
    tau_s = _tau_s(tau_s)
    reduction = _reduction(reduction)
    if isinstance(target_filters, bool) or target_filters not in (1, 2):
        raise ValueError(
            f"na_cuda: `target_filters` must be 1 (eq. 5) or 2 (the released NA code); got {target_filters!r}"
        )
    target = target_spikes.detach().to(out_psc.dtype)
    for _ in range(target_filters):
        target = psc(target, tau_s)
    total = 0.5 * (target - out_psc).pow(2).sum()
    return total / B if reduction == "mean" else total


# ----------------------------------------------------------------------------------------------------------------
# Desired spike trains.
# ----------------------------------------------------------------------------------------------------------------
def na_desired_spikes(
    labels: torch.Tensor,
    num_classes: int,
    T: int,
    dtype: torch.dtype = torch.float32,
    device: Optional[torch.device | str] = None,
    *,
    check_labels: bool = True,
) -> torch.Tensor:
    r"""Desired output spikes of the released NA code (``main.py``, ``loss == "kernel"``; spec §7).

    ``d[t, b, c] = 1`` for every ``t`` if ``c == labels[b]``, else ``0``: an all-ones train for the label neuron
    (the released code builds ``torch.ones(n_steps)``; the paper uses T = 5), zeros elsewhere. Feed it to
    ``van_rossum``, which PSC-filters it.

    Args:
        labels: integer ``[B]`` in ``[0, num_classes)``.
        num_classes: number of output neurons, ``>= 1``.
        T: number of time steps, ``>= 1``.
        dtype: floating dtype of the result.
        device: device of the result (default: ``labels.device``).
        check_labels: check that ``labels`` lie in ``[0, classes)`` (one host sync on a GPU); False when they
            were checked already (see the module docstring).
    Returns:
        ``[T, B, num_classes]`` contiguous tensor of 0/1.
    """
    return tssl_desired_spikes(
        labels, num_classes, T, pattern=(1,), dtype=dtype, device=device, check_labels=check_labels
    )


def tssl_desired_spikes(
    labels: torch.Tensor,
    num_classes: int,
    T: int,
    pattern: Sequence[float] = (0, 1, 1, 1, 1),
    dtype: torch.dtype = torch.float32,
    device: Optional[torch.device | str] = None,
    *,
    check_labels: bool = True,
) -> torch.Tensor:
    r"""Desired output spikes of TSSL-BP (released ``main.py``, ``loss == "kernel"``; spec §7).

    ``d[t, b, c] = pattern[t % len(pattern)]`` if ``c == labels[b]``, else ``0``. The released code uses
    ``[0, 1, 1, 1, 1]`` repeated ``T / 5`` times for ``T < 10`` (and ``[0, 1] * 5`` repeated ``T / 10`` times
    for ``T >= 10``: pass ``pattern=(0, 1) * 5`` for that). ``T`` must be a multiple of ``len(pattern)``
    (the released code would silently truncate; this raises instead).

    Args:
        labels: integer ``[B]`` in ``[0, num_classes)``.
        num_classes: number of output neurons, ``>= 1``.
        T: number of time steps, a positive multiple of ``len(pattern)``.
        pattern: non-empty sequence of 0/1 values, one period of the label neuron's train.
        dtype: floating dtype of the result.
        device: device of the result (default: ``labels.device``).
        check_labels: check that ``labels`` lie in ``[0, classes)`` (one host sync on a GPU); False when they
            were checked already (see the module docstring).
    Returns:
        ``[T, B, num_classes]`` contiguous tensor of 0/1.
    """
    num_classes = _positive_int("num_classes", num_classes)
    T = _positive_int("T", T)
    dtype = _float_dtype(dtype)
    if isinstance(pattern, torch.Tensor):
        pattern = pattern.tolist()
    if isinstance(pattern, (str, bytes)) or not isinstance(pattern, Sequence) or len(pattern) == 0:
        raise TypeError(
            f"na_cuda: `pattern` must be a non-empty sequence of 0/1 values, e.g. (0, 1, 1, 1, 1); got {pattern!r}"
        )
    for v in pattern:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v not in (0, 1):
            raise ValueError(f"na_cuda: `pattern` must contain only 0 and 1 (spike or no spike); got {list(pattern)!r}")
    if T % len(pattern) != 0:
        raise ValueError(
            f"na_cuda: `T` = {T} must be a multiple of len(pattern) = {len(pattern)} (the pattern is repeated "
            f"T / len(pattern) times); pick T = {len(pattern) * max(1, T // len(pattern))} or a pattern that divides T"
        )
    _labels(labels, num_classes, None, None, check_labels)
    device = labels.device if device is None else torch.device(device)
    train = torch.tensor([float(v) for v in pattern], dtype=dtype, device=device).repeat(T // len(pattern))
    one_hot = _one_hot(labels, num_classes, dtype, device)
    return (train.view(T, 1, 1) * one_hot.unsqueeze(0)).contiguous()


# ----------------------------------------------------------------------------------------------------------------
# Spike-count loss (TSSL-BP loss_count) and the prediction rule.
# ----------------------------------------------------------------------------------------------------------------
def spike_count(
    outputs: torch.Tensor,
    labels: torch.Tensor,
    desired_count: float,
    undesired_count: float,
    tau_s: Optional[float] = None,
    reduction: str = "mean",
    *,
    check_labels: bool = True,
) -> torch.Tensor:
    r"""Spike-count loss of TSSL-BP (released ``functions/loss_f.py``: ``loss_count`` + ``SpikeLoss.spike_count``;
    targets from ``main.py``; spec §7).

    Released code, per sample ``b`` and output neuron ``c`` (``target = desired_count`` for the label neuron,
    ``undesired_count`` for the others)::

        count = sum_t outputs[t]            # outputs = the output layer's PSC train (TSSLBP.forward returns PSCs)
        delta = (count - target) / T
        delta = 0  where target != undesired_count and delta >= 0   # label neuron: only too FEW is penalised
        delta = 0  where target != desired_count   and delta <= 0   # other neurons: only too MANY is penalised
        loss  = 1/2 * sum_{b, c, t} delta^2  (delta repeated over the T steps)  = sum_{b,c} T/2 * delta^2

    and its backward passes ``dL/d delta`` straight to ``outputs[t]`` for every ``t``, i.e. ``grad = delta``.
    This function computes the same loss with ordinary autograd, whose gradient is the same
    (``d/d out[t] (T/2 delta^2) = T delta / T = delta``; zero inside the dead zones). If
    ``desired_count == undesired_count`` the released masks never apply, so the loss is two-sided for every neuron;
    that is reproduced here as well.

    What is counted: by default (``tau_s=None``) ``outputs`` is summed as given. The released code passes the
    output layer's PSCs (pass ``lif(..., output="psc")`` outputs to reproduce it), so its "count" is the sum of
    PSCs, not of spikes. Passing spikes with ``tau_s=None`` counts actual spikes (a variant). Passing spikes with
    ``tau_s`` first filters them with ``psc(outputs, tau_s)`` (differentiably), which gives the released quantity
    when the spikes come from a neuron with that ``tau_s``.

    Reduction: the released code sums over the batch (``reduction="sum"``); the default ``"mean"`` divides by B.

    Args:
        outputs: floating ``[T, B, classes]``.
        labels: integer ``[B]`` in ``[0, classes)``.
        desired_count, undesired_count: finite target counts (>= 0) for the label neuron and the others;
            ``desired_count >= undesired_count`` (else ValueError: the dead zones would reward the wrong neurons).
        tau_s: ``None`` (sum ``outputs`` as given) or the time constant (``>= 1``) to PSC-filter ``outputs`` first.
        reduction: ``"mean"`` (over the batch) or ``"sum"``.
        check_labels: check that ``labels`` lie in ``[0, classes)`` (one host sync on a GPU); False when they
            were checked already (see the module docstring).
    Returns:
        0-dim tensor.
    """
    T, B, C = _outputs(outputs, "outputs")
    desired_count = _real("desired_count", desired_count)
    undesired_count = _real("undesired_count", undesired_count)
    if desired_count < 0:
        raise ValueError(f"na_cuda: `desired_count` must be >= 0; got {desired_count}")
    if undesired_count < 0:
        raise ValueError(f"na_cuda: `undesired_count` must be >= 0; got {undesired_count}")
    if desired_count < undesired_count:
        # The dead zones would then reward the other neurons for out-firing the label neuron (argmax predicts wrong).
        raise ValueError(
            f"na_cuda: `desired_count` (the label neuron's target) must be >= `undesired_count`; got desired_count = "
            f"{desired_count}, undesired_count = {undesired_count}. Swap them"
        )
    if tau_s is not None:
        tau_s = _tau_s(tau_s)
    reduction = _reduction(reduction)
    _labels(labels, C, B, outputs.device, check_labels)

    x = outputs if tau_s is None else psc(outputs, tau_s)
    count = x.sum(dim=0)  # [B, C]
    is_label = _one_hot(labels, C, torch.bool, outputs.device)
    target = torch.full((B, C), undesired_count, dtype=outputs.dtype, device=outputs.device)
    target = target.masked_fill(is_label, desired_count)
    delta = (count - target) / T
    if desired_count != undesired_count:
        dead = torch.where(is_label, delta >= 0, delta <= 0)
        delta = torch.where(dead, torch.zeros_like(delta), delta)
    total = 0.5 * T * delta.pow(2).sum()
    return total / B if reduction == "mean" else total


def spike_count_predictions(outputs: torch.Tensor) -> torch.Tensor:
    r"""Predicted class per sample: ``argmax_c sum_t outputs[t, b, c]`` (the released NA / TSSL-BP ``main.py``
    rule, ``np.argmax(torch.sum(outputs, dim=time))``). Ties go to the lowest class index (as ``np.argmax`` and
    ``torch.argmax``).

    The released code sums the output layer's PSCs (its network output); pass spikes to count spikes instead.

    Args:
        outputs: ``[T, B, classes]``, floating, integer or bool (spikes or PSCs).
    Returns:
        int64 ``[B]`` on ``outputs.device``; not differentiable.
    """
    _outputs(outputs, "outputs", floating=False)
    if outputs.dtype.is_complex:
        raise TypeError(f"na_cuda: `outputs` must be real (spikes or PSCs); got {outputs.dtype}")
    x = outputs.detach()
    if x.dtype == torch.bool:
        x = x.to(torch.int64)
    return x.sum(dim=0).argmax(dim=1)


# ----------------------------------------------------------------------------------------------------------------
# TET and SDT (Deng et al., ICLR 2022).
# ----------------------------------------------------------------------------------------------------------------
def tet(
    outputs: torch.Tensor, labels: torch.Tensor, lamb: float = 0.0, phi: float = 1.0, *, check_labels: bool = True
) -> torch.Tensor:
    r"""Temporal efficient training loss (TET paper eq. 9 + the regulariser of eq. 12, combined as eq. 13;
    spec §7; released ``TET_loss``)::

        L = (1 - lamb) * 1/T sum_t CE(O[t], y)  +  lamb * 1/T sum_t MSE(O[t], phi)

    ``CE`` is the softmax cross-entropy averaged over the batch and ``MSE(O[t], phi)`` the mean of
    ``(O[t] - phi)^2`` over batch and classes, so the second term is the mean over all ``T*B*classes`` elements.
    The paper sets ``phi = V_th`` (the threshold) and ``lamb`` = 0.05 (CIFAR) or 0.001 (ImageNet, DVS-CIFAR10).

    Args:
        outputs: floating ``[T, B, classes]`` logits per time step (``O[t]``). NaN/inf in them is not checked (a
            host sync per call): the loss is then NaN or inf, as with torch's own losses, and the trainer stops on
            it with a message (``na_cuda.train``'s non-finite check).
        labels: integer ``[B]`` in ``[0, classes)``.
        lamb: weight of the MSE term, in ``[0, 1]``.
        phi: the constant the outputs are pulled to (finite).
        check_labels: check that ``labels`` lie in ``[0, classes)`` (one host sync on a GPU); False when they
            were checked already (see the module docstring).
    Returns:
        0-dim tensor.
    """
    T, B, C = _outputs(outputs, "outputs")
    lamb = _real("lamb", lamb)
    if not 0.0 <= lamb <= 1.0:
        raise ValueError(f"na_cuda: `lamb` must lie in [0, 1] (the weight of the MSE term); got {lamb}")
    phi = _real("phi", phi)
    _labels(labels, C, B, outputs.device, check_labels)
    y = labels.to(torch.int64)
    # mean over (t, b) of CE(O[t, b], y[b]) = 1/T sum_t CE_batchmean(O[t], y): all steps have the same B.
    # A term with weight 0 is skipped (not multiplied by 0), so an inf in it cannot turn the loss into nan.
    if lamb == 1.0:
        return (outputs - phi).pow(2).mean()
    ce = F.cross_entropy(outputs.reshape(T * B, C), y.repeat(T))
    if lamb == 0.0:
        return ce
    return (1.0 - lamb) * ce + lamb * (outputs - phi).pow(2).mean()


def sdt(outputs: torch.Tensor, labels: torch.Tensor, *, check_labels: bool = True) -> torch.Tensor:
    r"""Standard direct training loss (TET paper eq. 7): ``CE(1/T sum_t O[t], y)``, the cross-entropy of the
    time-averaged output, averaged over the batch.

    Args:
        outputs: floating ``[T, B, classes]``.
        labels: integer ``[B]`` in ``[0, classes)``.
        check_labels: check that ``labels`` lie in ``[0, classes)`` (one host sync on a GPU); False when they
            were checked already (see the module docstring).
    Returns:
        0-dim tensor.
    """
    T, B, C = _outputs(outputs, "outputs")
    _labels(labels, C, B, outputs.device, check_labels)
    return F.cross_entropy(outputs.mean(dim=0), labels.to(torch.int64))
