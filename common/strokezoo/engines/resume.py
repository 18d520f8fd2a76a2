"""Checkpoints that survive a kill: the best network, and everything a run needs to go on, both written atomically.

MONAI's ``CheckpointSaver`` writes in place (``atomic=False``), so a kill during a save leaves a truncated
``model.pt``, and it keeps nothing a resumed run needs. Here every file is written to a temporary name in its
folder and renamed over the old one:

* :class:`SaveBestNetwork` (on the validator): the network's plain state dict whenever the validator's key
  metric reaches a new best (``best_metric_epoch``, compared with the validator's ``metric_cmp_fn``);
* :class:`ResumeCheckpoint` (on the trainer): after the epoch's validation and learning-rate step, the network,
  the optimiser, the scheduler, the AMP scaler, the epoch and iteration counters and the validator's best
  metric and its epoch. With ``resume=True`` a run that finds the file starts after that epoch, so a kill costs
  at most one epoch's work, and ``model.pt`` is replaced only by an epoch better than the best before the kill.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events

from ..io.atomic import atomic_path
from .distributed import is_rank0

__all__ = ["ResumeCheckpoint", "SaveBestNetwork", "load_weights", "save_atomically"]

logger = logging.getLogger(__name__)


def save_atomically(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` through a temporary file in the same folder, renamed over ``path`` when complete."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def load_weights(network: torch.nn.Module, path: str | os.PathLike) -> torch.nn.Module:
    """Load the plain state dict at ``path`` (``weights_only``) into ``network`` (a ``DistributedDataParallel``
    wrapper is unwrapped), onto the device its parameters are on; returns ``network``. A fine-tuning run's start."""
    module = getattr(network, "module", network)
    device = next(module.parameters()).device
    module.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    return network


class SaveBestNetwork:
    """Save ``network``'s state dict to ``path`` (rank 0 only, atomically) after each validation that sets a new best.

    Attach it to the validator (:class:`~strokezoo.engines.ValidationRoutine` does). ``then`` (e.g. a
    :class:`~strokezoo.networks.ServedEnsemble`) is called after each save.
    """

    def __init__(self, path: str | os.PathLike, network: torch.nn.Module | None = None, then: Callable[[], Any] | None = None) -> None:
        self.path = Path(path)
        self.network = network  # None: the engine's
        self.then = then

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if engine.state.best_metric_epoch == engine.state.epoch and is_rank0():
            network = engine.network if self.network is None else self.network  # type: ignore[attr-defined]
            save_atomically(getattr(network, "module", network).state_dict(), self.path)
            logger.info(f"{self.path}: best {engine.state.key_metric_name} so far, {engine.state.best_metric:.4f} at epoch {engine.state.epoch}")
            if self.then is not None:
                logger.info(f"served: {self.then()}")


class ResumeCheckpoint:
    """Save the training state at every ``EPOCH_COMPLETED`` (rank 0 only) and, with ``resume``, load it at ``STARTED``.

    Attach it after the validation and learning-rate handlers (:class:`~strokezoo.engines.TrainingRoutine` does), so that the state it
    saves includes the epoch's validation and scheduler step.

    Args:
        path: the state file (``<ckpt_dir>/last.pt``).
        network: the network (a ``DistributedDataParallel`` wrapper is unwrapped); ``None``: the trainer's.
        optimizer: its optimiser; ``None``: the trainer's.
        lr_scheduler: its learning-rate scheduler, if any.
        validator: the evaluator whose ``best_metric``/``best_metric_epoch`` to keep, if any.
        resume: load ``path`` when the run starts, if it exists.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        network: torch.nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        lr_scheduler: Any | None = None,
        validator: Engine | None = None,
        resume: bool = False,
    ) -> None:
        self.path = Path(path)
        self._network = network
        self._optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.validator = validator
        self.resume = bool(resume)

    def _parts(self, engine: Engine) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        network = engine.network if self._network is None else self._network  # type: ignore[attr-defined]
        optimizer = engine.optimizer if self._optimizer is None else self._optimizer  # type: ignore[attr-defined]
        return getattr(network, "module", network), optimizer

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.load)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.save)

    def state_dict(self, engine: Engine) -> dict:
        network, optimizer = self._parts(engine)
        state: dict[str, Any] = {
            "epoch": engine.state.epoch,
            "iteration": engine.state.iteration,
            "network": network.state_dict(),
            "optimizer": optimizer.state_dict(),
        }
        if self.lr_scheduler is not None:
            state["lr_scheduler"] = self.lr_scheduler.state_dict()
        if getattr(engine, "scaler", None) is not None:
            state["scaler"] = engine.scaler.state_dict()
        if self.validator is not None:
            state["best_metric"] = float(self.validator.state.best_metric)
            state["best_metric_epoch"] = int(self.validator.state.best_metric_epoch)
        return state

    def save(self, engine: Engine) -> None:
        if is_rank0():
            save_atomically(self.state_dict(engine), self.path)

    def load(self, engine: Engine) -> None:
        if not self.resume:
            return
        if not self.path.is_file():
            logger.info(f"{self.path}: no training state to resume from; starting at epoch 1")
            return
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        network, optimizer = self._parts(engine)
        network.load_state_dict(state["network"])
        optimizer.load_state_dict(state["optimizer"])
        if self.lr_scheduler is not None and "lr_scheduler" in state:
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        if getattr(engine, "scaler", None) is not None and "scaler" in state:
            engine.scaler.load_state_dict(state["scaler"])
        if self.validator is not None and "best_metric" in state:
            self.validator.state.best_metric = state["best_metric"]
            self.validator.state.best_metric_epoch = state["best_metric_epoch"]
        engine.state.epoch, engine.state.iteration = int(state["epoch"]), int(state["iteration"])
        logger.info(f"{self.path}: resumed after epoch {engine.state.epoch} of {engine.state.max_epochs}")
