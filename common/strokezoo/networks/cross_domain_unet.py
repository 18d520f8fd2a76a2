"""The multimodal cross-domain U-Net of Gómez et al., MICCAI 2023 (Sec. 2.1, 2.3, 3, Fig. 1 and 3).

One encoder per diffusion modality (ADC, DWI), five levels of residual (3×3 conv, BN, ReLU) blocks and a
bottleneck; the bottlenecks are concatenated into one cross-domain embedding; one decoder per modality
starts from that embedding and takes the skips of its own encoder through additive cross-attention gates.
The paper's ablation (Fig. 3, Table 1) is the flags of this one class:

* Dual V1 (the proposed model): ``decoder_attention=True, encoder_attention=False``;
* Dual V2: ``decoder_attention=False, encoder_attention=True``: at every encoder level each modality's
  features are gated by a map computed from both modalities before they go down and into the skip;
* Dual V3: both;
* unimodal baseline: ``in_channels=1`` (one encoder, one decoder) with decoder attention.

The encoder, decoder and gate are the blocks of :mod:`strokezoo.networks.blocks`, shared with
:class:`~strokezoo.networks.CrossAttentionUNet`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers.factories import Conv
from torch import nn

from .blocks import CrossAttentionDecoder, CrossAttentionGate, UNetEncoder

__all__ = ["CrossDomainUNet"]


class CrossDomainUNet(nn.Module):
    """Per-modality encoders, a concatenated (cross-domain) bottleneck and per-modality decoders.

    The input holds one modality per channel (ADC then DWI in the bundle); channel ``m`` goes to encoder
    ``m``. The output has one lesion logit per modality, in the same order: channel ``m`` is decoder
    ``m``'s estimate of the lesion as seen on modality ``m``, trained against that modality's annotation.

    Args:
        spatial_dims: 2 for the slice network of the paper; 3 also works.
        in_channels: number of modalities (2 for the dual models, 1 for the unimodal baseline).
        features: channels per encoder level, first level to bottleneck (paper: 32, 64, 128, 256, 512 and a
            1024-channel bottleneck).
        decoder_attention: cross-attention gate on every skip (Dual V1, V3, unimodal).
        encoder_attention: cross-attention between the two modalities at every encoder level (Dual V2, V3);
            needs ``in_channels == 2``.
        residual: residual conv blocks (paper) or plain ones.
        norm: normalisation of every conv unit (MONAI ``Norm`` name or tuple).
        act: activation of every conv unit (MONAI ``Act`` name or tuple).
        dropout: dropout of every conv unit (none in the paper).
        outputs: the modalities whose decoders run, in output channel order (default: every one). Every decoder
            is built, so the weights are the same; a run that needs one modality's lesion (``strokezoo segment``:
            the DWI's) skips the other decoders' cost, and each decoder's output is the one it gives in a full run.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 2,
        features: Sequence[int] = (32, 64, 128, 256, 512, 1024),
        decoder_attention: bool = True,
        encoder_attention: bool = False,
        residual: bool = True,
        norm: str | tuple = "batch",
        act: str | tuple = "relu",
        dropout: float | tuple | None = None,
        outputs: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if len(features) < 2:
            raise ValueError(f"features needs at least two levels, got {features}")
        if in_channels < 1:
            raise ValueError(f"in_channels (the number of modalities) must be at least 1, got {in_channels}")
        if encoder_attention and in_channels != 2:
            raise ValueError(f"encoder cross-attention fuses two modalities; got in_channels={in_channels}")
        self.features = tuple(int(f) for f in features)
        self.modalities = in_channels
        self.decoder_attention = decoder_attention
        self.encoder_attention = encoder_attention
        skips = self.features[:-1]
        opts = dict(residual=residual, norm=norm, act=act, dropout=dropout)
        self.encoders = nn.ModuleList(UNetEncoder(spatial_dims, 1, self.features, **opts) for _ in range(in_channels))
        # encoder_gates[m][i] refines modality m's level-i features with the other modality's
        self.encoder_gates = (
            nn.ModuleList(nn.ModuleList(CrossAttentionGate(spatial_dims, f, f) for f in skips) for _ in range(in_channels)) if encoder_attention else None
        )
        fused = in_channels * self.features[-1]
        self.decoders = nn.ModuleList(CrossAttentionDecoder(spatial_dims, fused, skips, decoder_attention, **opts) for _ in range(in_channels))
        self.heads = nn.ModuleList(Conv[Conv.CONV, spatial_dims](self.features[0], 1, kernel_size=1) for _ in range(in_channels))
        self.divisor = 2 ** (len(self.features) - 1)
        self.outputs = tuple(range(in_channels)) if outputs is None else tuple(int(m) for m in outputs)
        if not self.outputs or any(not 0 <= m < in_channels for m in self.outputs):
            raise ValueError(f"outputs must name some of the {in_channels} modalities (0...{in_channels - 1}), got {outputs}")

    def encode(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """Every level of every modality's encoder, ``[modality][level]``; with encoder attention the
        skips are the refined features."""
        h = [x[:, m : m + 1] for m in range(self.modalities)]
        levels: list[list[torch.Tensor]] = [[] for _ in range(self.modalities)]
        for i in range(len(self.features)):
            h = [enc.level(i, h_m) for enc, h_m in zip(self.encoders, h)]
            if self.encoder_gates is not None and i < len(self.features) - 1:
                h = [self.encoder_gates[0][i](h[0], h[1]), self.encoder_gates[1][i](h[1], h[0])]
            for m in range(self.modalities):
                levels[m].append(h[m])
        return levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.modalities:
            raise ValueError(f"expected {self.modalities} modality channels, got {x.shape[1]}")
        size = tuple(x.shape[2:])
        if any(s % self.divisor for s in size):
            raise ValueError(f"input size {size} must be divisible by {self.divisor} ({len(self.features)} levels)")
        levels = self.encode(x)
        embedding = torch.cat([lv[-1] for lv in levels], dim=1)
        outs = [self.heads[m](self.decoders[m](embedding, levels[m][:-1])[-1]) for m in self.outputs]
        return torch.cat(outs, dim=1)
