"""The expanding path shared by the strokezoo U-Nets, with an additive cross-attention gate on each skip.

Each level upsamples ×2 (bilinear or trilinear), applies one (3×3 conv, norm, act) unit to reach the skip's
width, gates the skip with :class:`~.cross_attention.CrossAttentionGate` (the decoder feature, already at
the skip's resolution, is ``X_d``; Gómez 2023, Sec. 4.1 / Gómez et al., MICCAI 2023, Sec. 2.1), concatenates
``[decoder, gated skip]`` and applies a block. Without ``cross_attention`` the skip is concatenated as is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution, UpSample
from torch import nn

from .cross_attention import CrossAttentionGate
from .encoder import conv_block

__all__ = ["CrossAttentionDecoder"]


class CrossAttentionDecoder(nn.Module):
    """Decoder over skips of widths ``features`` (finest first) from an input of ``in_channels``.

    ``forward(x, skips)`` returns the output of every level, coarsest first; the last is at the finest
    skip's resolution with ``features[0]`` channels.

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels of the decoder's input (the bottleneck, or several bottlenecks concatenated).
        features: channels of the skips, finest level first (the encoder's ``features`` without the bottleneck).
        cross_attention: gate every skip.
        residual: residual blocks after the concatenation (``UnetResBlock``) instead of plain ones.
        norm, act, dropout: of every conv unit.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        features: Sequence[int],
        cross_attention: bool = True,
        residual: bool = False,
        norm: str | tuple = "batch",
        act: str | tuple = "relu",
        dropout: float | tuple | None = None,
    ) -> None:
        super().__init__()
        self.features = tuple(int(f) for f in features)
        coarser = (*self.features[1:], in_channels)
        self.up = UpSample(spatial_dims, scale_factor=2, mode="nontrainable", interp_mode="bilinear" if spatial_dims == 2 else "trilinear", align_corners=False)
        self.up_conv = nn.ModuleList(
            Convolution(spatial_dims, c, f, kernel_size=3, norm=norm, act=act, dropout=dropout) for c, f in zip(coarser, self.features)
        )
        self.gates = nn.ModuleList(CrossAttentionGate(spatial_dims, f, f) for f in self.features) if cross_attention else None
        self.blocks = nn.ModuleList(conv_block(spatial_dims, 2 * f, f, residual, norm, act, dropout) for f in self.features)

    def forward(self, x: torch.Tensor, skips: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(skips) != len(self.blocks):
            raise ValueError(f"expected {len(self.blocks)} skips, got {len(skips)}")
        outs = []
        for i in reversed(range(len(self.blocks))):
            d = self.up_conv[i](self.up(x))
            s = self.gates[i](skips[i], d) if self.gates is not None else skips[i]
            x = self.blocks[i](torch.cat([d, s], dim=1))
            outs.append(x)
        return outs
