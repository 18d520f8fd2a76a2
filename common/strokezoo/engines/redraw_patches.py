"""New training patches every epoch, for methods whose paper draws them at random during training."""

from __future__ import annotations

from typing import Protocol

from ignite.engine import Engine, Events

__all__ = ["RedrawPatches"]


class _EpochDataset(Protocol):
    def set_epoch(self, epoch: int) -> None: ...


class RedrawPatches:
    """Handler: calls ``dataset.set_epoch(epoch)`` as each epoch of the trainer starts (before its data loader is
    iterated), e.g. :meth:`strokezoo.data.patches.BalancedPatchDataset.set_epoch`, which draws that epoch's patch
    centres on the cached volumes. The epoch, not a running count, picks the draw, so a resumed run continues with
    the patches it would have had."""

    def __init__(self, dataset: _EpochDataset) -> None:
        self.dataset = dataset

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        self.dataset.set_epoch(engine.state.epoch)
