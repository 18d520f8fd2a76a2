"""The asymmetric residual 3D U-Net of Clèrigues et al., CMPB 2020 (Sec. 3.2, Fig. 2).

Four resolution steps with 32, 64, 128 and 256 channels. Encoder levels are residual blocks of two
pre-activation units (BN, PReLU, 3×3×3 conv); decoder levels are residual blocks of one unit, which puts
about 75 % of the parameters in the encoder and 25 % in the decoder (the asymmetry of the paper).
Downsampling concatenates a 2×2×2 max-pooling of the features with a stride-2 convolution of them (Szegedy
et al.), doubling the channels; upsampling is a stride-2 transposed convolution; the long skips are added to
the upsampled features, not concatenated. Dropout (channel-wise) regularises the three deeper encoder levels.
The output is two-class logits (healthy, lesion); the softmax is left to the loss and post-processing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import ADN
from monai.networks.layers.factories import Conv, Pool
from torch import nn

__all__ = ["AsymmetricResidualUNet", "PreActivationUnit"]


class PreActivationUnit(nn.Sequential):
    """``norm → act → (dropout) → conv``: the unit of the residual blocks (He et al.'s pre-activation order).

    Args:
        spatial_dims: 2 or 3.
        in_channels, out_channels: of the convolution.
        kernel_size: of the convolution (padding keeps the size).
        norm, act: MONAI factory names or tuples (paper: batch norm, PReLU).
        dropout: channel-wise dropout probability before the convolution, or None.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        norm: str | tuple = "batch",
        act: str | tuple = "prelu",
        dropout: float | None = None,
    ) -> None:
        super().__init__(
            ADN(ordering="NAD", in_channels=in_channels, act=act, norm=norm, norm_dim=spatial_dims, dropout=dropout, dropout_dim=spatial_dims),
            Conv[Conv.CONV, spatial_dims](in_channels, out_channels, kernel_size=kernel_size, padding=kernel_size // 2),
        )


class _ResidualBlock(nn.Module):
    """``x + units(x)`` with ``n_units`` pre-activation units of constant width."""

    def __init__(self, spatial_dims: int, channels: int, n_units: int, norm, act, dropout: float | None) -> None:
        super().__init__()
        self.units = nn.Sequential(*(PreActivationUnit(spatial_dims, channels, channels, 3, norm, act, dropout) for _ in range(n_units)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.units(x)


class _Downsample(nn.Module):
    """``concat(max-pool(x), stride-2 conv(x))``: ``c`` channels in, ``2c`` out, half the size."""

    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2)
        self.conv = Conv[Conv.CONV, spatial_dims](channels, channels, kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.pool(x), self.conv(x)], dim=1)


class AsymmetricResidualUNet(nn.Module):
    """Residual U-Net with two-unit encoder blocks, one-unit decoder blocks and additive long skips.

    Args:
        spatial_dims: 3 in the paper (2 also works).
        in_channels: number of input channels (modalities, with their symmetric copies: SISS 8, SPES 14).
        out_channels: classes (2: healthy, lesion).
        base_features: channels of the first level; each downsampling doubles them (paper: 32).
        levels: resolution steps (paper: 4), so inputs must be divisible by ``2 ** (levels - 1)``.
        dropout: channel-wise dropout in the encoder levels listed in ``dropout_levels``.
        dropout_levels: 0-based encoder levels with dropout (the authors' code: the three deeper ones).
        encoder_units, decoder_units: pre-activation units per residual block (paper: 2 and 1).
        norm, act: of every unit (paper: batch norm, PReLU).
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 8,
        out_channels: int = 2,
        base_features: int = 32,
        levels: int = 4,
        dropout: float = 0.2,
        dropout_levels: Sequence[int] = (1, 2, 3),
        encoder_units: int = 2,
        decoder_units: int = 1,
        norm: str | tuple = "batch",
        act: str | tuple = "prelu",
    ) -> None:
        super().__init__()
        if levels < 2:
            raise ValueError(f"levels must be at least 2, got {levels}")
        self.features = tuple(base_features * 2**i for i in range(levels))
        conv = Conv[Conv.CONV, spatial_dims]
        self.input_conv = conv(in_channels, base_features, kernel_size=3, padding=1)
        self.encoder = nn.ModuleList(
            _ResidualBlock(spatial_dims, f, encoder_units, norm, act, dropout if i in dropout_levels else None) for i, f in enumerate(self.features)
        )
        self.down = nn.ModuleList(_Downsample(spatial_dims, f) for f in self.features[:-1])
        # 3x3x3 transposed convolutions (stride 2): with them the encoder holds ~75 % of the parameters
        self.up = nn.ModuleList(Conv[Conv.CONVTRANS, spatial_dims](2 * f, f, kernel_size=3, stride=2, padding=1, output_padding=1) for f in self.features[:-1])
        self.decoder = nn.ModuleList(_ResidualBlock(spatial_dims, f, decoder_units, norm, act, None) for f in self.features[:-1])
        self.head = PreActivationUnit(spatial_dims, base_features, out_channels, kernel_size=1, norm=norm, act=act)
        self.divisor = 2 ** (levels - 1)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Parameters of the contracting path (input convolution, encoder blocks, downsampling)."""
        return [*self.input_conv.parameters(), *self.encoder.parameters(), *self.down.parameters()]

    def decoder_parameters(self) -> list[nn.Parameter]:
        """Parameters of the expanding path (transposed convolutions, decoder blocks, output head)."""
        return [*self.up.parameters(), *self.decoder.parameters(), *self.head.parameters()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(s % self.divisor for s in x.shape[2:]):
            raise ValueError(f"input size {tuple(x.shape[2:])} must be divisible by {self.divisor} ({len(self.features)} levels)")
        h = self.input_conv(x)
        skips = []
        for i, block in enumerate(self.encoder):
            h = block(self.down[i - 1](h) if i else h)
            skips.append(h)
        for i in reversed(range(len(self.decoder))):
            h = self.decoder[i](self.up[i](h) + skips[i])
        return self.head(h)
