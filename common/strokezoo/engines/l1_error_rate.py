"""Early-stopping criterion of Clèrigues et al., CMPB 2020 (Sec. 3.4): L1 loss + error rate on validation patches.

``L1`` is the mean absolute difference between the predicted lesion probability and the reference (0/1);
the error rate is the fraction of voxels whose most probable class is wrong. Lower is better, so an
evaluator using it as key metric needs ``metric_cmp_fn=lambda current, prev: current < prev`` and an early
stopping score of its negative.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced, sync_all_reduce

__all__ = ["L1ErrorRate"]


class L1ErrorRate(Metric):
    """Ignite metric: mean |p_lesion − y| + mean [argmax p ≠ y] over all validation voxels.

    ``update`` takes ``(y_pred, y)``: class probabilities ``(B, C, ...)`` (or a list of ``(C, ...)``, as MONAI's
    decollated engine output gives) and class-index labels ``(B, 1, ...)``; the lesion is class ``C - 1``.
    """

    def __init__(self, output_transform: Callable = lambda x: x, device: str | torch.device = "cpu") -> None:
        super().__init__(output_transform=output_transform, device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        self._l1 = torch.tensor(0.0, dtype=torch.float64, device=self._device)
        self._errors = torch.tensor(0.0, dtype=torch.float64, device=self._device)
        self._count = torch.tensor(0.0, dtype=torch.float64, device=self._device)

    @reinit__is_reduced
    def update(self, output: Sequence) -> None:
        y_pred, y = output
        if isinstance(y_pred, (list, tuple)):
            y_pred, y = torch.stack(list(y_pred)), torch.stack(list(y))
        y = y[:, 0].long()
        self._l1 += (y_pred[:, -1].double() - y.double()).abs().sum().to(self._device)
        self._errors += (y_pred.argmax(1) != y).sum().double().to(self._device)
        self._count += float(y.numel())

    @sync_all_reduce("_l1", "_errors", "_count")
    def compute(self) -> float:
        if self._count == 0:
            raise ValueError("L1ErrorRate needs at least one validation voxel")
        return float((self._l1 + self._errors) / self._count)
