"""Train the authors' released NA code on the same budget as ``na_cuda.train`` and report its test accuracy
(issue 11, item 4).

    OMP_NUM_THREADS=1 python scripts/released_equal_budget.py --na-repo PATH --seed 0 --data-dir DIR \
        --out docs/results/equal_budget/released-seed0.json

The released modules (``cnns.py``, ``layers/``, ``functions/na.py``, ``functions/loss_f.py``, ``global_v.py``,
``neighbors.py`` of ``superrrpotato/Backpropagated-Neighborhood-Aggregation-for-Accurate-Training-of-Spiking-Neural-
Networks``) are imported from ``--na-repo`` and run on the CPU in float32, as its ``main.py`` sets them up;
``main.py`` itself cannot be imported (it needs pycuda and parses the command line), so its training step is
re-stated below, line by line: the ``kernel`` loss with the desired train PSC-filtered in ``main.py``,
``loss.backward()``, ``clip_grad_norm_(params, 1)``, ``AdamW(lr, betas=(0, 0.999))``, ``weight_clipper()``; test
predictions = argmax of the time-summed output.

The run matches ``python -m na_cuda.train --preset mnist --fidelity released --no-augment --limit-train 12800
--epochs 1 --seed S`` in everything but the code that computes the step: the same 12,800 training samples
(``na_cuda.train``'s ``--limit-train`` rule), the same batch order (its epoch permutation), the same initial
weights (na_cuda's model built under ``torch.manual_seed(S)``, copied into the released network), lr 5e-4 (the
paper's; the released ``main.py`` hard-codes 1e-5), no augmentation, the full 10k test set. One epoch, so the
released per-epoch ``ExponentialLR`` never steps before the test.

``--trajectory K [--dtype float64]`` instead runs the first K steps of both codes side by side (the released
step above and na_cuda's: ``train.loss_sum``, ``clip_grad_norm_``, AdamW, ``clamp_weights_`` as in
``na_cuda.train``) from the same weights on the same batches, and reports per step both losses and the largest
weight difference, relative to the largest weight of each layer.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch

from na_cuda import data, losses, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from released_golden import MNIST_LAYERS, MNIST_NETWORK, MNIST_WEIGHTS, default_dtype, released, sha256  # noqa: E402

LIMIT_TRAIN = 12_800
BATCH = 64
LR = 5e-4


def subset_and_batches(seed: int, n_train: int) -> tuple[torch.Tensor, list]:
    """na_cuda.train's training subset for --limit-train (a seeded permutation, sorted) and its epoch-0 batches."""
    g = torch.Generator().manual_seed(seed)
    index = torch.randperm(n_train, generator=g)[:LIMIT_TRAIN].sort().values
    return index, train.epoch_batches(seed, 0, len(index), BATCH)


def initial_weights(seed: int) -> list:
    """The weights na_cuda.train starts from (its model built right after torch.manual_seed(seed))."""
    torch.manual_seed(seed)
    net = train.model_from_config(train.make_config("mnist", fidelity="released"), (1, 28, 28))
    return [m.weight.detach().clone() for m in net.weight_layers()]


class ReleasedTrainer:
    """The released MNIST network (``cnns.Network``, Networks/MNIST_CNN.yaml) and its training step (main.py)."""

    def __init__(self, cnns: Any, loss_f: Any, glv: Any, weights: list, dtype: torch.dtype) -> None:
        self.params = {"Network": MNIST_NETWORK, "Layers": MNIST_LAYERS}
        self.T = MNIST_NETWORK["n_steps"]
        self.dtype = dtype
        self.loss_f = loss_f
        glv.init(dtype, torch.device("cpu"), self.params)
        with contextlib.redirect_stdout(sys.stderr), default_dtype(dtype):  # the layers print their shapes
            self.net = cnns.Network(self.params["Network"], self.params["Layers"], [1, 28, 28])
        self.layers = {layer.name: layer for layer in self.net.layers}
        for name, w in zip(MNIST_WEIGHTS, weights):
            self.layers[name].weight.data = w.view_as(self.layers[name].weight).to(dtype).clone()
        self.err = loss_f.SpikeLoss(self.params["Network"])
        # main.py passes betas=(0, 0.999); torch 2.13 rejects the int 0 ("both floats"), so 0.0
        self.opti = torch.optim.AdamW(self.net.get_parameters(), lr=LR, betas=(0.0, 0.999))
        # main.py, loss "kernel": the all-ones desired train, PSC-filtered (loss_kernel filters it again)
        self.desired = loss_f.psp(torch.ones(1, 1, 1, 1, self.T, dtype=dtype), self.params["Network"])
        self.desired = self.desired.view(1, 1, 1, self.T)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        # loadMNIST.py: ToTensor + Normalize((0.1307,), (0.3081,)); main.py: repeated over the T steps
        return data.normalize(x.to(self.dtype), "mnist").unsqueeze(-1).repeat(1, 1, 1, 1, self.T)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
        """One training step of main.py's train(); returns (loss, correct predictions)."""
        outputs = self.net.forward(self.inputs(x), 0, True)
        targets = torch.zeros((len(y), 10, 1, 1, self.T), dtype=self.dtype)
        for i in range(len(y)):
            targets[i, y[i], ...] = self.desired
        loss = self.err.spike_kernel(outputs, targets, self.params["Network"])
        self.opti.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.get_parameters(), 1)
        self.opti.step()
        self.net.weight_clipper()
        return loss.item(), int((outputs.detach().sum(dim=4).flatten(1).argmax(dim=1) == y).sum())

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net.forward(self.inputs(x), 0, False)
        return losses.spike_count_predictions(out.flatten(1, 3).permute(2, 0, 1))

    def weights(self) -> list:
        """The weights in na_cuda's shapes (the released convs have a trailing time-kernel dimension of 1)."""
        ws = [self.layers[n].weight.detach() for n in MNIST_WEIGHTS]
        return [w.squeeze(-1) if w.dim() == 5 else w for w in ws]


def train_released(
    rel: ReleasedTrainer, train_ds: Any, test_ds: Any, index: torch.Tensor, batches: list, eval_batch: int
) -> dict:
    """The equal-budget run: every batch once, then the full test set."""
    t_start = time.perf_counter()
    loss_sum, correct, seen = 0.0, 0, 0
    for step, b in enumerate(batches):
        x, y = train_ds.batch(index[b])
        loss, c = rel.step(x, y)
        loss_sum, correct, seen = loss_sum + loss, correct + c, seen + len(y)
        if step % 20 == 0:
            print(
                f"step {step + 1}/{len(batches)}: loss/sample {loss_sum / seen:.4f}, train acc "
                f"{correct / seen:.4f}, {time.perf_counter() - t_start:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    t_train = time.perf_counter() - t_start
    test_correct = 0
    for idx in torch.arange(len(test_ds)).split(eval_batch):
        x, y = test_ds.batch(idx)
        test_correct += int((rel.predict(x) == y).sum())
    return {
        "train_loss_per_sample": loss_sum / seen,
        "train_accuracy": correct / seen,
        "test_accuracy": test_correct / len(test_ds),
        "test_samples": len(test_ds),
        "train_seconds": t_train,
    }


def trajectory(
    rel: ReleasedTrainer,
    seed: int,
    train_ds: Any,
    test_ds: Any,
    index: torch.Tensor,
    batches: list,
    steps: int,
    eval_batch: int,
) -> dict:
    """The first `steps` steps of the released code and of na_cuda side by side, then both on the test set."""
    torch.manual_seed(seed)
    cfg = train.make_config("mnist", fidelity="released")
    net = train.model_from_config(cfg, (1, 28, 28)).to(rel.dtype)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    rows = []
    for step, b in enumerate(batches[:steps]):
        x, y = train_ds.batch(index[b])
        loss_rel, _ = rel.step(x, y)
        out = net(data.encode_static(data.normalize(x.to(rel.dtype), "mnist"), cfg.T, cfg.tau_s))
        loss = train.loss_sum(cfg, out, y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        net.clamp_weights_(cfg.weight_clip)
        diffs = {
            n: ((m.weight.detach() - w).abs().max() / w.abs().max()).item()
            for n, m, w in zip(MNIST_WEIGHTS, net.weight_layers(), rel.weights())
        }
        rows.append(
            {"step": step + 1, "loss_released": loss_rel, "loss_na_cuda": loss.item(), "weight_rel_diff": diffs}
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    net.eval()
    correct, agree = {"released": 0, "na_cuda": 0}, 0
    with torch.no_grad():
        for idx in torch.arange(len(test_ds)).split(eval_batch):
            x, y = test_ds.batch(idx)
            pred_rel = rel.predict(x)
            x = data.encode_static(data.normalize(x.to(rel.dtype), "mnist"), cfg.T, cfg.tau_s)
            pred = losses.spike_count_predictions(net(x))
            correct["released"] += int((pred_rel == y).sum())
            correct["na_cuda"] += int((pred == y).sum())
            agree += int((pred == pred_rel).sum())
    return {
        "trajectory": rows,
        "test_accuracy": {k: v / len(test_ds) for k, v in correct.items()},
        "test_predictions_equal": agree / len(test_ds),
    }


def main(argv: Optional[list] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--na-repo", type=Path, required=True)
    ap.add_argument("--na-commit", default="0fd263ba076dc04b05fb68e13dff00d45134f72c")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    ap.add_argument("--eval-batch", type=int, default=500)
    ap.add_argument(
        "--trajectory",
        type=int,
        default=0,
        metavar="K",
        help="compare the first K steps with na_cuda instead of training",
    )
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    args = ap.parse_args(argv)

    train_ds = data.load("mnist", True, args.data_dir, download=False)
    test_ds = data.load("mnist", False, args.data_dir, download=False)
    index, batches = subset_and_batches(args.seed, len(train_ds))
    dtype = getattr(torch, args.dtype)
    with released(args.na_repo):
        import cnns
        import functions.loss_f as loss_f
        import global_v as glv

        rel = ReleasedTrainer(cnns, loss_f, glv, initial_weights(args.seed), dtype)
        if args.trajectory:
            numbers = trajectory(rel, args.seed, train_ds, test_ds, index, batches, args.trajectory, args.eval_batch)
        else:
            numbers = train_released(rel, train_ds, test_ds, index, batches, args.eval_batch)
    result = {
        "code": "released" if not args.trajectory else "released vs na_cuda, step by step",
        "released_commit": args.na_commit,
        "released_sha256": {f: sha256(args.na_repo / f) for f in ("functions/na.py", "neighbors.py", "cnns.py")},
        "seed": args.seed,
        "dtype": args.dtype,
        "iterations": len(batches) if not args.trajectory else args.trajectory,
        "train_samples": LIMIT_TRAIN,
        "batch_size": BATCH,
        "lr": LR,
        "train_subset_sha256": hashlib.sha256(index.numpy().tobytes()).hexdigest(),
        **numbers,
        "torch_threads": torch.get_num_threads(),
        "command": "python scripts/released_equal_budget.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
