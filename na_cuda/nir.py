"""NIR import and export: any framework's spiking network in, an NA-trained one out (docs/nir.md).

NIR (the Neuromorphic Intermediate Representation, the ``nir`` package) describes a network as a graph of
continuous-time nodes. :func:`from_nir` builds a time-first ``[T, B, ...]`` module of ``na_cuda.nn.LIF`` neurons
and torch layers (folded over ``[T, B]`` as ``na_cuda.nn.SeqToANN`` does) that computes what the graph says under
forward Euler with step ``dt`` (the convention of snnTorch's and Norse's NIR code), so NA, STBP or TSSL-BP can train
it; :func:`to_nir` writes a model of our modules back as a ``nir.NIRGraph``. Forward Euler of the NIR neurons, with
``a = dt / tau``::

    LIF  tau dv/dt = (v_leak - v) + r I:  v[t] = (1 - a) v[t-1] + a v_leak + a r I[t]   (lam = 1 - dt/tau)
    LI   the same without threshold;  CubaLIF: I_syn[t] = (1 - dt/tau_syn) I_syn[t-1] + (dt/tau_syn) w_in S[t]
         feeds the LIF equation with tau_mem (the new current, as snnTorch and Norse do)
    IF / I  dv/dt = r I:  v[t] = v[t-1] + r I[t]   (the input a jump of v, as snnTorch and Norse read it)
    spike: v > v_threshold (strict), then v = v_reset; every neuron starts at rest (v_leak; IF at 0)

Every node or parameter without an exact equivalent is a ``ValueError`` naming the node, its type and the reason
(``strict=False``: a placeholder that raises when run, listed in ``model.report``). Needs ``pip install
na_cuda[nir]``.
"""

from __future__ import annotations

import json
import math
import pathlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn

try:
    import nir
except ImportError as e:  # pragma: no cover - exercised by tests/test_nir.py in a subprocess
    raise ImportError(
        "na_cuda.nir needs the `nir` package (the Neuromorphic Intermediate Representation): "
        "pip install na_cuda[nir]  (or: pip install nir==1.0.8)"
    ) from e

from .nn import LIF, SeqToANN

#: The neuron's own settings come from the graph, never from ``rule_options``.
_NEURON_KEYS = frozenset(
    {"tau_m", "tau_s", "threshold", "v_reset", "decay_input", "output", "strict_threshold", "reset_mechanism"}
)
_NEURON_KEYS |= {"learn_decay", "decay_shape", "decay"}
#: Metadata keys to_nir writes so that from_nir restores the exact parametrisation (checked against the arrays).
_META_LIF, _META_DECAY, _META_BIAS = "na_cuda_lif", "na_cuda_decay", "na_cuda_bias"


class NIRError(ValueError):
    """A NIR node (or file) na_cuda cannot reproduce exactly; the message names the node, its type and why."""


def _refuse(name: str, node: Any, why: str) -> NIRError:
    return NIRError(f"na_cuda.nir: node {name!r} ({type(node).__name__}): {why}")


# ---------------------------------------------------------------------------------------------------------------
# Small modules of the imported graph (all time first [T, B, ...]).


class Scale(nn.Module):
    """``x * scale`` elementwise (NIR ``Scale``, or a neuron's input scale ``dt r / tau`` when it is not 1)."""

    scale: torch.Tensor

    def __init__(self, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale)
        flat = scale.reshape(-1)
        # one number for all: multiply by the Python float (no broadcast read; the same product, as torch rounds
        # the scalar to the tensor's dtype)
        self.uniform: Optional[float] = float(flat[0]) if flat.numel() and bool((flat == flat[0]).all()) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.uniform is not None and x.dtype == self.scale.dtype:
            return x * self.uniform
        return x * self.scale


class Filter(nn.Module):
    """The linear filter ``y[t] = a y[t-1] + b x[t]`` from ``y[-1] = 0``, plus ``offset`` (NIR ``LI``, ``I``, the
    synaptic current of ``CubaLIF``/``CubaLI``): forward Euler of ``tau dy/dt = (v_leak - y) + r x`` in the
    coordinates ``y - v_leak`` (``a = 1 - dt/tau``, ``b = dt r / tau``, ``offset = v_leak``)."""

    a: torch.Tensor
    b: torch.Tensor
    offset: torch.Tensor

    def __init__(self, a: torch.Tensor, b: torch.Tensor, offset: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("a", a)
        self.register_buffer("b", b)
        self.register_buffer("offset", offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = x * self.b
        out, y = [], torch.zeros_like(xs[0])
        for t in range(xs.shape[0]):
            y = self.a * y + xs[t]
            out.append(y)
        return torch.stack(out) + self.offset


class Delay(nn.Module):
    """``y[t] = x[t - steps]`` (0 before the start): NIR ``Delay`` of ``steps * dt``."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = min(self.steps, x.shape[0])
        return torch.cat([torch.zeros_like(x[:k]), x[: x.shape[0] - k]])

    def extra_repr(self) -> str:
        return f"steps={self.steps}"


class Placeholder(nn.Module):
    """A node ``from_nir(strict=False)`` could not reproduce: raises when run, naming the node and the reason."""

    def __init__(self, name: str, nir_type: str, reason: str) -> None:
        super().__init__()
        self.name, self.nir_type, self.reason = name, nir_type, reason

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(
            f"na_cuda.nir: node {self.name!r} ({self.nir_type}) is a placeholder: {self.reason}. Replace "
            f"model.nodes[{_key(self.name)!r}] by a module that computes it"
        )

    def extra_repr(self) -> str:
        return f"{self.name!r} ({self.nir_type}): {self.reason}"


@dataclass
class NIRReport:
    """What :func:`from_nir` built: ``mapped`` as ``(node, NIR type, module)``, ``placeholders`` (``strict=False``)
    as ``(node, NIR type, reason)``. ``str(report)`` is a table."""

    mapped: list[tuple[str, str, str]] = field(default_factory=list)
    placeholders: list[tuple[str, str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"na_cuda.nir.from_nir: mapped {len(self.mapped)}, placeholders {len(self.placeholders)}"]
        lines += [f"  {name} ({typ}) -> {mod}" for name, typ, mod in self.mapped]
        lines += [f"  placeholder {name} ({typ}): {why}" for name, typ, why in self.placeholders]
        return "\n".join(lines)


def _key(name: str) -> str:
    """A node name as a ModuleDict key (no dots)."""
    return name.replace(".", "_") or "_"


class NIRModule(nn.Module):
    """A NIR graph as a time-first module: ``forward(*inputs)`` (one tensor ``[T, B, ...]`` per ``Input`` node, in
    the graph's order) returns the ``Output`` node's tensor (a tuple for several). Nodes run in topological order;
    a node's input is the sum of its predecessors' outputs (NIR's edges are identities that add up).
    ``nodes[name]`` is the module of a node (dots in names become ``_``), ``report`` what was mapped."""

    #: The output's size, set by the training CLI (``--model-nir``) from a run on zeros.
    num_classes: Optional[int] = None

    def __init__(
        self,
        modules: dict[str, nn.Module],
        order: list[str],
        preds: dict[str, list[str]],
        inputs: list[str],
        outputs: list[str],
        report: NIRReport,
    ) -> None:
        super().__init__()
        self.nodes = nn.ModuleDict({_key(n): m for n, m in modules.items()})
        self.names = {n: _key(n) for n in modules}
        self.order, self.preds, self.inputs, self.outputs = order, preds, inputs, outputs
        self.report = report
        # The run plan as keys (a chain of single-input nodes is a plain loop)
        self._plan = [(self.names[n], [self.names[p] for p in preds[n]]) for n in order if n not in inputs]

    def forward(self, *xs: torch.Tensor) -> Any:
        if len(xs) != len(self.inputs):
            raise TypeError(
                f"na_cuda.nir: this graph takes {len(self.inputs)} input(s) {self.inputs} ([T, B, ...] each); "
                f"got {len(xs)}"
            )
        vals = {self.names[n]: x for n, x in zip(self.inputs, xs)}
        for key, ps in self._plan:
            x = vals[ps[0]]
            for p in ps[1:]:
                x = x + vals[p]
            vals[key] = self.nodes[key](x)
        out = [vals[self.names[o]] for o in self.outputs]
        return out[0] if len(out) == 1 else tuple(out)

    def weight_layers(self) -> list[nn.Module]:
        """The conv and linear layers, in order (as ``na_cuda.models.SpikingNet``'s)."""
        return [m for m in self.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]

    @torch.no_grad()
    def clamp_weights_(self, bound: float = 4.0) -> None:
        """Clamp every conv/linear weight to ``[-bound, bound]`` in place (the training CLI's weight clip)."""
        for m in self.weight_layers():
            m.weight.clamp_(-bound, bound)  # type: ignore[operator]

    def describe(self) -> str:
        """What each node of the graph became (``report``)."""
        return str(self.report)


# ---------------------------------------------------------------------------------------------------------------
# Reading files


def read(path: Union[str, pathlib.Path]) -> Any:
    """``nir.read(path)`` without nir's type check (from_nir checks shapes itself, see docs/nir.md), and a clear
    ``NIRError`` for a file that is not a NIR graph this ``nir`` can read (never an h5py traceback)."""
    import h5py

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"na_cuda.nir.read: no file {str(path)!r}")
    try:
        with h5py.File(path, "r") as f:
            version = f["version"][()] if "version" in f else None
            has_node = "node" in f
    except OSError as e:
        raise NIRError(f"na_cuda.nir.read: {str(path)!r} is not an HDF5 file, so not a NIR graph ({e})") from None
    version = version.decode("utf8", "replace") if isinstance(version, bytes) else version
    written = f"written by nir {version}" if version is not None else "without a nir version"
    if not has_node:
        raise NIRError(f"na_cuda.nir.read: {str(path)!r} ({written}) has no 'node' group: not a NIR graph file")
    try:
        return nir.read(path, type_check=False)
    except Exception as e:  # noqa: BLE001 - any failure inside nir/h5py becomes one clear line
        hint = (
            f"; this is nir {nir.__version__}: read it with the nir version that wrote it and write it again"
            if version is not None and str(version) != nir.__version__
            else ""
        )
        raise NIRError(
            f"na_cuda.nir.read: {str(path)!r} ({written}) is not a NIR graph nir {nir.__version__} can read: "
            f"{type(e).__name__}: {e}{hint}"
        ) from None


# ---------------------------------------------------------------------------------------------------------------
# Import


def _arr(x: Any) -> np.ndarray:
    """A node attribute as a numpy array (exporters store torch tensors, numpy arrays or Python numbers)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _ints(x: Any, n: int) -> Any:
    v = [int(i) for i in np.atleast_1d(_arr(x)).reshape(-1)]
    return tuple(v * n) if len(v) == 1 else tuple(v)


def _uniform(name: str, node: Any, what: str, values: np.ndarray, why: str) -> float:
    flat = values.reshape(-1)
    if flat.size == 0 or not (flat == flat[0]).all():
        raise _refuse(name, node, f"per-neuron {what} (values {np.unique(flat)[:4]}...): {why}")
    return float(flat[0])


def _unit_scale(r: np.ndarray, tau: np.ndarray, dt: float) -> np.ndarray:
    """The input scale ``dt r / tau``, exactly 1 where ``r`` is ``tau/dt`` correctly rounded in the arrays' dtype
    (what snnTorch's exporter writes for an unscaled input: the file cannot hold the scale more exactly)."""
    dtype = np.result_type(r.dtype, tau.dtype, np.float32)
    unit = r.astype(dtype) == (tau.astype(np.float64) / dt).astype(dtype)
    scale = dt * r.astype(np.float64) / tau.astype(np.float64)
    return np.where(unit, 1.0, scale)


class _Builder:
    """from_nir's state: the graph, the options for every LIF, the dtype of the result."""

    def __init__(self, graph: Any, method: str, dt: float, strict: bool, rule_options: dict[str, Any]) -> None:
        self.graph, self.method, self.dt, self.strict, self.rule_options = graph, method, dt, strict, rule_options
        self.report = NIRReport()
        self.dtype = self._weights_dtype()

    def _weights_dtype(self) -> torch.dtype:
        """float64 when the graph's weights are float64 (e.g. an exported float64 model), else float32."""
        for node in self.graph.nodes.values():
            w = getattr(node, "weight", None)
            if w is not None and _arr(w).dtype == np.float64:
                return torch.float64
        return torch.float32

    def tensor(self, a: Any) -> torch.Tensor:
        return torch.as_tensor(np.array(_arr(a), dtype=np.float64)).to(self.dtype)

    def lif(self, name: str, node: Any, **kwargs: Any) -> LIF:
        try:
            return LIF(method=self.method, **kwargs, **self.rule_options)
        except (TypeError, ValueError) as e:
            raise _refuse(name, node, f"{e}") from None

    # -- neurons -------------------------------------------------------------------------------------------------
    def neuron(self, name: str, node: Any, tau: Optional[np.ndarray], r: np.ndarray, li: Any) -> nn.Module:
        """A LIF/IF node (``tau=None``: IF) with resistance ``r``; ``li``: the LI fused into it as its PSC."""
        psc = None if li is None else _fusable_li(li, self.dt)
        thr = _uniform(name, node, "v_threshold", _arr(node.v_threshold), "na_cuda's threshold is one float")
        vr_arr = _arr(node.v_reset) if node.v_reset is not None else np.zeros(1)
        vr = _uniform(name, node, "v_reset", vr_arr, "na_cuda's v_reset is one float")
        kwargs: dict[str, Any] = dict(threshold=thr, v_reset=vr, strict_threshold=True)
        if psc is not None:
            kwargs.update(output="psc", tau_s=psc)
        else:
            kwargs["output"] = "spike"
        tau_arr = tau
        if tau is None:
            if vr != 0.0:
                raise _refuse(name, node, "v_reset != 0: NIR does not define an IF neuron's initial potential")
            kwargs["tau_m"] = math.inf
            lam = np.ones(1)
        else:
            v_leak = _arr(node.v_leak)
            if not (v_leak == vr).all():
                raise _refuse(
                    name,
                    node,
                    f"v_leak {np.unique(v_leak)[:4]} != v_reset {vr}: na_cuda's LIF leaks toward its reset potential "
                    "(and starts there)",
                )
            if not np.isfinite(tau).all() or (tau < self.dt).any():
                raise _refuse(
                    name,
                    node,
                    f"tau must be finite and >= dt = {self.dt} (the leak 1 - dt/tau in [0, 1)); got "
                    f"{tau.min()}..{tau.max()}: pass the dt the graph was made for",
                )
            tau_arr, tau = tau, tau.astype(np.float64)
            lam = 1.0 - self.dt / tau
            if (lam == lam.reshape(-1)[0]).all():
                kwargs["tau_m"] = float(tau.reshape(-1)[0]) / self.dt
            else:
                kwargs["decay"] = self.tensor(lam)
        exact = self.exact(node, li, kwargs)
        if exact is not None:
            return exact
        # the input scale: dt r / tau for a LIF (1 - lam = dt/tau for r = 1: decay_input), r for an IF
        scale = r.astype(np.float64) if tau_arr is None else _unit_scale(r, tau_arr, self.dt)
        pre: list[nn.Module] = []
        if tau is not None and (r == 1).all() and not (scale == 1.0).all():
            kwargs["decay_input"] = True
        elif not (scale == 1.0).all():
            pre.append(Scale(self.tensor(scale)))
        lif = self.lif(name, node, **kwargs)
        return nn.Sequential(*pre, lif) if pre else lif

    def exact(self, node: Any, li: Any, kwargs: dict[str, Any]) -> Optional[LIF]:
        """The LIF to_nir wrote this node (and its PSC ``li``) from, when its metadata reproduces their arrays bit for
        bit; None otherwise (no metadata, or stale: the arrays decide)."""
        meta = getattr(node, "metadata", None) or {}
        if _META_LIF not in meta:
            return None
        raw = meta[_META_LIF]
        try:
            spec = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
            decay = meta.get(_META_DECAY)
            shape = tuple(spec.pop("decay_shape", ()))
            decay_t = None if decay is None else torch.as_tensor(np.array(decay)).to(self.dtype).reshape(shape)
            lif = LIF(method=self.method, decay=decay_t, **spec, **self.rule_options)
            want = _lif_nodes(lif, tuple(np.shape(_arr(node.v_threshold))), _np_dtype(self.dtype), self.dt)
        except Exception:  # noqa: BLE001 - stale or foreign metadata: the arrays decide
            return None
        have = [node] if li is None else [node, li]
        if len(want) != len(have) or spec.get("output") != kwargs.get("output"):
            return None
        for w, h in zip(want, have):
            if type(w) is not type(h) or not all(
                np.array_equal(_arr(getattr(w, k)), _arr(getattr(h, k))) for k in _fields(w)
            ):
                return None
        return lif

    # -- one node ------------------------------------------------------------------------------------------------
    def build(self, name: str, node: Any, li: Any) -> nn.Module:
        """The module of node ``name``; ``li``: the LI node fused into this LIF as its PSC, or None."""
        dt = self.dt
        if isinstance(node, (nir.Input, nir.Output)) or type(node).__name__ == "Identity":
            return nn.Identity()
        if isinstance(node, (nir.Affine, nir.Linear)):
            w = _arr(node.weight)
            if w.ndim != 2:
                raise _refuse(name, node, f"weight of shape {w.shape}: only a 2-d [out, in] weight maps to nn.Linear")
            bias = getattr(node, "bias", None)
            lin = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None, dtype=self.dtype)
            with torch.no_grad():
                lin.weight.copy_(self.tensor(w))
                if bias is not None:
                    lin.bias.copy_(self.tensor(np.broadcast_to(_arr(bias), (w.shape[0],))))
            return SeqToANN(lin)
        if isinstance(node, (nir.Conv1d, nir.Conv2d)):
            return SeqToANN(self.conv(name, node))
        if isinstance(node, nir.Scale):
            return Scale(self.tensor(node.scale))
        if isinstance(node, nir.Flatten):
            s, e = int(node.start_dim), int(node.end_dim)
            return SeqToANN(nn.Flatten(s + 1 if s >= 0 else s, e + 1 if e >= 0 else e))
        if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
            k, st, p = _ints(node.kernel_size, 2), _ints(node.stride, 2), _ints(node.padding, 2)
            if isinstance(node, nir.AvgPool2d):
                if any(p):
                    raise _refuse(
                        name, node, f"padding {p}: NIR does not say whether padded zeros count in the average"
                    )
                return SeqToANN(nn.AvgPool2d(k, st))
            return SeqToANN(nn.AvgPool2d(k, st, p, divisor_override=1))  # a sum, exactly
        if isinstance(node, nir.LIF):
            return self.neuron(name, node, _arr(node.tau), _arr(node.r), li)
        if isinstance(node, nir.IF):
            return self.neuron(name, node, None, _arr(node.r), li)
        if isinstance(node, nir.CubaLIF):
            syn = self.filter(name, node, _arr(node.tau_syn), _arr(node.w_in), np.zeros(1))
            return nn.Sequential(syn, self.neuron(name, node, _arr(node.tau_mem), _arr(node.r), li))
        if isinstance(node, nir.LI):
            return self.filter(name, node, _arr(node.tau), _arr(node.r), _arr(node.v_leak))
        if isinstance(node, nir.CubaLI):
            syn = self.filter(name, node, _arr(node.tau_syn), _arr(node.w_in), np.zeros(1))
            return nn.Sequential(syn, self.filter(name, node, _arr(node.tau_mem), _arr(node.r), _arr(node.v_leak)))
        if isinstance(node, nir.I):
            r = _arr(node.r).astype(np.float64)
            return Filter(self.tensor(np.ones(1)), self.tensor(r), self.tensor(np.zeros(1)))
        if isinstance(node, nir.Delay):
            steps = _arr(node.delay).astype(np.float64) / dt
            n = _uniform(name, node, "delay", steps, "na_cuda delays every neuron of a node by one number of steps")
            if n != round(n) or n < 0:
                raise _refuse(name, node, f"a delay of {n} steps of dt = {dt}: only whole steps are exact")
            return Delay(int(round(n)))
        if isinstance(node, nir.Threshold):
            thr = _uniform(name, node, "threshold", _arr(node.threshold), "na_cuda's threshold is one float")
            if thr <= 0.0:
                raise _refuse(name, node, f"threshold {thr} <= 0: the memoryless LIF it maps to needs threshold > 0")
            # A LIF without memory (tau_m = 1: lam = 0) fires on c > threshold: the Heaviside, with a rule's gradient
            return self.lif(name, node, tau_m=1.0, threshold=thr, strict_threshold=True, output="spike")
        if isinstance(node, nir.NIRGraph):
            raise _refuse(name, node, "a nested graph (from_nir inlines them; this one has no Input/Output nodes)")
        raise _refuse(name, node, "no na_cuda equivalent for this node type")

    def filter(self, name: str, node: Any, tau: np.ndarray, r: np.ndarray, v_leak: np.ndarray) -> Filter:
        tau64 = tau.astype(np.float64)
        if not np.isfinite(tau64).all() or (tau64 < self.dt).any():
            raise _refuse(name, node, f"a time constant must be finite and >= dt = {self.dt}")
        a = 1.0 - self.dt / tau64
        return Filter(self.tensor(a), self.tensor(_unit_scale(r, tau, self.dt)), self.tensor(v_leak))

    def conv(self, name: str, node: Any) -> nn.Module:
        w = _arr(node.weight)
        nd = 1 if isinstance(node, nir.Conv1d) else 2
        pad = node.padding
        pad = pad.decode() if isinstance(pad, bytes) else pad
        padding: Any = pad if isinstance(pad, str) else _ints(pad, nd)
        cls = nn.Conv1d if nd == 1 else nn.Conv2d
        bias = node.bias
        meta_bias = (node.metadata or {}).get(_META_BIAS)
        keep_bias = bias is not None and not (meta_bias is not None and not meta_bias and (_arr(bias) == 0).all())
        conv = cls(
            w.shape[1] * int(node.groups),
            w.shape[0],
            w.shape[2:],
            stride=_ints(node.stride, nd),
            padding=padding,
            dilation=_ints(node.dilation, nd),
            groups=int(node.groups),
            bias=keep_bias,
            dtype=self.dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(self.tensor(w))
            if conv.bias is not None:
                conv.bias.copy_(self.tensor(bias))
        return conv


def _fields(node: Any) -> list[str]:
    return [k for k in ("tau", "r", "v_leak", "v_threshold", "v_reset") if hasattr(node, k)]


def _np_dtype(dtype: torch.dtype) -> Any:
    return np.float64 if dtype == torch.float64 else np.float32


def _inline(graph: Any, prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Nodes and edges with nested graphs inlined (their Input/Output nodes become identities)."""
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    inner_in: dict[str, list[str]] = {}
    inner_out: dict[str, list[str]] = {}
    for name, node in graph.nodes.items():
        full = prefix + name
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = _inline(node, full + ".")
            ins = [full + "." + n for n, v in node.nodes.items() if isinstance(v, nir.Input)]
            outs = [full + "." + n for n, v in node.nodes.items() if isinstance(v, nir.Output)]
            if not ins or not outs:
                nodes[full] = node  # refused in build()
                continue
            nodes.update(sub_nodes)
            edges += sub_edges
            inner_in[full], inner_out[full] = ins, outs
        else:
            nodes[full] = node
    for a, b in graph.edges:
        srcs = inner_out.get(prefix + a, [prefix + a])
        dsts = inner_in.get(prefix + b, [prefix + b])
        edges += [(s, d) for s in srcs for d in dsts]
    return nodes, edges


def _toposort(nodes: dict[str, Any], edges: list[tuple[str, str]]) -> tuple[list[str], dict[str, list[str]]]:
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    succs: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        for end in (a, b):
            if end not in nodes:
                raise NIRError(f"na_cuda.nir: edge ({a!r}, {b!r}) names {end!r}, which is not a node of the graph")
        if a in preds[b]:
            continue  # a duplicate edge
        preds[b].append(a)
        succs[a].append(b)
    indeg = {n: len(p) for n, p in preds.items()}
    ready = [n for n in nodes if indeg[n] == 0]
    order: list[str] = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for s in succs[n]:
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    if len(order) != len(nodes):
        cyc = [n for n in nodes if indeg[n] > 0]
        node = nodes[cyc[0]]
        raise NIRError(
            f"na_cuda.nir: node {cyc[0]!r} ({type(node).__name__}) is on a recurrent edge (a cycle through "
            f"{cyc}): na_cuda's neurons are feed-forward in time (every LIF runs its whole window in one call), so "
            "a recurrent connection cannot be reproduced"
        )
    return order, preds


def _fusable_li(node: Any, dt: float) -> Optional[float]:
    """tau_s when an LI node is the PSC filter of na_cuda's LIF: ``a[t] = (1 - 1/tau_s) a + s[t]/tau_s``."""
    if not isinstance(node, nir.LI):
        return None
    tau, r, v_leak = _arr(node.tau).astype(np.float64), _arr(node.r), _arr(node.v_leak)
    if not ((tau == tau.reshape(-1)[0]).all() and (r == 1).all() and (v_leak == 0).all()):
        return None
    tau_s = float(tau.reshape(-1)[0]) / dt
    return tau_s if tau_s >= 1.0 and math.isfinite(tau_s) else None


def from_nir(
    graph: Any, *, method: str = "na", dt: float = 1e-4, strict: bool = True, **rule_options: Any
) -> NIRModule:
    """The ``nn.Module`` (an :class:`NIRModule`) that runs the NIR graph ``graph`` (a ``nir.NIRGraph`` or the path of
    a ``.nir`` file) time first, ``[T, B, ...] -> [T, B, ...]``, with forward Euler of step ``dt`` (module
    docstring; docs/nir.md), its neurons ``na_cuda.nn.LIF(method=method, **rule_options)``.

    Mapped: ``Input``, ``Output``, ``Affine``/``Linear`` (``nn.Linear``), ``Conv1d``/``Conv2d``, ``Flatten``,
    ``SumPool2d``, ``AvgPool2d`` (folded over ``[T, B]``), ``Scale``; ``LIF`` and ``IF`` (``nn.LIF``,
    ``output="spike"``, ``strict_threshold=True``; an ``LI`` that is the only consumer of a LIF, with ``r = 1`` and
    ``v_leak = 0``, is fused into it as its PSC, ``output="psc"``), ``CubaLIF`` (a synaptic filter and a LIF),
    ``LI``, ``CubaLI``, ``I`` (linear filters), ``Delay`` (whole steps), ``Threshold`` (a LIF without memory),
    nested graphs (inlined). Graphs that are not chains run in topological order; a node with several inputs gets
    their sum. Refused (``NIRError`` naming the node, its type and the reason; ``strict=False``: a
    :class:`Placeholder` that raises when run, listed in ``model.report`` and warned): recurrent edges, per-neuron
    thresholds or resets, ``v_leak != v_reset``, ``tau < dt``, fractional delays, other node types.

    ``rule_options``: the rule's keywords of ``na_cuda.nn.LIF`` (``surrogate``, ``surrogate_alpha``,
    ``detach_reset``, ``dist_power``, ``clip``, ``na_window``, ``first_order``, ``backend``, ...); the neuron's own
    settings come from the graph. The module's dtype is float64 if the graph's weights are, else float32.
    """
    if isinstance(graph, (str, pathlib.Path)):
        graph = read(graph)
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"na_cuda.nir.from_nir: `graph` must be a nir.NIRGraph or a path; got {type(graph).__name__}")
    bad = sorted(set(rule_options) & _NEURON_KEYS)
    if bad:
        raise TypeError(
            f"na_cuda.nir.from_nir: {bad} are the neuron's own settings, which come from the graph; pass only the "
            "rule's options (surrogate, dist_power, clip, backend, ...)"
        )
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not 0.0 < dt < math.inf:
        raise ValueError(f"na_cuda.nir.from_nir: `dt` must be a positive float (the Euler step, s); got {dt!r}")
    LIF(method=method, **rule_options)  # a bad rule option is the caller's error (TypeError/ValueError naming it)
    nodes, edges = _inline(graph)
    order, preds = _toposort(nodes, edges)
    succs: dict[str, list[str]] = {n: [] for n in nodes}
    for n, ps in preds.items():
        for p in ps:
            succs[p].append(n)
    b = _Builder(graph, method, float(dt), strict, rule_options)
    modules: dict[str, nn.Module] = {}
    fused: dict[str, str] = {}  # LI node -> the LIF it is the PSC of
    for name in order:
        node = nodes[name]
        li = None
        if isinstance(node, (nir.LIF, nir.IF, nir.CubaLIF)) and len(succs[name]) == 1:
            nxt = succs[name][0]
            if len(preds[nxt]) == 1 and _fusable_li(nodes[nxt], dt) is not None:
                li = nodes[nxt]
        try:
            mod: nn.Module = nn.Identity() if name in fused else b.build(name, node, li)
            if li is not None:
                fused[succs[name][0]] = name
        except NIRError as e:
            if strict:
                raise
            mod = Placeholder(name, type(node).__name__, str(e).split("): ", 1)[-1])
            b.report.placeholders.append((name, type(node).__name__, mod.reason))
        else:
            what = "fused into the PSC of " + fused[name] if name in fused else repr(mod).replace("\n", " ")
            b.report.mapped.append((name, type(node).__name__, what))
        modules[name] = mod
    if b.report.placeholders:
        warnings.warn(str(b.report), UserWarning, stacklevel=2)
    inputs = [n for n in order if isinstance(nodes[n], nir.Input) and not preds[n]]
    outputs = [n for n in nodes if isinstance(nodes[n], nir.Output) and not succs[n]]
    if not inputs or not outputs:
        raise NIRError("na_cuda.nir.from_nir: the graph needs at least one Input and one Output node")
    model = NIRModule(modules, order, preds, inputs, outputs, b.report)
    model.to(b.dtype)
    _check_shapes(model, nodes)
    return model


def _check_shapes(model: NIRModule, nodes: dict[str, Any]) -> None:
    """Run the graph once on zeros of the Input nodes' shapes (T = B = 1): every node must accept what its
    neighbours give it (this is where graphs with scalar neuron parameters, which nir's own type check rejects,
    get their shapes from the neighbours) and every neuron's parameters must broadcast to its input."""
    shapes = []
    for n in model.inputs:
        t = nodes[n].input_type.get("input") if isinstance(nodes[n].input_type, dict) else None
        if t is None or any(int(s) <= 0 for s in np.atleast_1d(t)):
            return  # no shape to check with
        shapes.append(tuple(int(s) for s in np.atleast_1d(t)))
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    if any(isinstance(m, Placeholder) for m in model.modules()):
        return
    with torch.no_grad():
        vals = {model.names[n]: torch.zeros(1, 1, *s, dtype=dtype) for n, s in zip(model.inputs, shapes)}
        for name in model.order:
            if name in model.inputs:
                continue
            key = model.names[name]
            ps = [model.names[p] for p in model.preds[name]]
            try:
                x = vals[ps[0]]
                for p in ps[1:]:
                    x = x + vals[p]
                vals[key] = model.nodes[key](x)
            except (RuntimeError, ValueError) as e:
                ins = [tuple(vals[p].shape[2:]) for p in ps]
                raise _refuse(name, nodes[name], f"does not fit its input(s) of shape {ins}: {e}") from None


# ---------------------------------------------------------------------------------------------------------------
# Export


def _lif_nodes(lif: LIF, shape: tuple[int, ...], dtype: Any, dt: float) -> list[Any]:
    """The NIR nodes of one ``nn.LIF`` of neuron shape ``shape``: ``LIF`` (or ``IF``), then an ``LI`` for a PSC."""
    p = lif.neuron
    where = f"na_cuda.nir.to_nir: {type(lif).__name__}({lif.extra_repr()})"
    if p.v_reset is None or p.reset_mechanism is not None:
        raise NIRError(
            f"{where}: a soft or snnTorch-style reset (v_reset=None / reset_mechanism): NIR's neurons reset to v_reset"
        )
    if p.output == "membrane":
        raise NIRError(f"{where}: output='membrane': NIR's LIF outputs spikes")
    decay = lif.decay_values()
    lam = (
        np.full(shape, p.lam, dtype=np.float64)
        if decay is None
        else np.broadcast_to(decay.detach().cpu().double().numpy(), shape).astype(np.float64)
    )
    thr = float(p.threshold)
    thr_nir = thr if p.strict_threshold else float(np.nextafter(np.asarray(thr, dtype), dtype(-np.inf)))
    full = lambda v: np.full(shape, v, dtype=dtype)
    out: list[Any]
    if (lam == 1.0).all():
        if p.v_reset != 0.0:
            raise NIRError(f"{where}: an IF neuron with v_reset != 0: NIR does not define its initial potential")
        out = [nir.IF(r=full(1.0), v_threshold=full(thr_nir), v_reset=full(0.0))]
    else:
        if (lam == 1.0).any():
            raise NIRError(f"{where}: some neurons without leak (lam = 1) among leaky ones: NIR's LIF needs tau < inf")
        tau = dt / (1.0 - lam)
        r = np.ones_like(tau) if p.decay_input else tau / dt
        out = [
            nir.LIF(
                tau=tau.astype(dtype),
                r=r.astype(dtype),
                v_leak=full(p.v_reset),
                v_threshold=full(thr_nir),
                v_reset=full(p.v_reset),
            )
        ]
    if p.output == "psc":
        out.append(nir.LI(tau=full(p.tau_s * dt), r=full(1.0), v_leak=full(0.0)))
    spec = dict(
        tau_m=p.tau_m,
        tau_s=p.tau_s,
        threshold=thr,
        v_reset=p.v_reset,
        decay_input=p.decay_input,
        strict_threshold=p.strict_threshold,
        output=p.output,
    )
    out[0].metadata = {_META_LIF: json.dumps(spec)}
    if decay is not None:  # 1-d: nir.write compresses every array, which a scalar HDF5 dataset refuses
        spec["decay_shape"] = list(decay.shape)
        out[0].metadata = {_META_LIF: json.dumps(spec), _META_DECAY: decay.detach().cpu().numpy().reshape(-1)}
    return out


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _layer_nodes(m: nn.Module, folded: int, where: str, shape: tuple[int, ...], dtype: Any) -> list[Any]:
    """The NIR nodes of a torch layer; ``folded``: how many leading dims ([T*B] = 1, [T, B] = 2) precede NIR's,
    ``shape``: its input's NIR shape."""
    from . import models

    if isinstance(m, nn.Linear):
        if m.bias is None:
            return [nir.Linear(weight=_np(m.weight))]
        return [nir.Affine(weight=_np(m.weight), bias=_np(m.bias))]
    if isinstance(m, (nn.Conv1d, nn.Conv2d)):
        if m.padding_mode != "zeros":
            raise NIRError(f"na_cuda.nir.to_nir: {where} ({type(m).__name__}): padding_mode={m.padding_mode!r}")
        bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_channels, dtype=_np(m.weight).dtype)
        cls = nir.Conv1d if isinstance(m, nn.Conv1d) else nir.Conv2d
        node = cls(
            input_shape=None,
            weight=_np(m.weight),
            stride=m.stride if isinstance(m, nn.Conv2d) else m.stride[0],
            padding=m.padding if isinstance(m.padding, str) or isinstance(m, nn.Conv2d) else m.padding[0],
            dilation=m.dilation if isinstance(m, nn.Conv2d) else m.dilation[0],
            groups=m.groups,
            bias=bias,
        )
        if m.bias is None:
            node.metadata = {_META_BIAS: 0}
        return [node]
    if isinstance(m, nn.Flatten):
        s, e = m.start_dim, m.end_dim
        if (s >= 0 and s < folded) or (e >= 0 and e < folded):
            raise NIRError(f"na_cuda.nir.to_nir: {where} (Flatten) flattens the time or batch dimension")
        return [
            nir.Flatten(input_type=None, start_dim=s - folded if s >= 0 else s, end_dim=e - folded if e >= 0 else e)
        ]
    if isinstance(m, nn.AvgPool2d):
        k, st, p = (np.array(_ints(v, 2)) for v in (m.kernel_size, m.stride, m.padding))
        if m.divisor_override == 1:
            return [nir.SumPool2d(kernel_size=k, stride=st, padding=p)]
        if m.divisor_override is not None or m.ceil_mode or p.any():
            raise NIRError(
                f"na_cuda.nir.to_nir: {where} (AvgPool2d): padding, ceil_mode or divisor_override has no NIR form"
            )
        return [nir.AvgPool2d(kernel_size=k, stride=st, padding=p)]
    if isinstance(m, Scale):
        return [nir.Scale(scale=_np(m.scale))]
    if isinstance(m, models.SumPool2d):  # the released code's pooling: scale * the sum over a window
        k = np.array([m.kernel, m.kernel])
        pooled = _out_shape(m, shape, folded, dtype)
        return [
            nir.SumPool2d(kernel_size=k, stride=k, padding=np.zeros(2, dtype=int)),
            nir.Scale(scale=np.full(pooled, m.scale, dtype=dtype)),
        ]
    if isinstance(m, (nn.Identity, nn.Dropout, models.TimeDropout)):
        return []  # identities at inference (a Dropout is one in eval mode, which is what NIR describes)
    raise NIRError(f"na_cuda.nir.to_nir: {where} ({type(m).__module__}.{type(m).__name__}) has no NIR equivalent")


def _filter_nodes(m: Filter, shape: tuple[int, ...], dtype: Any, dt: float) -> list[Any]:
    a = np.broadcast_to(_np(m.a).astype(np.float64), shape)
    b = np.broadcast_to(_np(m.b).astype(np.float64), shape)
    off = np.broadcast_to(_np(m.offset).astype(np.float64), shape)
    if (a == 1.0).all() and (off == 0).all():
        return [nir.I(r=b.astype(dtype))]
    tau = dt / (1.0 - a)
    return [nir.LI(tau=tau.astype(dtype), r=(b * tau / dt).astype(dtype), v_leak=off.astype(dtype))]


def _chain(model: nn.Module, path: str, folded: int) -> Iterator[tuple[str, nn.Module, int]]:
    """The leaf modules of a chain model in call order, with their path and how many leading dims are folded."""
    if isinstance(model, SeqToANN):
        yield from _chain(model.module, path + ".module" if path else "module", 1)
        return
    from .models import SpikingNet

    folds = type(model).__name__ == "SeqToANNContainer"  # spikingjelly's [T, B] folding Sequential
    plain = type(model).forward is nn.Sequential.forward or isinstance(model, SpikingNet)  # (it checks its input)
    if isinstance(model, nn.Sequential) and (folds or plain):
        for name, child in model.named_children():
            yield from _chain(child, f"{path}.{name}" if path else name, 1 if folds else folded)
        return
    # spikingjelly's multi-step layers (layer.Linear, layer.Conv2d, ...) fold [T, B] themselves
    multi_step = getattr(model, "step_mode", None) == "m" and not isinstance(model, LIF)
    yield path or type(model).__name__, model, 1 if multi_step else folded


def _module_nodes(m: nn.Module, path: str, folded: int, shape: tuple[int, ...], dtype: Any, dt: float) -> list[Any]:
    if isinstance(m, LIF):
        return _lif_nodes(m, shape, dtype, dt)
    if isinstance(m, Filter):
        return _filter_nodes(m, shape, dtype, dt)
    if isinstance(m, Delay):
        return [nir.Delay(delay=np.full(shape, m.steps * dt, dtype=dtype))]
    if isinstance(m, Placeholder):
        raise NIRError(f"na_cuda.nir.to_nir: {path} is a placeholder for {m.name!r} ({m.nir_type}): {m.reason}")
    if isinstance(m, (nn.Sequential, SeqToANN)):
        nodes: list[Any] = []
        for p, leaf, f in _chain(m, path, folded):
            nodes += _module_nodes(leaf, p, f, shape, dtype, dt)
            shape = _out_shape(leaf, shape, f, dtype)
        return nodes
    return _layer_nodes(m, folded, path, shape, dtype)


def _device(m: nn.Module) -> torch.device:
    """Where ``m``'s parameters or buffers live (the CPU without any)."""
    t = next(iter(list(m.parameters()) + list(m.buffers())), None)
    return t.device if t is not None else torch.device("cpu")


def _out_shape(m: nn.Module, shape: tuple[int, ...], folded: int, dtype: Any) -> tuple[int, ...]:
    """The NIR shape of ``m``'s output for an input of NIR shape ``shape`` (run once on zeros)."""
    if isinstance(m, (LIF, Filter, Delay, Scale)):
        return shape
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    with torch.no_grad():
        y = m(torch.zeros((1,) * folded + shape, dtype=tdtype, device=_device(m)))
    return tuple(y.shape[folded:])


def _graph_from_chain(items: list[tuple[str, list[Any]]], in_shape: tuple[int, ...]) -> Any:
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(in_shape)})}
    edges, last, n = [], "input", 0
    for _path, chunk in items:
        for node in chunk:
            key = str(n)
            n += 1
            nodes[key] = node
            edges.append((last, key))
            last = key
    return nodes, edges, last


def to_nir(model: nn.Module, sample_input: Optional[torch.Tensor] = None, *, dt: float = 1e-4) -> Any:
    """The ``nir.NIRGraph`` of ``model``: a chain (``nn.Sequential``, ``na_cuda.nn.SeqToANN``, a ``convert``-ed
    spikingjelly model) of ``na_cuda.nn.LIF`` and torch layers (``Linear``, ``Conv1d``/``Conv2d``, ``Flatten``,
    ``AvgPool2d``; ``divisor_override=1`` is a ``SumPool2d``; ``Dropout``/``Identity`` are dropped), or a module
    from :func:`from_nir` (any graph). Learnable decays are exported at their current values; a PSC output is the
    LIF followed by an ``LI`` (``tau = tau_s dt``), a non-strict threshold (fire on ``u >= threshold``) the largest
    float below it in the model's dtype (the same spikes under NIR's ``v > v_threshold``). The exact na_cuda
    settings travel in the nodes' metadata, so ``from_nir(to_nir(model))`` is the same model bit for bit.

    ``sample_input``: a ``[T, B, ...]`` input, for the neuron shapes (needed unless the model starts with a
    ``Linear``). Raises ``NIRError`` naming the module that has no NIR equivalent (soft/snnTorch-style resets,
    membrane outputs, custom forwards, other layers)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"na_cuda.nir.to_nir: `model` must be an nn.Module; got {type(model).__name__}")
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not 0.0 < dt < math.inf:
        raise ValueError(f"na_cuda.nir.to_nir: `dt` must be a positive float (the Euler step, s); got {dt!r}")
    params = list(model.parameters()) + list(model.buffers())
    fdtype = next((p.dtype for p in params if p.dtype.is_floating_point), torch.get_default_dtype())
    dtype = np.float64 if fdtype == torch.float64 else np.float32
    if isinstance(model, NIRModule):
        return _graph_of_module(model, sample_input, dtype, float(dt))
    leaves = list(_chain(model, "", 2))
    if sample_input is not None:
        if not isinstance(sample_input, torch.Tensor) or sample_input.dim() < 3:
            raise ValueError("na_cuda.nir.to_nir: `sample_input` must be a [T, B, ...] tensor (time first)")
        shape = tuple(sample_input.shape[2:])
    else:
        first = next((m for _p, m, _f in leaves if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))), None)
        if not isinstance(first, nn.Linear):
            raise ValueError(
                "na_cuda.nir.to_nir: pass `sample_input` (a [T, B, ...] input) for the neuron shapes (the model does "
                "not start with a Linear layer)"
            )
        shape = (first.in_features,)
    if len(leaves) == 1 and leaves[0][1] is model and not isinstance(model, (LIF, nn.Linear)):
        raise NIRError(
            f"na_cuda.nir.to_nir: {type(model).__name__} has its own forward; NIR export needs a chain of modules "
            "(nn.Sequential of na_cuda.nn.LIF, SeqToANN and torch layers) or a module from na_cuda.nir.from_nir"
        )
    in_shape = shape
    items = []
    for path, m, folded in leaves:
        items.append((path, _module_nodes(m, path, folded, shape, dtype, float(dt))))
        shape = _out_shape(m, shape, folded, dtype)
    nodes, edges, last = _graph_from_chain(items, in_shape)
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    edges.append((last, "output"))
    return _finish(nodes, edges)


def _finish(nodes: dict[str, Any], edges: list[tuple[str, str]]) -> Any:
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    try:
        graph.infer_types()
    except Exception:  # noqa: BLE001 - the shapes we wrote are complete; nir's inference is a bonus
        pass
    return graph


def _graph_of_module(model: NIRModule, sample_input: Optional[torch.Tensor], dtype: Any, dt: float) -> Any:
    """Export a from_nir module: its graph structure with every node's current module re-exported."""
    if sample_input is None:
        raise ValueError("na_cuda.nir.to_nir: pass `sample_input` ([T, B, ...]) to export a from_nir module")
    inv = {v: k for k, v in model.names.items()}
    shapes: dict[str, tuple[int, ...]] = {}
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    with torch.no_grad():
        zeros = torch.zeros(1, 1, *sample_input.shape[2:], dtype=tdtype, device=_device(model))
        vals = {model.names[n]: zeros for n in model.inputs}
        for key, ps in model._plan:
            x = vals[ps[0]]
            for p in ps[1:]:
                x = x + vals[p]
            shapes[key] = tuple(x.shape[2:])
            vals[key] = model.nodes[key](x)
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    first: dict[str, str] = {}
    last: dict[str, str] = {}
    for name in model.order:
        key = model.names[name]
        if name in model.inputs:
            nodes[name] = nir.Input(input_type={"input": np.array(tuple(sample_input.shape[2:]))})
            first[name] = last[name] = name
            continue
        if name in model.outputs:
            nodes[name] = nir.Output(output_type={"output": np.array(shapes[key])})
            first[name] = last[name] = name
            continue
        chunk = _module_nodes(model.nodes[key], inv[key], 2, shapes[key], dtype, dt)
        if not chunk:  # an identity (e.g. a fused LI)
            first[name] = last[name] = ""
            continue
        names = [name] + [f"{name}_{i}" for i in range(1, len(chunk))]
        for n, node in zip(names, chunk):
            nodes[n] = node
        edges += list(zip(names, names[1:]))
        first[name], last[name] = names[0], names[-1]

    def sources(n: str) -> list[str]:  # skipping identities
        if last[n]:
            return [last[n]]
        return [s for p in model.preds[n] for s in sources(p)]

    for name in model.order:
        if not first.get(name):
            continue
        for p in model.preds[name]:
            edges += [(s, first[name]) for s in sources(p)]
    return _finish(nodes, edges)


__all__ = [
    "from_nir",
    "to_nir",
    "read",
    "NIRModule",
    "NIRReport",
    "NIRError",
    "Scale",
    "Filter",
    "Delay",
    "Placeholder",
]
