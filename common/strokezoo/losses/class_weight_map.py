"""Class-weight maps (Gómez 2023, Sec. 4.3): a per-pixel weight taken from the reference label.

``L(y, ŷ, w) = s/(H·W) Σ_ij w_ij ℓ_ij`` with ``w_ij = C[y_ij]``, the weight of the pixel's class, ``ℓ_ij`` any
per-pixel loss (focal loss for the binary MRI model, cross-entropy for the three-class CT model) and ``s`` a
constant factor (1, or the α of Gómez et al., MICCAI 2023, Eq. 1, which multiplies every term alike).
MONAI's losses take per-class weights only in their own ways (``FocalLoss(alpha=…)`` for the sigmoid case,
``weight=`` inside the focal term), so the map multiplies the unreduced loss here, exactly as the equation
reads, whatever the base loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["class_weight_map", "ClassWeightMapLoss"]


def class_weight_map(label: torch.Tensor, class_weights: Sequence[float]) -> torch.Tensor:
    """Weight of every pixel: ``class_weights[class of the pixel]``.

    Args:
        label: ``(B, 1, *spatial)`` class indices (a binary mask is classes 0 and 1), or ``(B, C, *spatial)``
            one-hot with ``C == len(class_weights)``.
        class_weights: one weight per class, background first.

    Returns:
        ``(B, 1, *spatial)`` float weights on ``label``'s device.
    """
    w = torch.as_tensor(class_weights, dtype=torch.float32, device=label.device)
    if label.shape[1] == 1:
        index = label.round().long()
        if index.min() < 0 or index.max() >= len(w):
            raise ValueError(f"label holds classes {index.unique().tolist()}, but {len(w)} class weights were given")
        return w[index]
    if label.shape[1] != len(w):
        raise ValueError(f"one-hot label has {label.shape[1]} channels, but {len(w)} class weights were given")
    return (label.float() * w.view(1, -1, *([1] * (label.ndim - 2)))).sum(dim=1, keepdim=True)


class ClassWeightMapLoss(nn.Module):
    """A per-pixel loss weighted by the class-weight map of the target, then averaged over pixels.

    Args:
        loss: a loss built with ``reduction="none"`` that returns ``(B, C, *spatial)`` element losses
            (e.g. ``monai.losses.FocalLoss(reduction="none")``); channels are summed into the pixel's loss,
            which for a one-hot softmax loss is the loss of the pixel's own class.
        class_weights: one weight per class, background first (thesis: ``[0.3, 0.7]`` on MRI,
            ``[0.7, 2.0, 7.0]`` background / lesion / boundary on CT). ``None`` averages unweighted: the
            "U-Net" row of the ablation.
        scale: a constant factor on every pixel's loss. Eq. 1 of the MICCAI paper writes the focal loss's α as
            one factor on every term, so there α goes here and the base focal loss has none: MONAI's
            ``FocalLoss(alpha=0.25)`` would weigh lesion pixels 0.25 and background 0.75, undoing C = [1, 3].
    """

    def __init__(self, loss: nn.Module, class_weights: Sequence[float] | None = None, scale: float = 1.0) -> None:
        super().__init__()
        self.loss = loss
        self.class_weights = None if class_weights is None else [float(c) for c in class_weights]
        self.scale = float(scale)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        element = self.loss(input, target)
        if element.shape[0] != input.shape[0] or element.ndim != input.ndim:
            raise ValueError(f"the base loss must return unreduced (B, C, ...) losses, got shape {tuple(element.shape)}")
        pixel = element.sum(dim=1, keepdim=True) * self.scale
        if self.class_weights is None:
            return pixel.mean()
        return (class_weight_map(target, self.class_weights) * pixel).mean()
