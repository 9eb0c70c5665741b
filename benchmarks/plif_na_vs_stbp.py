"""PLIF with NA against STBP on one layer (issue 17): the w gradient (one per layer, and one per neuron) and the input
gradient of the same layer, input and loss, float64. Prints what README "Learnable time constants (PLIF)" quotes.

    python benchmarks/plif_na_vs_stbp.py
"""

from __future__ import annotations

from typing import Any

import torch

import na_cuda


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum() / (a.norm() * b.norm()))


def main() -> None:
    torch.manual_seed(0)
    T, B, F = 8, 64, 128
    x = torch.rand(T, B, F, dtype=torch.float64) * 1.5
    target = na_cuda.losses.psc((torch.rand(T, B, F, dtype=torch.float64) < 0.3).double(), 2.0)
    grads = {}
    runs: tuple[tuple[str, dict[str, Any]], ...] = (("stbp", {"surrogate": "atan"}), ("na", {}))
    for method, kw in runs:
        for shape in ((), (F,)):
            lif = na_cuda.nn.LIF(tau_m=2.0, learn_decay="sigmoid", decay_shape=shape, method=method, **kw).double()
            c = x.clone().requires_grad_(True)
            (((lif(c) - target) ** 2).sum() / 2).backward()
            assert lif.w.grad is not None and c.grad is not None
            grads[method, shape] = (lif.w.grad.detach().clone(), c.grad.detach().clone())
    (ws, cs), (wn, cn) = grads["stbp", ()], grads["na", ()]
    print(
        f"per layer: dL/dw STBP {float(ws):.4g}, NA {float(wn):.4g}; dL/dc cosine {_cos(cs, cn):.3f}, "
        f"norm ratio NA/STBP {float(cn.norm() / cs.norm()):.3f}"
    )
    (ws, _), (wn, _) = grads["stbp", (F,)], grads["na", (F,)]
    same = float((torch.sign(ws) == torch.sign(wn)).double().mean())
    print(
        f"per neuron: dL/dw cosine {_cos(ws, wn):.3f}, same sign {100 * same:.0f} %, "
        f"norm ratio NA/STBP {float(wn.norm() / ws.norm()):.3f}"
    )


if __name__ == "__main__":
    main()
