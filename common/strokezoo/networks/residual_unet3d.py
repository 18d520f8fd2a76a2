"""The asymmetric residual 3D U-Net of Clèrigues et al., CMPB 2020 (Sec. 3.2, Fig. 2).

Four resolution steps with 32, 64, 128 and 256 channels. Encoder levels are residual blocks of two
pre-activation units (BN, PReLU, 3×3×3 conv); decoder levels are residual blocks of one unit, which puts
about 75 % of the parameters in the encoder and 25 % in the decoder (the asymmetry of the paper).
Downsampling concatenates a 2×2×2 max-pooling of the features with a stride-2 convolution of them (Szegedy
et al.), doubling the channels; upsampling is a stride-2 transposed convolution; the long skips are added to
the upsampled features, not concatenated. The output is two-class logits (healthy, lesion); the softmax is left
to the loss and post-processing.

Where the paper is silent, the network follows the authors' released code (``SUNETx4``): one channel-wise
dropout between the two units of each of the three deeper encoder blocks; the strided convolution of the
downsampling step is itself pre-activated (BN → PReLU → conv, beside a max-pool of the raw features); the head
is a single 3×3×3 convolution; PReLU has one slope per channel, initialised at 0; batch norm has momentum 0.01
and eps 1e-3.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import ADN
from monai.networks.layers.factories import Conv, Dropout, Pool
from torch import nn

__all__ = ["AsymmetricResidualUNet", "PreActivationUnit"]

#: batch norm of the authors' code (PyTorch's defaults are momentum 0.1, eps 1e-5)
AUTHORS_NORM = ("batch", {"momentum": 0.01, "eps": 1e-3})
#: PReLU of the authors' code: one slope per channel, initialised at 0 (PyTorch's default: one slope, 0.25)
AUTHORS_ACT = ("prelu", {"init": 0.0})


def _per_channel(act: str | tuple, channels: int) -> str | tuple:
    """``act`` with one PReLU slope per channel, unless it names its own ``num_parameters``."""
    name, args = (act, {}) if isinstance(act, str) else (act[0], dict(act[1]) if len(act) > 1 else {})
    if name.lower() != "prelu" or "num_parameters" in args:
        return act
    return (name, {**args, "num_parameters": channels})


class PreActivationUnit(nn.Sequential):
    """``norm → act → conv``: the unit of the residual blocks (He et al.'s pre-activation order).

    Args:
        spatial_dims: 2 or 3.
        in_channels, out_channels: of the convolution.
        kernel_size: of the convolution (padding keeps the size).
        stride: of the convolution (2: the downsampling step's convolution).
        norm, act: MONAI factory names or tuples (paper: batch norm, PReLU); a PReLU gets one slope per input
            channel unless ``act`` sets ``num_parameters``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        norm: str | tuple = AUTHORS_NORM,
        act: str | tuple = AUTHORS_ACT,
        stride: int = 1,
    ) -> None:
        super().__init__(
            ADN(ordering="NA", in_channels=in_channels, act=_per_channel(act, in_channels), norm=norm, norm_dim=spatial_dims),
            Conv[Conv.CONV, spatial_dims](in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=kernel_size // 2),
        )


class _ResidualBlock(nn.Module):
    """``x + units(x)``: ``n_units`` pre-activation units of constant width, with channel-wise dropout between
    consecutive units when ``dropout`` is set."""

    def __init__(self, spatial_dims: int, channels: int, n_units: int, norm, act, dropout: float | None) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(n_units):
            if i and dropout:
                layers.append(Dropout[Dropout.DROPOUT, spatial_dims](dropout))
            layers.append(PreActivationUnit(spatial_dims, channels, channels, 3, norm, act))
        self.units = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.units(x)


class _Downsample(nn.Module):
    """``concat(max-pool(x), conv(act(norm(x))))`` with a stride-2 convolution: ``c`` channels in, ``2c`` out,
    half the size."""

    def __init__(self, spatial_dims: int, channels: int, norm, act) -> None:
        super().__init__()
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2)
        self.conv = PreActivationUnit(spatial_dims, channels, channels, 3, norm, act, stride=2)

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
        dropout: channel-wise dropout between the units of the encoder levels listed in ``dropout_levels``.
        dropout_levels: 0-based encoder levels with dropout (the authors' code: the three deeper ones).
        encoder_units, decoder_units: pre-activation units per residual block (paper: 2 and 1).
        norm, act: of every unit (paper: batch norm, PReLU; defaults: the authors' code's settings of them).
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
        norm: str | tuple = AUTHORS_NORM,
        act: str | tuple = AUTHORS_ACT,
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
        self.down = nn.ModuleList(_Downsample(spatial_dims, f, norm, act) for f in self.features[:-1])
        # 3x3x3 transposed convolutions (stride 2): with them the encoder holds ~75 % of the parameters
        self.up = nn.ModuleList(Conv[Conv.CONVTRANS, spatial_dims](2 * f, f, kernel_size=3, stride=2, padding=1, output_padding=1) for f in self.features[:-1])
        self.decoder = nn.ModuleList(_ResidualBlock(spatial_dims, f, decoder_units, norm, act, None) for f in self.features[:-1])
        self.head = conv(base_features, out_channels, kernel_size=3, padding=1)
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
