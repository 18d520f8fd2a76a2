"""Multi-segmentation loss (Gómez et al., MICCAI 2023, Sec. 2.2, Eq. 1).

``L = FL_C(Ŷ_ADC, Y_ADC) + FL_C(Ŷ_DWI, Y_DWI)``: one loss per output, each against its own annotation,
summed. In the paper the per-output loss is the focal loss (γ = 2, α = 0.25) weighted by class-weight maps
``C`` (1 non-lesion, 3 lesion): :class:`~strokezoo.losses.ClassWeightMapLoss` around MONAI's ``FocalLoss``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MultiSegmentationLoss"]


class MultiSegmentationLoss(nn.Module):
    """Sum over channels ``c`` of ``loss(input[:, c], target[:, c])``: one binary segmentation per channel.

    Args:
        loss: the per-output loss; it receives ``(B, 1, *spatial)`` logits and the matching target channel.
    """

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if input.shape[1] != target.shape[1]:
            raise ValueError(f"{input.shape[1]} outputs but {target.shape[1]} target channels: one annotation per output is needed")
        return sum(self.loss(input[:, c : c + 1], target[:, c : c + 1]) for c in range(input.shape[1]))
