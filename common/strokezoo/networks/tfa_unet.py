"""The whole method of de Vries et al. (MIDL 2021, Sec. 2, Fig. 1) for one cross-validation fold: the transformer
(part A) gives the TFA map of a slice; a U-Net (part B) segments the infarct core from the TFA map, the first
frame of the series (CT) and its maximum-intensity frame (MI).

The paper's "maximum intensity frame" is read as the maximum over time of every pixel (the temporal
maximum-intensity projection); the first frame and MI are taken from the series itself, not its mirrored copy.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .tfa_map import tfa_map
from .tfa_transformer import TFATransformer

__all__ = ["TFAUNet", "unet_inputs"]


def unet_inputs(series: torch.Tensor, tfa: torch.Tensor, frames: int) -> torch.Tensor:
    """The U-Net's input ``[TFA, CT, MI]`` ``(B, 3, ...)`` from the series ``(B, C·T, ...)`` (channels ``0…T-1`` the
    series itself) and its TFA map ``(B, 1, ...)``."""
    own = series[:, :frames]
    return torch.cat([tfa, own[:, :1], own.amax(dim=1, keepdim=True)], dim=1)


class TFAUNet(nn.Module):
    """Transformer, then U-Net, on axial slices of the pre-processed series ``(B, C·T, H, W)``.

    Args:
        transformer: the part-A :class:`TFATransformer`.
        unet: the part-B 2D network, 3 input channels, 2 output channels.
        step: TFA map step (paper: the 4 central pixels, 2).
        tfa_batch_size: patches per transformer batch.
        divisor: the U-Net's input is zero-padded to a multiple of this (2 ** down-sampling steps) and its output
            cropped back.
        unet_fp32: run the U-Net in float32 even under autocast (bf16 inference keeps the transformer, the costly
            part, in bf16, and the mask's decisions in float32).

    Output ``(B, 3, H, W)``: the U-Net's logits (background, infarct core) and, in channel 2, the TFA probability map.
    """

    def __init__(
        self, transformer: TFATransformer, unet: nn.Module, step: int = 2, tfa_batch_size: int = 4096, divisor: int = 8, unet_fp32: bool = False
    ) -> None:
        super().__init__()
        self.transformer, self.unet = transformer, unet
        self.step, self.tfa_batch_size, self.divisor = step, tfa_batch_size, divisor
        self.unet_fp32 = bool(unet_fp32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tfa = tfa_map(self.transformer, x, self.step, self.tfa_batch_size)
        inputs = unet_inputs(x, tfa, self.transformer.frames)
        h, w = inputs.shape[-2:]
        pad_h, pad_w = -h % self.divisor, -w % self.divisor
        inputs = F.pad(inputs, (0, pad_w, 0, pad_h))
        if self.unet_fp32 and torch.is_autocast_enabled(inputs.device.type):
            with torch.autocast(inputs.device.type, enabled=False):
                logits = self.unet(inputs.float())[..., :h, :w]
            return torch.cat([logits, tfa.float()], dim=1)
        logits = self.unet(inputs)[..., :h, :w]
        return torch.cat([logits, tfa], dim=1)
