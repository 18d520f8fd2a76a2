"""A training stage's two engines, as every bundle's ``train.json`` builds them: written once for all six.

:class:`Trainer` is MONAI's ``SupervisedTrainer`` that loads its own batches (shuffled, the last incomplete batch
dropped; under DDP each rank draws its shard and ``batch_size / ranks`` samples, so that one optimiser step sees the
paper's batch) and attaches :class:`~strokezoo.engines.TrainingRoutine`. :class:`Validator` is MONAI's
``SupervisedEvaluator`` that loads the cases in order (each rank its share under DDP), scores the Dice of ``pred``
and ``label`` unless the bundle names its own metric, and attaches :class:`~strokezoo.engines.ValidationRoutine`.

A bundle's config then states what its paper sets (the datasets, network, loss, optimiser, schedule, inferers,
post-processing), where the run keeps its files, and the engines' arguments, but no loader and no handler of the
routines. The MONAI ids that MONAI Label and the
bundle contract rely on stay: ``train#trainer#max_epochs``, ``train#dataset#data``, ``train#handlers`` (a list of
further handlers, where MONAI Label adds its ``CheckpointLoader``), ``validate#dataset#data``, ``validate#evaluator``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from monai.data import DataLoader, DistributedSampler
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import MeanDice, from_engine
from torch.utils.data import Dataset

from .distributed import per_rank_batch
from .routine import TrainingRoutine, ValidationRoutine

__all__ = ["Trainer", "Validator", "device_of"]


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _loader(dataset: Dataset, batch_size: int, num_workers: int, train: bool) -> DataLoader:
    """Batches of ``dataset``: for training shuffled with the incomplete last batch dropped, for validation in order;
    under DDP each rank loads its own shard (validation: every case once over the ranks) and a training batch is
    shared by the ranks."""
    sampler = DistributedSampler(dataset, shuffle=train, even_divisible=train) if _distributed() else None
    return DataLoader(
        dataset,
        batch_size=per_rank_batch(batch_size) if train else batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        drop_last=train,
        num_workers=num_workers,
    )


def device_of(network: torch.nn.Module) -> torch.device:
    """Where ``network``'s parameters are: the engines run there unless a ``device`` is given."""
    return next(network.parameters()).device


class Trainer(SupervisedTrainer):
    """``SupervisedTrainer`` over ``dataset`` in batches of ``batch_size`` (the global batch of one optimiser step),
    with the bundles' training routine: the learning-rate step, validation every ``val_interval`` epochs, logs
    (``log_dir``), progress bar, and the resumable state ``checkpoint``.

    Args:
        dataset: the training samples (``train#dataset``).
        batch_size: samples per optimiser step, over all ranks under DDP (a batch the ranks cannot share equally is
            refused: :func:`~strokezoo.engines.per_rank_batch`).
        checkpoint: the resumable training state's file, saved after every epoch (``models/last.pt``).
        validator: the stage's :class:`Validator` (``validate#evaluator``); ``None``: no validation.
        log_dir: TensorBoard's folder.
        lr_scheduler: stepped once per epoch before validation; ``None`` for a constant rate.
        resume: start after the epoch saved in ``checkpoint`` when it exists.
        val_interval: epochs between validations.
        progress_bar: ignite's progress bar over each epoch (rank 0).
        num_workers: the loader's worker processes.
        train_handlers: further handlers (``train#handlers``), attached after the routine.
        All other arguments are ``SupervisedTrainer``'s (``max_epochs``, ``network``, ``optimizer``,
        ``loss_function``, ``inferer``, ``prepare_batch``, ``amp``, ...); ``device`` defaults to the network's.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        checkpoint: str | os.PathLike,
        validator: SupervisedEvaluator | None = None,
        log_dir: str | os.PathLike | None = None,
        lr_scheduler: Any | None = None,
        resume: bool = False,
        val_interval: int = 1,
        progress_bar: bool = True,
        num_workers: int = 0,
        train_handlers: Sequence = (),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("device", device_of(kwargs["network"]))
        routine = TrainingRoutine(
            validator,
            checkpoint=checkpoint,
            resume=resume,
            log_dir=log_dir,
            lr_scheduler=lr_scheduler,
            val_interval=val_interval,
            progress_bar=progress_bar,
        )
        super().__init__(train_data_loader=_loader(dataset, batch_size, num_workers, train=True), train_handlers=[routine, *train_handlers], **kwargs)


class Validator(SupervisedEvaluator):
    """``SupervisedEvaluator`` over ``dataset``, one case at a time, with the bundles' validation routine: the
    metrics on the console and in TensorBoard (``log_dir``), the best network saved to ``best``.
    Validation runs in ``dataset``'s order, under DDP every case once over the ranks.

    Args:
        dataset: the validation cases (``validate#dataset``).
        best: the best network's file (``models/model.pt``).
        log_dir: TensorBoard's folder.
        key_val_metric: the metric that picks the best network (default: ``val_mean_dice``, MONAI's ``MeanDice`` of
            ``pred`` and ``label`` with the background channel included, as a one-channel lesion mask needs).
        serve: passed to :class:`~strokezoo.engines.ValidationRoutine`.
        batch_size: cases (or patches) per validation step.
        num_workers: the loader's worker processes.
        val_handlers: further handlers (``validate#handlers``), attached after the routine.
        All other arguments are ``SupervisedEvaluator``'s (``network``, ``device``, ``inferer``, ``postprocessing``,
        ``additional_metrics``, ``metric_cmp_fn``, ``amp``, ...); ``device`` defaults to the network's.
    """

    def __init__(
        self,
        dataset: Dataset,
        best: str | os.PathLike,
        log_dir: str | os.PathLike | None = None,
        key_val_metric: dict | None = None,
        serve: str | os.PathLike | Callable[[], Any] | None = None,
        batch_size: int = 1,
        num_workers: int = 0,
        val_handlers: Sequence = (),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("device", device_of(kwargs["network"]))
        if key_val_metric is None:
            key_val_metric = {"val_mean_dice": MeanDice(include_background=True, output_transform=from_engine(["pred", "label"]))}
        routine = ValidationRoutine(best, log_dir=log_dir, serve=serve)
        super().__init__(
            val_data_loader=_loader(dataset, batch_size, num_workers, train=False),
            key_val_metric=key_val_metric,
            val_handlers=[routine, *val_handlers],
            **kwargs,
        )
