"""The framework of Wang et al., MedIA 2020 (Sec. 3, Fig. 2): feature extractor Φ_e, pseudo-DWI generator Φ_g,
context encoder Φ_c and segmenter Φ_s (SLNet) in one module, so that they train end-to-end (Sec. 3.4) and ship
as one checkpoint.

Input channels, per 2D slice: ``[CBF, CBV, MTT, Tmax, F_l, I*_1 … I*_Ce]``, i.e. the perfusion maps F_o, the
temporal MIP F_l (Eq. 1) and the ``C_e`` temporally cropped and down-sampled CTA frames I* (Sec. 3.1, built by
:class:`~strokezoo.transforms.PerfusionFeaturesd`). Then F_h = Φ_e(I*) (Eq. 4), I_g = Φ_g([F_o, F_l, F_h])
(Eq. 5) and P = Φ_s(I_g) (Eq. 10).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["ContextEncoder", "PseudoDWISLNet", "PARTS"]

#: The networks that can be trained; the sequential variant of Table 5 trains them one after another.
PARTS = ("extractor", "generator", "segmenter")


class ContextEncoder(nn.Module):
    """Φ_c (Sec. 3.2, Fig. 4): five 3×3 stride-2 convolutions and two adaptive average poolings → a 16-vector.

    Fig. 4 gives the layer types, kernel and stride and the output length; the widths (16, 32, 64, 64, 16), the
    ReLUs between the convolutions and the first pooling's 16×16 output (after the third convolution) are ours.
    """

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (16, 32, 64, 64, 16), pooled_size: int = 16) -> None:
        super().__init__()
        if len(widths) != 5:
            raise ValueError(f"the context encoder has five convolutions, got widths {widths}")
        convs = [nn.Conv2d(c, w, 3, stride=2, padding=1) for c, w in zip((in_channels, *widths[:-1]), widths)]
        relu = nn.ReLU
        self.net = nn.Sequential(
            convs[0],
            relu(),
            convs[1],
            relu(),
            convs[2],
            relu(),
            nn.AdaptiveAvgPool2d(pooled_size),
            convs[3],
            relu(),
            convs[4],
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PseudoDWISLNet(nn.Module):
    """Φ_e, Φ_g, Φ_c and Φ_s of the paper, wired as in Fig. 2.

    ``forward(x)`` returns ``(N, 4, H, W)``: the segmenter's two logits (background, lesion), the pseudo-DWI I_g
    and the high-level feature F_h. While training, ``forward(x, reference=I_d)`` returns a dict with
    ``logits``, ``pseudo_dwi``, ``features`` and ``context`` = Φ_c of (I_g, F_h, I_d) stacked on a new first
    axis, so that every network, Φ_c included, runs inside one forward (one DistributedDataParallel module).

    Args:
        extractor: Φ_e, ``frames`` → 1 channel.
        generator: Φ_g, 6 → 1 channel.
        segmenter: Φ_s, 1 → 2 channels.
        context_encoder: Φ_c, 1 channel → vector.
        maps: number of perfusion maps in front of the input (4: CBF, CBV, MTT, Tmax).
        trained_parts: the networks that learn (all of :data:`PARTS` end-to-end); the others run without
            gradients and in eval mode. Φ_c learns whenever the extractor or the generator does (Sec. 3.4).
    """

    def __init__(
        self,
        extractor: nn.Module,
        generator: nn.Module,
        segmenter: nn.Module,
        context_encoder: nn.Module,
        maps: int = 4,
        trained_parts: Iterable[str] = PARTS,
    ) -> None:
        super().__init__()
        self.extractor, self.generator, self.segmenter, self.context_encoder = extractor, generator, segmenter, context_encoder
        self.maps = maps
        self.trained_parts = tuple(trained_parts)

    @property
    def trained_parts(self) -> tuple[str, ...]:
        return self._trained_parts

    @trained_parts.setter
    def trained_parts(self, parts: tuple[str, ...]) -> None:
        unknown = set(parts) - set(PARTS)
        if unknown or not parts:
            raise ValueError(f"trained_parts must be a non-empty subset of {PARTS}, got {parts}")
        self._trained_parts = tuple(p for p in PARTS if p in parts)
        self.train(self.training)

    def _frozen(self) -> list[nn.Module]:
        frozen = [getattr(self, p) for p in PARTS if p not in self._trained_parts]
        if not {"extractor", "generator"} & set(self._trained_parts):
            frozen.append(self.context_encoder)
        return frozen

    def train(self, mode: bool = True) -> PseudoDWISLNet:
        super().train(mode)
        for m in self._frozen() if hasattr(self, "_trained_parts") else ():
            m.eval()
        return self

    def _run(self, part: str, x: torch.Tensor) -> torch.Tensor:
        net = getattr(self, part)
        if self.training and part not in self._trained_parts:
            with torch.no_grad():
                return net(x)
        return net(x)

    def forward(self, x: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor | dict[str, torch.Tensor]:
        """Any slice size: each U-Net pads its own input to its divisor and crops its output back (:class:`SLNet`), so
        Φ_c sees the slices themselves."""
        maps_mip, frames = x[:, : self.maps + 1], x[:, self.maps + 1 :]
        features = self._run("extractor", frames)
        pseudo_dwi = self._run("generator", torch.cat([maps_mip, features], 1))
        logits = self._run("segmenter", pseudo_dwi)
        if reference is None:
            return torch.cat([logits, pseudo_dwi, features], 1)
        context = self.context_encoder(torch.cat([pseudo_dwi, features, reference.to(pseudo_dwi.dtype)], 0))
        return {"logits": logits, "pseudo_dwi": pseudo_dwi, "features": features, "context": context.reshape(3, x.shape[0], -1)}
