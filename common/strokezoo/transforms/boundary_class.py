"""Lesion boundary as an auxiliary class (Gómez 2023, Sec. 4.4 and 5.3).

Each axial slice's lesion becomes {0 background, 1 lesion interior, 2 lesion outline}: the outline is the
one-pixel-thick inner border, the lesion pixels with at least one 4-neighbour outside the lesion (the image
border counts as outside). That is the set of pixels an 8-connected contour trace passes through, which is
how the authors drew it. At inference the lesion is classes 1 ∪ 2.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_dst_type, convert_to_tensor
from torch.nn import functional as F

__all__ = ["BoundaryClass", "BoundaryClassd", "lesion_boundary"]


def lesion_boundary(mask: torch.Tensor) -> torch.Tensor:
    """Boolean in-plane inner border of ``mask`` (``(..., H, W)`` or ``(C, H, W, D)`` slice by slice along D)."""
    m = mask.bool()
    planar = m.ndim >= 4  # (C, H, W, D): slices along the last axis
    if planar:
        m = m.movedim(-1, 0)  # (D, C, H, W)
    p = F.pad(m.float(), (1, 1, 1, 1)).bool()
    inner = p[..., 1:-1, 1:-1] & p[..., :-2, 1:-1] & p[..., 2:, 1:-1] & p[..., 1:-1, :-2] & p[..., 1:-1, 2:]
    border = m & ~inner
    return border.movedim(0, -1) if planar else border


class BoundaryClass(Transform):
    """Binary lesion mask → {0 background, 1 interior, 2 outline}, per axial slice.

    Accepts a channel-first ``(1, H, W)`` slice or ``(1, H, W, D)`` volume (outlines are drawn in each
    ``(H, W)`` plane). Values are binarised at 0.5 first (a mask resampled with nearest neighbours stays binary).
    """

    backend = [torch.Tensor.__name__]

    def __call__(self, label: NdarrayOrTensor) -> NdarrayOrTensor:
        t = convert_to_tensor(label, track_meta=False)
        lesion = t > 0.5
        out = lesion.to(torch.float32) + lesion_boundary(lesion).to(torch.float32)
        return convert_to_dst_type(out, label, dtype=torch.float32)[0]


class BoundaryClassd(MapTransform):
    """Dictionary version of :class:`BoundaryClass`."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = BoundaryClass()

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d
