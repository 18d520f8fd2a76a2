"""Additive cross-attention gate on a U-Net skip connection (Gómez 2023, Sec. 4.1, Fig. 5).

``S = σ1(W_e X_e + W_d X_d)``, ``X_re = σ2(W_S S) · X_e`` with 1×1 convolutions ``W_e``, ``W_d``, ``W_S``,
σ1 = ReLU and σ2 = sigmoid: a one-channel attention map, computed from the encoder feature ``X_e`` and the
decoder feature ``X_d`` of the same level, that is broadcast over every channel of ``X_e``.

MONAI's ``monai.networks.nets.attentionunet.AttentionBlock`` computes the same kind of gate but puts a batch
normalisation after each of its three projections. The thesis's equations have plain 1×1 convolutions
(and so does the authors' code), so this gate is written here instead.
"""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Act, Conv
from torch import nn

__all__ = ["CrossAttentionGate"]


class CrossAttentionGate(nn.Module):
    """Additive cross-attention gate: refines encoder features ``X_e`` with decoder features ``X_d``.

    Args:
        spatial_dims: number of spatial dimensions (2 for the slice networks).
        encoder_channels: channels of ``X_e`` (the skip).
        decoder_channels: channels of ``X_d``; it must already have the spatial size of ``X_e``.
        inter_channels: channels of the additive alignment ``S``; defaults to ``encoder_channels``.
    """

    def __init__(self, spatial_dims: int, encoder_channels: int, decoder_channels: int, inter_channels: int | None = None) -> None:
        super().__init__()
        inter = inter_channels or encoder_channels
        conv = Conv[Conv.CONV, spatial_dims]
        self.w_e = conv(encoder_channels, inter, kernel_size=1)
        self.w_d = conv(decoder_channels, inter, kernel_size=1)
        self.sigma1 = Act[Act.RELU]()
        self.w_s = conv(inter, 1, kernel_size=1)
        self.sigma2 = Act[Act.SIGMOID]()

    def attention_map(self, x_e: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        """The one-channel map ``σ2(W_S σ1(W_e X_e + W_d X_d))`` in [0, 1]."""
        return self.sigma2(self.w_s(self.sigma1(self.w_e(x_e) + self.w_d(x_d))))

    def forward(self, x_e: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        """Refined encoder features ``X_re``, shaped like ``x_e``."""
        return self.attention_map(x_e, x_d) * x_e
