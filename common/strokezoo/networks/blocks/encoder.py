"""The contracting path shared by the strokezoo U-Nets: levels of conv blocks separated by 2× max-pooling.

Level ``i`` is a block of two (3×3 conv, norm, act) units with ``features[i]`` channels: MONAI's
``UnetBasicBlock``, or ``UnetResBlock`` (the same two units with an identity or 1×1 projection shortcut)
for the residual blocks of Gómez et al., MICCAI 2023, Sec. 2.3. The last level is the bottleneck.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import UnetBasicBlock, UnetResBlock
from monai.networks.layers.factories import Pool
from torch import nn

__all__ = ["UNetEncoder", "conv_block"]


def conv_block(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    residual: bool,
    norm: str | tuple,
    act: str | tuple,
    dropout: float | tuple | None,
) -> nn.Module:
    """Two (3×3 conv, norm, act) units, plain (``UnetBasicBlock``) or with a shortcut (``UnetResBlock``)."""
    block = UnetResBlock if residual else UnetBasicBlock
    return block(spatial_dims, in_channels, out_channels, kernel_size=3, stride=1, norm_name=norm, act_name=act, dropout=dropout)


class UNetEncoder(nn.Module):
    """Encoder of ``len(features)`` levels; ``forward`` returns every level's output, the bottleneck last.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        features: channels per level, first level to bottleneck.
        residual: residual blocks (``UnetResBlock``) instead of plain ones (``UnetBasicBlock``).
        norm, act, dropout: of every conv unit (MONAI factory names or tuples).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        features: Sequence[int],
        residual: bool = False,
        norm: str | tuple = "batch",
        act: str | tuple = "relu",
        dropout: float | tuple | None = None,
    ) -> None:
        super().__init__()
        self.features = tuple(int(f) for f in features)
        widths = (in_channels, *self.features[:-1])
        self.blocks = nn.ModuleList(conv_block(spatial_dims, c, f, residual, norm, act, dropout) for c, f in zip(widths, self.features))
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2)

    def level(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Level ``i`` applied to the previous level's output ``h`` (pooled first, except at level 0)."""
        return self.blocks[i](self.pool(h) if i else h)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i in range(len(self.blocks)):
            x = self.level(i, x)
            outs.append(x)
        return outs
