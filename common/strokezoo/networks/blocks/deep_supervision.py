"""Deep-supervision head (Gómez 2023, Sec. 4.2): a decoder level's lesion estimate at full resolution.

The thesis upsamples the decoder features bilinearly to the input size and then applies a 1×1 convolution.
Bilinear interpolation and a 1×1 convolution are both linear and act on different axes (space, channels),
and interpolation weights sum to one, so they commute exactly (bias included). The head convolves first
and upsamples the few output channels, which gives the same numbers without materialising, e.g., 1024
feature maps at 224×224. The activation (sigmoid or softmax) is left to the loss and the post-processing,
as MONAI networks do, so the head returns logits.
"""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Conv
from torch import nn
from torch.nn import functional as F

__all__ = ["DeepSupervisionHead"]


class DeepSupervisionHead(nn.Module):
    """1×1 convolution to ``out_channels`` followed by bilinear upsampling to a given size.

    Args:
        spatial_dims: 2 or 3 (bilinear or trilinear upsampling).
        in_channels: channels of the decoder level.
        out_channels: classes of the estimate (1 for a sigmoid output, ≥2 for softmax).
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = Conv[Conv.CONV, spatial_dims](in_channels, out_channels, kernel_size=1)
        self.mode = "bilinear" if spatial_dims == 2 else "trilinear"

    def forward(self, x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
        y = self.conv(x)
        if tuple(y.shape[2:]) == tuple(size):
            return y
        return F.interpolate(y, size=size, mode=self.mode, align_corners=False)
