"""Ensemble of the cross-validation fold models (Clèrigues et al., CMPB 2020, Sec. 4.2): the four networks
trained in 4-fold cross-validation predict every test patch and their class probabilities are averaged.

The ensemble returns the logarithm of the mean softmax probability, so that it is a drop-in network that
outputs logits: a softmax of its output gives exactly the averaged probabilities. Its state dict holds every
fold's parameters (``folds.<k>.…``), one checkpoint for the bundle; :meth:`FoldEnsemble.state_dict_from_folds`
builds it from the fold checkpoints.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["FoldEnsemble", "write_fold_ensemble"]


class FoldEnsemble(nn.Module):
    """``log(mean_k softmax(net_k(x)))`` over ``num_folds`` copies of ``network``.

    Args:
        network: the architecture of one fold model (copied ``num_folds`` times).
        num_folds: number of fold models (paper: 4).
    """

    def __init__(self, network: nn.Module, num_folds: int = 4) -> None:
        super().__init__()
        if num_folds < 1:
            raise ValueError(f"num_folds must be at least 1, got {num_folds}")
        self.folds = nn.ModuleList(copy.deepcopy(network) for _ in range(num_folds))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.stack([torch.softmax(net(x), dim=1) for net in self.folds]).mean(0)
        return torch.log(mean.clamp_min(torch.finfo(mean.dtype).tiny))

    @staticmethod
    def state_dict_from_folds(paths: Sequence[str | os.PathLike]) -> dict[str, torch.Tensor]:
        """The ensemble's state dict from one plain state-dict checkpoint per fold (loaded with weights_only)."""
        state = {}
        for k, path in enumerate(paths):
            for name, value in torch.load(path, map_location="cpu", weights_only=True).items():
                state[f"folds.{k}.{name}"] = value
        return state


def write_fold_ensemble(fold_checkpoints: Sequence[str | os.PathLike], out: str | os.PathLike) -> str:
    """Write the :class:`FoldEnsemble` checkpoint of the given fold checkpoints to ``out`` (atomically); returns it."""
    from ..data.atomic import atomic_path

    missing = [str(p) for p in fold_checkpoints if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"fold checkpoints missing (train those folds first): {missing}")
    with atomic_path(out) as tmp:
        torch.save(FoldEnsemble.state_dict_from_folds(fold_checkpoints), tmp)
    return str(out)
