"""SLNet, the lesion segmenter Φ_s of Wang et al., MedIA 2020 (Sec. 3.3, Fig. 5), and the plain U-Net it extends.

A 2D U-Net (Ronneberger et al., 2015): five levels of two (3×3 conv, norm, ReLU) units with 64…1024 channels,
2×2 max-pooling down, 2×2 transposed convolutions up, skips concatenated, a 1×1 convolution head. SLNet
replaces every batch normalization with switchable normalization
(:class:`~strokezoo.networks.blocks.SwitchableNorm`) and adds a squeeze-and-excitation block (MONAI's
``ChannelSELayer``) after every encoder block. The paper gives no widths; these are the U-Net's own. Table 3
counts 31.04 M parameters for the U-Net and SLNet w/o SE, 33.84 M for SLNet and SLNet w/o SN, which needs SE blocks
that do not reduce their channels (``se_reduction=1``) and include the bottleneck. The 3×3 convolutions here have
no bias (MONAI's ``UnetBasicBlock``; a bias before a normalization is redundant): 31.04, 33.83, 31.04 and 33.83 M.
Table 3's own figures are those plus one bias per output channel of each 3×3 convolution (5,888 parameters), so the
authors' convolutions had biases; ``tests/test_pseudo_dwi.py`` checks both readings to the table's two decimals.
The table's variants are constructor flags; with ``norm="batch"`` and ``squeeze_excitation=False`` this is the
plain U-Net that the paper also uses for the feature extractor Φ_e and the generator Φ_g (Secs. 3.1–3.2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import ChannelSELayer, UnetOutBlock, UnetUpBlock
from torch import nn
from torch.nn import functional as F

from .blocks import UNetEncoder
from .blocks.switchable_norm import SwitchableNorm

__all__ = ["SLNet", "xavier_init", "pad_to_multiple"]


def pad_to_multiple(x: torch.Tensor, divisor: int) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """``x`` ``(N, C, *spatial)`` zero-padded at the far end of each spatial axis to a multiple of ``divisor``, and
    the index that crops a same-sized output back to ``x``'s size."""
    size = x.shape[2:]
    pad = [p for s in reversed(size) for p in (0, -s % divisor)]
    crop = (slice(None), slice(None), *(slice(0, s) for s in size))
    return (F.pad(x, pad) if any(pad) else x), crop


class SLNet(nn.Module):
    """U-Net with switchable normalization and squeeze-and-excitation after every encoder block.

    Args:
        in_channels: input channels (1: the pseudo-DWI).
        out_channels: output channels (2 classes for Φ_s; 1 image for Φ_e and Φ_g). Logits / linear output.
        features: channels per level, first level to bottleneck.
        norm: ``"switchable"`` (SLNet) or any MONAI norm name (``"batch"``: SLNet w/o SN, the U-Net).
        squeeze_excitation: SE block after every encoder block (``False``: SLNet w/o SE).
        se_reduction: channel reduction ratio r inside the SE blocks.
        spatial_dims: 2 (the paper works on slices); 3 also works.

    Inputs of any size: they are zero-padded to a multiple of 2^(levels − 1) and the output is cropped back.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        features: Sequence[int] = (64, 128, 256, 512, 1024),
        norm: str | tuple = "switchable",
        squeeze_excitation: bool = True,
        se_reduction: int = 1,
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        self.features = tuple(int(f) for f in features)
        self.encoder = UNetEncoder(spatial_dims, in_channels, self.features, norm=norm, act="relu")
        self.se = nn.ModuleList(ChannelSELayer(spatial_dims, f, r=se_reduction) if squeeze_excitation else nn.Identity() for f in self.features)
        self.decoder = nn.ModuleList(
            UnetUpBlock(spatial_dims, deep, skip, kernel_size=3, stride=1, upsample_kernel_size=2, norm_name=norm, act_name="relu", trans_bias=True)
            for deep, skip in zip(self.features[:0:-1], self.features[-2::-1])
        )
        self.head = UnetOutBlock(spatial_dims, self.features[0], out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, crop = pad_to_multiple(x, 2 ** (len(self.features) - 1))
        skips = []
        for i, se in enumerate(self.se):
            h = se(self.encoder.level(i, h))
            skips.append(h)
        for up, skip in zip(self.decoder, skips[-2::-1]):
            h = up(h, skip)
        return self.head(h)[crop]


def xavier_init(module: nn.Module) -> nn.Module:
    """Xavier-uniform weights and zero biases for every convolution and linear layer of ``module`` (Wang et al.,
    Sec. 4.1: "The weights of all networks were initialized by Xavier method"); normalisation layers keep γ=1, β=0
    and SwitchableNorm its uniform mix. Returns ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, SwitchableNorm):
            nn.init.ones_(m.mean_weight)
            nn.init.ones_(m.var_weight)
    return module
