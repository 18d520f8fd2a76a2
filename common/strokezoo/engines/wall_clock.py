"""A wall-clock budget for a trainer: the comparison's ``--minutes``."""

from __future__ import annotations

import time

from ignite.engine import Engine, Events

__all__ = ["WallClockBudget"]


class WallClockBudget:
    """Stop ``engine`` at the end of the first epoch that ends ``seconds`` or more after its run started.

    Attach it after the engine's own handlers: those of the last epoch (its validation, its checkpoints) run first.
    ``epochs`` afterwards is the number of epochs the engine completed."""

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"a budget of {seconds} s leaves no time to train")
        self.seconds = float(seconds)
        self.epochs = 0
        self._start = 0.0

    def attach(self, engine: Engine) -> WallClockBudget:
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)
        return self

    def _started(self, engine: Engine) -> None:
        self._start = time.perf_counter()

    def _epoch_completed(self, engine: Engine) -> None:
        self.epochs += 1
        if time.perf_counter() - self._start >= self.seconds:
            engine.terminate()
