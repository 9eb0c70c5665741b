"""Spike-train patterns: codes of [T] binary trains, their bits and Hamming weights.

Part of the MP-distance experiment (``na_cuda.experiments.mp_dist``; see its docstring). See docs/results.md."""

from __future__ import annotations

import torch


# ----------------------------------------------------------------------------------------------------------------
# Spike-train patterns.
# ----------------------------------------------------------------------------------------------------------------
def spikes_from_psc(a: torch.Tensor, tau_s: float) -> torch.Tensor:
    """Spikes ``[T, ...]`` (0/1, int64) of a PSC train ``a`` (eq. 3: ``a[t] = kappa a[t-1] + s[t] / tau_s``)."""
    kappa = 1.0 - 1.0 / tau_s
    prev = torch.cat([torch.zeros_like(a[:1]), a[:-1]])
    return torch.round(tau_s * (a - kappa * prev)).to(torch.int64)


def pattern_codes(s: torch.Tensor) -> torch.Tensor:
    """Binary code of every spike train of ``s`` ``[T, N]`` (0/1), the first time step as the most significant
    bit (the paper's indexing); int64 ``[N]``."""
    T = s.shape[0]
    weights = 2 ** torch.arange(T - 1, -1, -1, device=s.device, dtype=torch.int64)
    return (s.to(torch.int64) * weights[:, None]).sum(dim=0)


def code_bits(codes: torch.Tensor, T: int) -> torch.Tensor:
    """Inverse of ``pattern_codes``: ``[T, N]`` 0/1 int64."""
    shifts = torch.arange(T - 1, -1, -1, device=codes.device, dtype=torch.int64)
    return (codes[None, :] >> shifts[:, None]) & 1


def popcount(x: torch.Tensor, T: int) -> torch.Tensor:
    """Number of set bits of the ``T``-bit codes ``x`` (the Hamming distance of two codes is popcount(a ^ b))."""
    return code_bits(x, T).sum(dim=0)
