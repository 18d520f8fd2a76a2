"""The engine of every bundle's ``inference.json``, written once for all six.

:class:`Inference` is MONAI's ``SupervisedEvaluator`` that loads the cases one at a time, in order, and attaches
:class:`~strokezoo.engines.InferenceRoutine` (the trained weights, loaded before the first case with
``weights_only``; the run's figures on the console). The config states the dataset, network, inferer,
post-processing and checkpoint, and no loader or handler of its own. ``handlers`` stays a list of further handlers (the
engine's ``val_handlers``), where MONAI's experiment tracking adds its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from monai.data import DataLoader
from monai.engines import SupervisedEvaluator
from torch.utils.data import Dataset

from .routine import InferenceRoutine
from .stage import device_of

__all__ = ["Inference"]


class Inference(SupervisedEvaluator):
    """``SupervisedEvaluator`` over ``dataset``, one case at a time in order, with the trained weights loaded from
    ``checkpoint`` when the run starts.

    Args:
        dataset: the cases (``dataset``: the usable ones of the run's input check).
        checkpoint: the weights' file, or for a network trained in parts a mapping from each part to its file
            (:class:`~strokezoo.engines.InferenceRoutine`).
        num_workers: the loader's worker processes.
        val_handlers: further handlers (``handlers``), attached after the routine.
        All other arguments are ``SupervisedEvaluator``'s (``network``, ``inferer``, ``postprocessing``, ...);
        ``device`` defaults to the network's, and the weights load onto it.
    """

    def __init__(
        self,
        dataset: Dataset,
        checkpoint: str | os.PathLike | Mapping[str, str | os.PathLike],
        num_workers: int = 0,
        val_handlers: Sequence = (),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("device", device_of(kwargs["network"]))
        routine = InferenceRoutine(checkpoint, map_location=kwargs["device"])
        loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=num_workers)
        super().__init__(val_data_loader=loader, val_handlers=[routine, *val_handlers], **kwargs)
