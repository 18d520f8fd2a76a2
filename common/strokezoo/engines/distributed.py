"""Multi-GPU training (every bundle's ``multi_gpu_train.json``): the process group, each rank's device, the
network wrapped for DDP, and the batch each rank loads, so that a multi-GPU run keeps the paper's batch size per
optimiser step."""

from __future__ import annotations

import os

import ignite.distributed as idist
import torch
import torch.distributed as dist

__all__ = ["close_distributed", "distributed", "init_distributed", "is_rank0", "per_rank_batch", "prepare_in_shards", "rank_device"]


def is_rank0() -> bool:
    """Whether this process logs and saves: rank 0 of a DDP run, or the only process."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def per_rank_batch(batch_size: int, processes: int | None = None) -> int:
    """``batch_size`` shared equally by ``processes`` ranks (default: ignite's world size, 1 outside DDP).

    DDP averages the ranks' gradients, so ranks that each load ``batch_size / processes`` samples take the step a
    single process takes on ``batch_size`` samples (batch-norm statistics stay per rank). A batch the ranks cannot
    share equally is refused rather than rounded: rounding would train at another batch size than the one stated.
    """
    processes = idist.get_world_size() if processes is None else int(processes)
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    if batch_size % processes:
        raise ValueError(
            f"batch_size {batch_size} cannot be shared equally by {processes} processes: pass a multiple of {processes} "
            f"(--batch_size is the global batch of one optimiser step)"
        )
    return batch_size // processes


def rank_device() -> torch.device:
    """This rank's GPU (``LOCAL_RANK``, set by torchrun), or the CPU where there is no GPU."""
    return torch.device(f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if torch.cuda.is_available() else "cpu")


def init_distributed() -> None:
    """Join torchrun's process group (NCCL on GPUs, gloo on CPUs) unless joined, set up ignite's distributed context
    on every rank together (its first use is a collective, which rank-0-only handlers would otherwise call alone),
    and make this rank's GPU the current one."""
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    idist.sync()
    if torch.cuda.is_available():
        torch.cuda.set_device(rank_device())


def close_distributed() -> None:
    """Wait for every rank, then leave the process group (a no-op outside DDP)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def distributed(module: torch.nn.Module, find_unused_parameters: bool = False) -> torch.nn.parallel.DistributedDataParallel:
    """``module`` (already on this rank's device) wrapped for DDP: gradients averaged over the ranks."""
    device = next(module.parameters()).device
    return torch.nn.parallel.DistributedDataParallel(
        module, device_ids=[device] if device.type == "cuda" else None, find_unused_parameters=find_unused_parameters
    )


def prepare_in_shards(data, transform) -> int:
    """Under DDP, run ``transform`` on this rank's share of ``data`` (every world-size-th entry, from the rank's
    own) and wait for every rank. The transforms that keep their results on disk (the mirror registration, part B's
    TFA maps) then compute each case once, on one rank, and every rank's datasets read the files. Outside DDP,
    nothing. Returns the number of entries this rank prepared."""
    world = idist.get_world_size()
    if world < 2:
        return 0
    mine = list(data)[idist.get_rank() :: world]
    for entry in mine:
        transform(dict(entry))
    dist.barrier()
    return len(mine)
