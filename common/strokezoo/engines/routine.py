"""What every bundle's training and validation do besides the paper's method, written once for all six.

The bundles' engines attach these where a config would otherwise list MONAI's handlers one by one:

* :class:`TrainingRoutine` (attached by :class:`~strokezoo.engines.Trainer`): the learning-rate step, validation every ``val_interval``
  epochs, the loss on the console and in TensorBoard, the progress bar, and the resumable training state
  (:class:`~strokezoo.engines.ResumeCheckpoint`), in that order, so that the state saved after an epoch includes
  its validation and its scheduler step;
* :class:`ValidationRoutine` (attached by :class:`~strokezoo.engines.Validator`): the validation metrics on the console and in TensorBoard,
  and the best network (:class:`~strokezoo.engines.SaveBestNetwork`);
* :class:`InferenceRoutine` (in ``inference.json``'s ``handlers``): the trained weights loaded before the first
  case (``weights_only``), and the run's figures on the console.

Logging runs on rank 0 only; every rank validates and steps its scheduler. ``train#handlers`` stays a list of
further handler configs (MONAI Label inserts its ``CheckpointLoader`` there), and each argument still comes from a
key the command line can set (``--val_interval 5``, ``--progress_bar False``, ``--resume True``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from ignite.engine import Engine, Events
from monai.handlers import CheckpointLoader, LrScheduleHandler, StatsHandler, TensorBoardStatsHandler, ValidationHandler, from_engine

from .distributed import is_rank0
from .resume import ResumeCheckpoint, SaveBestNetwork

__all__ = ["InferenceRoutine", "TrainingRoutine", "ValidationRoutine"]


class TrainingRoutine:
    """Attach to a trainer the handlers every bundle's training runs (module docstring).

    Args:
        validator: the evaluator run every ``val_interval`` epochs (``@validate#evaluator``); ``None``: no validation.
        checkpoint: the resumable training state's file (``models/last.pt``); saved after every epoch.
        resume: start after the epoch saved in ``checkpoint`` when it exists.
        log_dir: TensorBoard's folder.
        lr_scheduler: stepped once per epoch, before validation; ``None`` for a constant rate.
        val_interval: epochs between validations.
        progress_bar: ignite's progress bar over each epoch's iterations (rank 0).
    """

    def __init__(
        self,
        validator: Engine | None,
        checkpoint: str | os.PathLike,
        resume: bool = False,
        log_dir: str | os.PathLike | None = None,
        lr_scheduler: Any | None = None,
        val_interval: int = 1,
        progress_bar: bool = True,
    ) -> None:
        self.validator = validator
        self.checkpoint = checkpoint
        self.resume = bool(resume)
        self.log_dir = log_dir
        self.lr_scheduler = lr_scheduler
        self.val_interval = int(val_interval)
        self.progress_bar = bool(progress_bar)

    def attach(self, engine: Engine) -> None:
        if self.lr_scheduler is not None:
            LrScheduleHandler(self.lr_scheduler, epoch_level=True, print_lr=True).attach(engine)
        if self.validator is not None:
            ValidationHandler(interval=self.val_interval, validator=self.validator, epoch_level=True).attach(engine)
        if is_rank0():
            loss = from_engine(["loss"], first=True)
            StatsHandler(tag_name="train_loss", output_transform=loss).attach(engine)
            if self.log_dir is not None:
                TensorBoardStatsHandler(log_dir=str(self.log_dir), tag_name="train_loss", output_transform=loss).attach(engine)
            if self.progress_bar:
                from ignite.handlers import ProgressBar

                ProgressBar(persist=False).attach(engine)
        ResumeCheckpoint(self.checkpoint, lr_scheduler=self.lr_scheduler, validator=self.validator, resume=self.resume).attach(engine)


class ValidationRoutine:
    """Attach to an evaluator the handlers every bundle's validation runs: its metrics on the console and in
    TensorBoard (rank 0), and the network of the best epoch saved to ``best`` (atomically, rank 0).

    Args:
        best: the best network's file (``models/model.pt``), compared by the evaluator's key metric.
        log_dir: TensorBoard's folder.
        serve: where ``best`` is not the file inference reads (a fold's network, a part of one), the checkpoint
            inference reads is written after each new best: a path gets a copy of the best network; a callable
            (:class:`~strokezoo.networks.ServedEnsemble`) writes it.
    """

    def __init__(self, best: str | os.PathLike, log_dir: str | os.PathLike | None = None, serve: str | os.PathLike | Callable[[], Any] | None = None) -> None:
        self.best = best
        self.log_dir = log_dir
        self.serve = serve

    def attach(self, engine: Engine) -> None:
        if is_rank0():
            StatsHandler(iteration_log=False).attach(engine)
        if isinstance(self.serve, (str, os.PathLike)):
            SaveBestNetwork(self.serve).attach(engine)
        SaveBestNetwork(self.best, then=self.serve if callable(self.serve) else None).attach(engine)
        if is_rank0() and self.log_dir is not None:
            TensorBoardStatsHandler(log_dir=str(self.log_dir), iteration_log=False).attach(engine)


class InferenceRoutine:
    """Attach to an inference evaluator the trained network's weights, loaded when the run starts onto
    ``map_location`` (MONAI's ``CheckpointLoader``, key ``model``), and its figures on the console.

    Args:
        checkpoint: the weights' file; or, for a network trained in parts, a mapping from each part (an attribute
            of the network, e.g. ``{"transformer": ..., "unet": ...}``) to its file.
        map_location: the device the weights load onto.
    """

    def __init__(self, checkpoint: str | os.PathLike | Mapping[str, str | os.PathLike], map_location: Any = None) -> None:
        self.checkpoint = checkpoint
        self.map_location = map_location

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.load)
        StatsHandler(iteration_log=False).attach(engine)

    def load(self, engine: Engine) -> None:
        """Load the weights into the engine's network (set after its handlers are attached)."""
        network = engine.network  # type: ignore[attr-defined]
        parts = self.checkpoint.items() if isinstance(self.checkpoint, Mapping) else [(None, self.checkpoint)]
        for part, path in parts:
            module = network if part is None else getattr(network, part)
            CheckpointLoader(load_path=str(path), load_dict={"model": module}, map_location=self.map_location)(engine)
