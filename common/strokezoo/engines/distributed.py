"""The batch each DDP rank loads, so that a multi-GPU run keeps the paper's batch size per optimiser step."""

from __future__ import annotations

import os

import torch.distributed as dist

__all__ = ["per_rank_batch", "world_size"]


def world_size() -> int:
    """The number of DDP processes: the initialised process group's size, else torchrun's ``WORLD_SIZE``, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def per_rank_batch(batch_size: int, processes: int | None = None) -> int:
    """``batch_size`` shared equally by ``processes`` ranks (default: :func:`world_size`).

    DDP averages the ranks' gradients, so ranks that each load ``batch_size / processes`` samples take the step a
    single process takes on ``batch_size`` samples (batch-norm statistics stay per rank). A batch the ranks cannot
    share equally is refused rather than rounded: rounding would train at another batch size than the one stated.
    """
    processes = world_size() if processes is None else int(processes)
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    if batch_size % processes:
        raise ValueError(
            f"batch_size {batch_size} cannot be shared equally by {processes} processes: pass a multiple of {processes} "
            f"(--batch_size is the global batch of one optimiser step)"
        )
    return batch_size // processes
