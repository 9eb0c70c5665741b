"""Record golden values from the authors' released code, for ``tests/test_golden.py`` (issue 11, item 2).

    python scripts/released_golden.py --na-repo PATH --tssl-repo PATH --out tests/golden \
        [--na-commit HASH --tssl-commit HASH] [--data-dir /path/with/mnist]

``--na-repo``: a checkout (or ``git archive`` export) of
``superrrpotato/Backpropagated-Neighborhood-Aggregation-for-Accurate-Training-of-Spiking-Neural-Networks``;
``--tssl-repo``: one of ``stonezwr/TSSL-BP``. Their modules are imported from those paths at run time and run on the
CPU; nothing of theirs is copied into this repository. The TSSL-BP code calls ``.cuda()`` unconditionally: while
it runs, ``torch.Tensor.cuda`` is replaced by the identity (and the default dtype set to the case's dtype, because
its ``torch.zeros(...)`` calls take none).

Writes ``OUT/released_golden.npz`` (inputs and the released outputs, time-first ``[T, ...]`` layout as na_cuda
uses; the released code works in ``[B, C, H, W, T]``) and ``OUT/released_golden.json`` (what every array is, the
released commits, SHA-256 of the released files that ran, and the command). Cases:

(a) ``na_T{T}_*``: one NA layer (``functions/na.py`` ``NA``), forward PSC and backward ``grad_c`` *before* the
    layer-wise rescale (the gradient the released backward passes to its first ``update_norm`` call, captured
    there), fp64 and fp32, T = 5, 10, 20, 256 neurons (some with exact threshold ties and silent / saturated ones).
(b) ``stack_*``: three released ``LinearLayer`` + NA layers with the released rescale on (``update_norm`` as
    released, means rounded to 3 decimals), loss ``sum(out * R)``: weight gradients and the input's gradient.
    ``stack_small_*`` scales R so that the output layer's rounded mean is 0 (the released ``round(., 3)`` edge).
(c) ``tssl_T{T}_m{tau_m}_*``: the released TSSL-BP neuron (``functions/tsslbp.py`` head), forward PSC and
    backward, fp64 and fp32.
(d) ``net_*``: one training step of the released MNIST network (``cnns.Network`` with ``Networks/MNIST_CNN.yaml``,
    T = 5) on 8 MNIST training images: the loss and every weight's gradient right after ``loss.backward()``,
    i.e. BEFORE ``clip_grad_norm_`` (the total norm and the clip factor are recorded too).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

# Module names at the top of both released repositories (they clash: forget them between the two).
_RELEASED_MODULES = ("global_v", "neighbors", "cnns", "functions", "layers", "network_parser")
NA_FILES = (
    "functions/na.py",
    "neighbors.py",
    "global_v.py",
    "functions/loss_f.py",
    "cnns.py",
    "layers/conv.py",
    "layers/linear.py",
    "layers/pooling.py",
    "Networks/MNIST_CNN.yaml",
)
TSSL_FILES = ("functions/tsslbp.py", "global_v.py")
NA_TS = (5, 10, 20)
NEURONS = 256
DTYPES = {"f64": torch.float64, "f32": torch.float32}
TAU_S = 2.0
THRESHOLD = 1.0  # the released neighbors.get_loss hard-codes threshold = 1

# Networks/MNIST_CNN.yaml of the released NA code (the keys its modules read), so no YAML parser is needed.
MNIST_NETWORK = {
    "n_steps": 5,
    "tau_m": 5,
    "tau_s": 2,
    "model": "LIF",
    "rule": "NA",
    "loss": "kernel",
    "n_class": 10,
    "batch_size": 64,
}
MNIST_LAYERS = {
    "conv_1": {
        "type": "conv",
        "in_channels": 1,
        "out_channels": 15,
        "kernel_size": 5,
        "weight_scale": 1,
        "padding": 0,
        "threshold": 1,
    },
    "pooling_1": {"type": "pooling", "kernel_size": 2, "threshold": 1},
    "conv_2": {
        "type": "conv",
        "in_channels": 15,
        "out_channels": 40,
        "kernel_size": 5,
        "weight_scale": 1,
        "padding": 0,
        "threshold": 1,
    },
    "pooling_2": {"type": "pooling", "kernel_size": 2, "threshold": 1},
    "FC_1": {"type": "linear", "n_inputs": 640, "n_outputs": 300, "weight_scale": 1, "threshold": 1},
    "output": {"type": "linear", "n_inputs": 300, "n_outputs": 10, "weight_scale": 1, "threshold": 1},
}
MNIST_WEIGHTS = ("conv_1", "conv_2", "FC_1", "output")  # the layers with weights, in order
NET_BATCH = 8


@contextlib.contextmanager
def released(repo: Path, cuda_on_cpu: bool = False) -> Iterator[None]:
    """Make the released modules of ``repo`` importable; forget them afterwards (both repos use the same names)."""
    path = list(sys.path)
    cuda = torch.Tensor.cuda
    sys.path.insert(0, str(repo))
    if cuda_on_cpu:
        torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        sys.path[:] = path
        torch.Tensor.cuda = cuda  # type: ignore[method-assign]
        for name in list(sys.modules):
            if name.split(".")[0] in _RELEASED_MODULES:
                del sys.modules[name]


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


@contextlib.contextmanager
def capture_update_norm(nb: Any) -> Iterator[list]:
    """Record every gradient the released ``neighbors.update_norm`` sees (then call it as released). Each NA
    backward calls it twice: first with the aggregated gradient before the rescale, then after it."""
    seen: list = []
    original: Callable = nb.update_norm

    def update_norm(grad: torch.Tensor, name: Any) -> None:
        seen.append(grad.detach().clone())
        original(grad, name)

    nb.update_norm = update_norm
    try:
        yield seen
    finally:
        nb.update_norm = original


def na_params(T: int, tau_m: float, layers: dict) -> dict:
    return {"Network": dict(MNIST_NETWORK, n_steps=T, tau_m=tau_m, tau_s=TAU_S), "Layers": layers}


def to_released(x: torch.Tensor) -> torch.Tensor:
    """[T, N] -> the released [N, 1, 1, 1, T]."""
    return x.t().contiguous().view(x.shape[1], 1, 1, 1, x.shape[0])


def from_released(x: torch.Tensor) -> torch.Tensor:
    """[N, 1, 1, 1, T] -> [T, N]."""
    return x.reshape(x.shape[0], x.shape[-1]).t().contiguous()


def neuron_inputs(rng: np.random.Generator, T: int) -> np.ndarray:
    """[T, NEURONS] float64 synaptic inputs: mostly N(0.45, 0.55), plus fixed patterns (exact ties at t = 0,
    silent neurons, a neuron that fires every step)."""
    c = rng.normal(0.45, 0.55, size=(T, NEURONS))
    c[:, 0] = 0.0
    c[0, 0] = THRESHOLD  # u[0] == threshold: does not fire under `mem > threshold`
    c[:, 1] = THRESHOLD  # tie at t = 0, then 0.8 + 1 fires
    c[:, 2] = 0.0  # silent
    c[:, 3] = 3.0  # fires every step
    return c


def record_na(out: dict, meta: dict, repo: Path, rng: np.random.Generator) -> None:
    """Case (a): one released NA layer, forward PSC and backward grad_c before its rescale."""
    with released(repo):
        import functions.na as na
        import global_v as glv
        import neighbors as nb

        for T in NA_TS:
            c = neuron_inputs(rng, T)
            g = rng.normal(0.0, 1.0, size=(T, NEURONS))
            out[f"na_T{T}_c"], out[f"na_T{T}_grad_out"] = c, g
            for tag, dtype in DTYPES.items():
                params = na_params(T, 5.0, {"output": MNIST_LAYERS["output"]})
                glv.init(dtype, torch.device("cpu"), params)
                x = to_released(torch.tensor(c, dtype=dtype)).requires_grad_(True)
                y = na.NA.apply(x, params["Network"], params["Layers"]["output"], "output")
                with capture_update_norm(nb) as seen:
                    y.backward(to_released(torch.tensor(g, dtype=dtype)))  # the backward edits it in place
                out[f"na_T{T}_{tag}_psc"] = from_released(y.detach()).numpy()
                out[f"na_T{T}_{tag}_grad_c"] = from_released(seen[0]).numpy()
    meta["na"] = dict(
        T=list(NA_TS),
        neurons=NEURONS,
        tau_m=5.0,
        tau_s=TAU_S,
        threshold=THRESHOLD,
        released_options=dict(clip=5.0, strict_threshold=True, first_order="paper", dist_power=3),
        arrays={
            "na_T{T}_c": "float64 [T, 256] input c (fp32 case: this cast to float32)",
            "na_T{T}_grad_out": "float64 [T, 256] dL/dPSC fed to backward (fp32: cast)",
            "na_T{T}_{f64|f32}_psc": "released forward PSC [T, 256]",
            "na_T{T}_{f64|f32}_grad_c": "released grad_c before the layer-wise rescale",
        },
    )


STACK_SIZES = (40, 30, 20, 10)  # input features, then the three NA layers
STACK_BATCH, STACK_T = 16, 5


def record_stack(out: dict, meta: dict, repo: Path, rng: np.random.Generator) -> None:
    """Case (b): three released linear + NA layers with the released rescale (rounded means)."""
    x0 = rng.uniform(0.0, 1.0, size=(STACK_T, STACK_BATCH, STACK_SIZES[0]))  # input PSCs
    weights = [
        rng.normal(0.0, 1.6 / np.sqrt(n_in), size=(n_out, n_in))
        for n_in, n_out in zip(STACK_SIZES[:-1], STACK_SIZES[1:])
    ]
    r = rng.normal(0.0, 1.0, size=(STACK_T, STACK_BATCH, STACK_SIZES[-1]))
    out["stack_x"], out["stack_r"] = x0, r
    for i, w in enumerate(weights):
        out[f"stack_w{i}"] = w
    names = [f"fc_{i}" for i in range(len(weights))]
    with released(repo):
        import global_v as glv
        import layers.linear as linear
        import neighbors as nb

        for case, r_scale in (("stack", 1.0), ("stack_small", 1e-4)):
            for tag, dtype in DTYPES.items():
                layers = {
                    n: {"type": "linear", "n_inputs": a, "n_outputs": b, "weight_scale": 1, "threshold": 1}
                    for n, a, b in zip(names, STACK_SIZES[:-1], STACK_SIZES[1:])
                }
                params = na_params(STACK_T, 5.0, layers)
                glv.init(dtype, torch.device("cpu"), params)
                with contextlib.redirect_stdout(sys.stderr):  # the released layers print their shapes
                    net = [
                        linear.LinearLayer(params["Network"], layers[n], n, [a, 1, 1])
                        for n, a in zip(names, STACK_SIZES[:-1])
                    ]
                for layer, w in zip(net, weights):
                    layer.weight.data = torch.tensor(w, dtype=dtype)
                # [T, B, F] -> released [B, F, 1, 1, T]
                x = torch.tensor(x0, dtype=dtype).permute(1, 2, 0).reshape(STACK_BATCH, STACK_SIZES[0], 1, 1, STACK_T)
                x.requires_grad_(True)
                y = x
                for layer in net:
                    y = layer.forward_pass(y, 0)
                y_tb = y.reshape(STACK_BATCH, STACK_SIZES[-1], STACK_T).permute(2, 0, 1)
                loss = (y_tb * torch.tensor(r * r_scale, dtype=dtype)).sum()
                with capture_update_norm(nb) as seen:
                    loss.backward()
                out[f"{case}_{tag}_out"] = y_tb.detach().numpy()
                out[f"{case}_{tag}_grad_x"] = (
                    x.grad.reshape(STACK_BATCH, STACK_SIZES[0], STACK_T).permute(2, 0, 1).numpy()
                )
                for i, layer in enumerate(net):
                    out[f"{case}_{tag}_grad_w{i}"] = layer.weight.grad.numpy()
                # per NA layer (output first): mean |grad_c| before and after its rescale
                out[f"{case}_{tag}_means"] = np.array([g.abs().mean().item() for g in seen]).reshape(-1, 2)
                meta.setdefault("stack_norm_dict", {})[f"{case}_{tag}"] = {
                    str(k): v for k, v in glv.grad_norm_dict.items()
                }
    meta["stack"] = dict(
        sizes=list(STACK_SIZES),
        batch=STACK_BATCH,
        T=STACK_T,
        tau_m=5.0,
        tau_s=TAU_S,
        loss="sum(out * R) (stack_small: R * 1e-4)",
        rescale="released (update_norm, 3 decimals)",
        arrays={
            "stack_x": "float64 [T, B, 40] input PSCs (fp32 case: cast)",
            "stack_w{i}": "float64 weights [out, in] of layer i (fp32: cast)",
            "stack_r": "float64 [T, B, 10] R of the loss",
            "{case}_{tag}_out": "output PSC [T, B, 10]",
            "{case}_{tag}_grad_x": "dL/dx [T, B, 40]",
            "{case}_{tag}_grad_w{i}": "dL/dW_i",
            "{case}_{tag}_means": "[layer (output first), before/after rescale] mean |grad_c|",
        },
    )


TSSL_CASES = ((5, 4.0), (10, 4.0), (20, 4.0), (5, 5.0))


def record_tssl(out: dict, meta: dict, repo: Path, rng: np.random.Generator) -> None:
    """Case (c): the released TSSL-BP neuron, forward and backward."""
    with released(repo, cuda_on_cpu=True):
        import functions.tsslbp as tsslbp
        import global_v as glv

        for T, tau_m in TSSL_CASES:
            key = f"tssl_T{T}_m{tau_m:g}"
            c = neuron_inputs(rng, T)
            g = rng.normal(0.0, 1.0, size=(T, NEURONS))
            out[f"{key}_c"], out[f"{key}_grad_out"] = c, g
            for tag, dtype in DTYPES.items():
                with default_dtype(dtype):
                    glv.init(T, TAU_S)
                    x = to_released(torch.tensor(c, dtype=dtype)).requires_grad_(True)
                    y = tsslbp.TSSLBP.apply(x, {"tau_m": tau_m, "tau_s": TAU_S}, {"threshold": THRESHOLD})
                    y.backward(to_released(torch.tensor(g, dtype=dtype)))
                out[f"{key}_{tag}_psc"] = from_released(y.detach()).numpy()
                out[f"{key}_{tag}_grad_c"] = from_released(x.grad).numpy()
    meta["tssl"] = dict(
        cases=[dict(T=T, tau_m=m) for T, m in TSSL_CASES],
        neurons=NEURONS,
        tau_s=TAU_S,
        threshold=THRESHOLD,
        note=(
            "run under torch.set_default_dtype(case dtype): the released code takes no dtype in "
            "its torch.zeros / torch.tensor calls, so its backward's theta_m (read back from "
            "torch.tensor([threshold, tau_s, theta_m])) is in the case's dtype"
        ),
        arrays={
            "{key}_c": "float64 [T, 256] input (fp32: cast)",
            "{key}_grad_out": "float64 [T, 256] dL/dPSC (fp32: cast)",
            "{key}_{f64|f32}_psc": "released forward PSC",
            "{key}_{f64|f32}_grad_c": "released grad_c",
        },
    )


def mnist_batch(data_dir: Optional[str]) -> tuple[np.ndarray, np.ndarray, list]:
    """The first NET_BATCH images of a seeded permutation of the MNIST training split (uint8 [B, 1, 28, 28])."""
    from na_cuda import data

    ds = data.load("mnist", True, data_dir, download=False)
    index = torch.randperm(len(ds), generator=torch.Generator().manual_seed(11))[:NET_BATCH].sort().values
    x, y = ds.batch(index)
    return (x * 255).round().to(torch.uint8).numpy(), y.numpy(), index.tolist()


def record_net(out: dict, meta: dict, repo: Path, data_dir: Optional[str]) -> None:
    """Case (d): one training step (loss + gradients before clip_grad_norm_) of the released MNIST network."""
    images, labels, index = mnist_batch(data_dir)
    out["net_images"], out["net_labels"] = images, labels
    T = MNIST_NETWORK["n_steps"]
    with released(repo):
        import cnns
        import functions.loss_f as loss_f
        import global_v as glv
        import neighbors as nb

        params = {"Network": MNIST_NETWORK, "Layers": MNIST_LAYERS}
        weights: dict = {}
        for tag, dtype in DTYPES.items():
            glv.init(dtype, torch.device("cpu"), params)
            torch.manual_seed(0)
            # built in the case's dtype (the pooling's fixed 1.1 weights take the default dtype)
            with contextlib.redirect_stdout(sys.stderr), default_dtype(dtype):
                net = cnns.Network(params["Network"], params["Layers"], [1, 28, 28])
            layers = {layer.name: layer for layer in net.layers}
            for name in MNIST_WEIGHTS:
                # float16 values (exact in fp32 and fp64) keep the committed file small
                w = weights.setdefault(name, layers[name].weight.detach().to(torch.float16).clone())
                layers[name].weight.data = w.to(dtype).clone()
            fc_in: list = []
            fc_pass = layers["FC_1"].forward_pass
            layers["FC_1"].forward_pass = lambda x, epoch: fc_in.append(x.detach().clone()) or fc_pass(x, epoch)
            # main.py: ToTensor + Normalize((0.1307,), (0.3081,)) (datasets/loadMNIST.py, no augmentation here),
            # the image repeated over the T steps (main.py line 59)
            x = torch.tensor(images, dtype=dtype) / 255
            x = (x - 0.1307) / 0.3081
            x = x.unsqueeze(-1).repeat(1, 1, 1, 1, T)
            outputs = net.forward(x, 0, True)
            # main.py "kernel" loss: the all-ones desired train PSC-filtered once there, then again in loss_kernel
            desired = loss_f.psp(torch.ones(1, 1, 1, 1, T, dtype=dtype), params["Network"]).view(1, 1, 1, T)
            targets = torch.zeros((len(labels), 10, 1, 1, T), dtype=dtype)
            for i, label in enumerate(labels):
                targets[i, int(label), ...] = desired
            loss = loss_f.SpikeLoss(params["Network"]).spike_kernel(outputs, targets, params["Network"])
            with capture_update_norm(nb) as seen:
                loss.backward()
            grads = {n: layers[n].weight.grad.detach().clone() for n in MNIST_WEIGHTS}
            norm = torch.nn.utils.clip_grad_norm_(net.get_parameters(), 1)
            b = len(labels)
            out[f"net_{tag}_loss"] = np.array(loss.item())
            out[f"net_{tag}_grad_norm"] = np.array(norm.item())
            out[f"net_{tag}_out"] = outputs.detach().reshape(b, 10, T).permute(2, 0, 1).numpy()
            # NA backwards run output, FC_1, conv_2, conv_1; each calls update_norm before and after its rescale
            out[f"net_{tag}_grad_c_output"] = seen[1].reshape(b, 10, T).permute(2, 0, 1).numpy()
            fc_grad_c = seen[3].reshape(b, 300, T).permute(2, 0, 1)
            fc_x = fc_in[0].reshape(b, 640, T).permute(2, 0, 1)
            out[f"net_{tag}_grad_c_FC_1"], out[f"net_{tag}_x_FC_1"] = fc_grad_c.numpy(), fc_x.numpy()
            # FC_1's weight gradient (192000 numbers) is kept as its two factors, dL/dW = sum_{t,b} g x^T
            rebuilt = torch.einsum("tbi,tbj->ij", fc_grad_c.double(), fc_x.double())
            err = (rebuilt - grads["FC_1"].double()).abs().max() / grads["FC_1"].double().abs().max()
            meta.setdefault("net_fc1_factor_check", {})[tag] = err.item()
            for name in ("conv_1", "conv_2", "output"):
                g = grads[name]
                out[f"net_{tag}_grad_{name}"] = (g.squeeze(-1) if g.dim() == 5 else g).numpy()
            meta.setdefault("net_norm_dict", {})[tag] = {str(k): v for k, v in glv.grad_norm_dict.items()}
    for name, w in weights.items():
        out[f"net_w_{name}"] = (w.squeeze(-1) if w.dim() == 5 else w).numpy()
    meta["net"] = dict(
        config="Networks/MNIST_CNN.yaml (15C5-P2-40C5-P2-300-10, T = 5, tau_m = 5, tau_s = 2, loss kernel)",
        batch=dict(
            split="MNIST train",
            index=index,
            rule="torch.randperm(60000, generator=torch.Generator().manual_seed(11))[:8].sort()",
        ),
        weights="the fp64 build's init under torch.manual_seed(0), rounded to float16; the same for both dtypes",
        gradients="right after loss.backward(), BEFORE clip_grad_norm_(params, 1); net_{tag}_grad_norm is the "
        "total norm clip_grad_norm_ returned (the clip factor is min(1, 1 / norm))",
        fc1="dL/dW_FC_1 = einsum('tbi,tbj->ij', net_{tag}_grad_c_FC_1, net_{tag}_x_FC_1); net_fc1_factor_check "
        "is max|rebuilt - released weight.grad| / max|released weight.grad|",
        arrays={
            "net_images": "uint8 [8, 1, 28, 28]",
            "net_labels": "int64 [8]",
            "net_w_{layer}": "float16 weights (conv [out, in, 5, 5], linear [out, in])",
            "net_{f64|f32}_loss": "1/2 sum (out - psc(psc(d)))^2 over the batch",
            "net_{f64|f32}_out": "output PSC [T, 8, 10]",
            "net_{f64|f32}_grad_{conv_1|conv_2|output}": "weight gradient before clipping",
            "net_{f64|f32}_grad_c_{output|FC_1}": "the layer's NA backward result (after its rescale) [T, 8, n]",
            "net_{f64|f32}_x_FC_1": "FC_1's input (pooling_2 PSCs, flattened C-major) [T, 8, 640]",
        },
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def commit_of(repo: Path, given: Optional[str]) -> str:
    if given:
        return given
    try:
        return subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (pass --na-commit / --tssl-commit)"


def main(argv: Optional[list] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--na-repo", type=Path, required=True, help="the released NA code (checkout or export)")
    ap.add_argument("--tssl-repo", type=Path, required=True, help="the released TSSL-BP code")
    ap.add_argument("--out", type=Path, default=Path("tests/golden"))
    ap.add_argument("--na-commit", default=None, help="commit of --na-repo (default: git rev-parse HEAD there)")
    ap.add_argument("--tssl-commit", default=None, help="commit of --tssl-repo")
    ap.add_argument("--data-dir", default=None, help="where MNIST is (as na_cuda.data.load's data_dir)")
    args = ap.parse_args(argv)
    for repo, files in ((args.na_repo, NA_FILES), (args.tssl_repo, TSSL_FILES)):
        missing = [f for f in files if not (repo / f).is_file()]
        if missing:
            raise SystemExit(f"released_golden: {repo} lacks {', '.join(missing)}: is it the right repository?")
    torch.set_num_threads(1)  # deterministic reductions, and modest CPU use
    rng = np.random.default_rng(20211)
    out: dict = {}
    meta: dict = {
        "command": "python scripts/released_golden.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "torch": torch.__version__,
        "layout": "time first, [T, ...] (na_cuda's); the released code's is [B, C, H, W, T]",
        "released": {
            "na": dict(
                repo="superrrpotato/Backpropagated-Neighborhood-Aggregation-for-Accurate-Training-of-Spiking-"
                "Neural-Networks",
                commit=commit_of(args.na_repo, args.na_commit),
                sha256={f: sha256(args.na_repo / f) for f in NA_FILES},
            ),
            "tssl": dict(
                repo="stonezwr/TSSL-BP",
                commit=commit_of(args.tssl_repo, args.tssl_commit),
                sha256={f: sha256(args.tssl_repo / f) for f in TSSL_FILES},
            ),
        },
    }
    record_na(out, meta, args.na_repo, rng)
    record_stack(out, meta, args.na_repo, rng)
    record_tssl(out, meta, args.tssl_repo, rng)
    record_net(out, meta, args.na_repo, args.data_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "released_golden.npz", **out)
    meta["arrays"] = {k: [str(v.dtype), list(v.shape)] for k, v in sorted(out.items())}
    (args.out / "released_golden.json").write_text(json.dumps(meta, indent=1) + "\n")
    size = (args.out / "released_golden.npz").stat().st_size
    print(f"released_golden: wrote {len(out)} arrays, {size / 1e6:.2f} MB, to {args.out}")


if __name__ == "__main__":
    main()
