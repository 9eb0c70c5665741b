"""Data-parallel training (``torchrun ... -m na_cuda.train``): the rank context from torchrun's environment, the
process group (with ``--ddp-timeout``), errors that rank 0 finds reaching every rank, the DDP wrapper.

Every rank draws the same seeded permutation of the training set per epoch and takes its contiguous shard of each
global batch (``recipe.epoch_batches``); the loss is scaled so that DDP's gradient average equals the gradient of
the whole global batch. Evaluation is sharded over the ranks and summed. See docs/training.md.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .config import ConfigError

#: Default of --ddp-timeout: how long a collective waits for a stopped or dead rank before failing (torch: 30 min).
DDP_TIMEOUT_S = 600.0


@dataclass
class Dist:
    """This process's place in the run: rank, world size, local rank (a single process: 0, 1, 0)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def dist_from_env() -> Dist:
    """The context torchrun describes in ``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK`` (none set: one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    return Dist(rank=int(os.environ.get("RANK", "0")), world=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


@contextlib.contextmanager
def process_group(ctx: Dist, use_cuda: bool, timeout_s: float) -> Iterator[None]:
    """Initialise the process group for the run (NCCL on GPUs, gloo on CPUs) unless one exists; on a normal exit
    every rank leaves together (gloo aborts on an early teardown), on an error it is torn down at once."""
    if not ctx.active or dist.is_initialized():
        yield
        return
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s))
    ok = False
    try:
        yield
        ok = True
    finally:
        if ok:
            dist.barrier()
        dist.destroy_process_group()


def all_ranks_raise(ctx: Dist, error: Optional[str], kind: type = ConfigError) -> None:
    """Every rank raises ``kind(error)`` when rank 0 reports ``error`` (a collective in a distributed run), so that
    no rank is left waiting for one that stopped."""
    if ctx.active:
        box = [error]
        dist.broadcast_object_list(box, src=0)  # NCCL: on the current device, which resolve_device set
        error = box[0]
    if error:
        raise kind(error if ctx.main else f"(rank {ctx.rank}) rank 0 stopped: {error}")


def all_sum(ctx: Dist, values: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """The float64 sums over the ranks of 0-dim ``values`` (a collective in a distributed run)."""
    t = torch.stack([v.detach().to(device, torch.float64).reshape(()) for v in values])
    if ctx.active:
        dist.all_reduce(t)
    return t


def wrap(ctx: Dist, net: nn.Module, device: torch.device) -> nn.Module:
    """``net`` in DDP for a distributed run, else ``net`` itself."""
    if not ctx.active:
        return net
    return DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)


def gather(ctx: Dist, obj: object) -> list:
    """Every rank's ``obj``, in rank order (a collective in a distributed run)."""
    if not ctx.active:
        return [obj]
    out: list = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out
