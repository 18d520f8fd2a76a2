"""The deeply supervised cross-attention U-Net of Gómez (2023), Sec. 4 and 5.2 (MRI) / 5.3 (CT).

Six levels of (3×3 conv, BN, ReLU)×2 blocks, max-pooling down, bilinear ×2 up, an additive cross-attention
gate (:class:`~strokezoo.networks.blocks.CrossAttentionGate`) on every skip, and deep-supervision heads
(:class:`~strokezoo.networks.blocks.DeepSupervisionHead`) on every coarser decoder level. The thesis's
ablation rows (U-Net, U-Net + CW, U-Net + CW + DS, U-Net + CW + DS + Att) are the flags of this one class
(CW, class-weight maps, is a property of the loss: :mod:`strokezoo.losses.class_weight_map`). Its encoder and
decoder are the shared :class:`~strokezoo.networks.blocks.UNetEncoder` and
:class:`~strokezoo.networks.blocks.CrossAttentionDecoder`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .blocks import CrossAttentionDecoder, DeepSupervisionHead, UNetEncoder

__all__ = ["CrossAttentionUNet"]


class CrossAttentionUNet(nn.Module):
    """Encoder–decoder with additive cross-attention skips and multi-scale deep supervision.

    Level ``i`` of the encoder is a block of two (3×3 conv, norm, act) units with ``features[i]`` channels;
    levels are separated by 2×2 max-pooling, so the deepest level (the bottleneck) is ``2**(len(features)-1)``
    times smaller than the input. Each decoder level upsamples bilinearly ×2, applies one (3×3 conv, norm,
    act) unit to reach the skip's width, gates the skip with the cross-attention module, concatenates
    ``[decoder, gated skip]`` and applies a block. A 1×1 convolution of the last level is the prediction.

    With ``deep_supervision``, heads on the bottleneck and on every decoder level but the last give
    ``len(features) - 1`` more estimates at full resolution. While training, ``forward`` then returns the
    list ``[prediction, level 1, ..., bottleneck]`` (finest first, the order of
    :class:`monai.losses.DeepSupervisionLoss`); in ``eval()`` mode, and always without deep supervision,
    it returns the prediction tensor only. All outputs are logits.

    Args:
        spatial_dims: 2 for the slice networks of the thesis; 3 also works.
        in_channels: number of input modalities stacked as channels.
        out_channels: 1 for the binary MRI model (sigmoid), 3 for the CT model with the boundary class (softmax).
        features: channels per level, encoder first level to bottleneck. The thesis states six levels
            without widths; the default 32…1024 is our choice, the widths the MICCAI 2023 paper states for the
            same authors' dual network.
        cross_attention: gate every skip (``False``: plain concatenation, the U-Net rows of the ablation).
        deep_supervision: add the coarse-level heads.
        norm: normalisation of every conv unit (MONAI ``Norm`` name or tuple).
        act: activation of every conv unit (MONAI ``Act`` name or tuple).
        dropout: dropout of every conv unit (none in the thesis).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int = 1,
        features: Sequence[int] = (32, 64, 128, 256, 512, 1024),
        cross_attention: bool = True,
        deep_supervision: bool = True,
        norm: str | tuple = "batch",
        act: str | tuple = "relu",
        dropout: float | tuple | None = None,
    ) -> None:
        super().__init__()
        if len(features) < 2:
            raise ValueError(f"features needs at least two levels, got {features}")
        self.features = tuple(int(f) for f in features)
        self.cross_attention = cross_attention
        self.deep_supervision = deep_supervision
        self.encoder = UNetEncoder(spatial_dims, in_channels, self.features, norm=norm, act=act, dropout=dropout)
        self.decoder = CrossAttentionDecoder(spatial_dims, self.features[-1], self.features[:-1], cross_attention, norm=norm, act=act, dropout=dropout)
        self.head = DeepSupervisionHead(spatial_dims, self.features[0], out_channels)
        # ds_heads[j] estimates from level j + 1 (decoder levels 1..L-2, then the bottleneck L-1)
        self.ds_heads = nn.ModuleList(DeepSupervisionHead(spatial_dims, f, out_channels) for f in self.features[1:]) if deep_supervision else None
        self.divisor = 2 ** (len(self.features) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        size = tuple(x.shape[2:])
        if any(s % self.divisor for s in size):
            raise ValueError(f"input size {size} must be divisible by {self.divisor} ({len(self.features)} levels)")
        levels = self.encoder(x)
        decoded = self.decoder(levels[-1], levels[:-1])  # coarsest first, the last is level 0
        prediction = self.head(decoded[-1], size)
        if not (self.deep_supervision and self.training):
            return prediction
        by_level = [*reversed(decoded[:-1]), levels[-1]]  # decoder levels 1 .. L-2, then the bottleneck
        return [prediction, *(head(h, size) for head, h in zip(self.ds_heads, by_level))]
