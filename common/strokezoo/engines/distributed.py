"""The batch each DDP rank loads, so that a multi-GPU run keeps the paper's batch size per optimiser step."""

from __future__ import annotations

import ignite.distributed as idist

__all__ = ["per_rank_batch"]


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
