"""Loaded into every torchrun rank by the multi-GPU test of ``test_bundles.py`` (never by the bundles themselves).

:func:`attach` records, in ``<out_dir>/rank<r>.jsonl``, the dataset indices the rank's sampler hands its
training loader in each epoch, the number of iterations the rank then ran, and every ``torch.save`` it makes.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events


def _append(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def attach(trainer: Engine, out_dir: str) -> None:
    log = Path(out_dir) / f"rank{dist.get_rank()}.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    save = torch.save

    def recording_save(obj, f, *args, **kwargs):
        _append(log, {"saved": str(f)})
        return save(obj, f, *args, **kwargs)

    torch.save = recording_save

    # attached after the workflow's own EPOCH_STARTED handler that calls sampler.set_epoch: the indices listed
    # here are the ones the loader then draws
    @trainer.on(Events.EPOCH_STARTED)
    def record_indices(engine: Engine) -> None:
        loader = engine.data_loader
        _append(
            log,
            {
                "epoch": engine.state.epoch,
                "indices": [int(i) for i in loader.sampler],
                "dataset_size": len(loader.dataset),
                "batch_size": loader.batch_size,
                "drop_last": loader.drop_last,
            },
        )

    done = {"iterations": 0}

    @trainer.on(Events.ITERATION_COMPLETED)
    def count_iteration(engine: Engine) -> None:
        done["iterations"] += 1

    @trainer.on(Events.EPOCH_COMPLETED)
    def record_iterations(engine: Engine) -> None:
        _append(log, {"epoch": engine.state.epoch, "iterations": done["iterations"]})
        done["iterations"] = 0
