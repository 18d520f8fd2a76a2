"""Hand the trainer to handlers that run on the validator but stop the trainer (MONAI's ``EarlyStopHandler``).

Such a handler sits in the validator's handlers and needs the trainer, while the trainer's own validation handler
needs the validator: wiring the trainer into the handler's constructor would make the config circular. Listed in
the trainer's handlers, :class:`HandTrainer` passes the trainer to each of ``handlers`` (``set_trainer``) as the
trainer is built, so the config names the early stopping by id and no ``run`` or ``initialize`` line is needed
(an override of ``run``, as the multi-GPU test's, keeps it).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["HandTrainer"]


class HandTrainer:
    """``attach(trainer)`` calls ``handler.set_trainer(trainer)`` for each of ``handlers``."""

    def __init__(self, handlers: Sequence) -> None:
        missing = [type(h).__name__ for h in handlers if not callable(getattr(h, "set_trainer", None))]
        if missing:
            raise TypeError(f"handlers without set_trainer(): {missing}")
        self.handlers = list(handlers)

    def attach(self, trainer) -> None:
        for handler in self.handlers:
            handler.set_trainer(trainer)
