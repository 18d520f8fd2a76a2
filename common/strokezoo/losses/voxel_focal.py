"""The focal loss of Clèrigues et al., CMPB 2020, Eq. 1, averaged over voxels.

``FL(p_t) = -α_t (1 - p_t)^γ log(p_t)`` is one term per voxel, for its true class ``t``. MONAI's ``FocalLoss``
keeps one term per class channel (zero for the classes a voxel is not) and its ``"mean"`` reduction also averages
over those channels, which scales Eq. 1 by 1 / classes: 0.5 for the paper's two classes. The scale matters with
Adadelta, whose step depends on the gradient's size against its ε.
"""

from __future__ import annotations

import torch
from monai.losses import FocalLoss

__all__ = ["VoxelFocalLoss"]


class VoxelFocalLoss(FocalLoss):
    """Eq. 1 summed over the class channels of each voxel, then averaged over the voxels (and the batch).

    Takes ``FocalLoss``'s arguments except ``reduction``; with one-hot targets and ``use_softmax=True``, each
    voxel's sum over channels is exactly its true class's ``-α_t (1 - p_t)^γ log(p_t)``.
    """

    def __init__(self, **kwargs) -> None:
        if "reduction" in kwargs:
            raise ValueError("VoxelFocalLoss averages over voxels; it takes no reduction")
        super().__init__(reduction="none", **kwargs)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().forward(input, target).sum(dim=1).mean()
