"""Random optical (barrel / pincushion) distortion of 2D slices, one of the thesis's augmentations (Sec. 5.2).

MONAI has elastic and grid distortions but no lens distortion, so this one is written here. A pixel at
normalised position ``u = (p - c) / f`` (``c`` the slice centre, ``f`` the slice width, as the common
augmentation libraries place the virtual camera) samples the source at ``c + f · u (1 + k |u|²)`` with
``k ~ U(-distort_limit, distort_limit)``; ``k > 0`` is barrel, ``k < 0`` pincushion distortion. Images are
resampled bilinearly and labels with nearest neighbours, with the same ``k`` for every key of a sample.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_dst_type, convert_to_tensor, ensure_tuple_rep
from torch.nn import functional as F

__all__ = ["optical_distortion", "RandOpticalDistortiond"]


def optical_distortion(image: torch.Tensor, k: float, mode: str = "bilinear") -> torch.Tensor:
    """Distort a channel-first ``(C, H, W)`` slice with radial coefficient ``k`` (zeros outside the slice)."""
    c, h, w = image.shape
    dev = image.device
    ys, xs = torch.meshgrid(torch.arange(h, device=dev, dtype=torch.float32), torch.arange(w, device=dev, dtype=torch.float32), indexing="ij")
    cy, cx, f = (h - 1) / 2, (w - 1) / 2, float(w)
    uy, ux = (ys - cy) / f, (xs - cx) / f
    scale = 1 + k * (ux**2 + uy**2)
    sy, sx = cy + f * uy * scale, cx + f * ux * scale
    grid = torch.stack([2 * sx / (w - 1) - 1, 2 * sy / (h - 1) - 1], dim=-1)[None]  # (1, H, W, 2), x first
    out = F.grid_sample(image[None].float(), grid, mode=mode, padding_mode="zeros", align_corners=True)
    return out[0]


class RandOpticalDistortiond(RandomizableTransform, MapTransform):
    """Dictionary transform: with probability ``prob``, the same random optical distortion on every key.

    Args:
        keys: keys of channel-first ``(C, H, W)`` slices.
        prob: probability of distorting a sample.
        distort_limit: ``k`` is drawn from ``U(-distort_limit, distort_limit)``.
        mode: ``"bilinear"`` or ``"nearest"`` per key (labels: nearest).
    """

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.1,
        distort_limit: float = 0.05,
        mode: str | Sequence[str] = "bilinear",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.distort_limit = float(distort_limit)
        self.mode = ensure_tuple_rep(mode, len(self.keys))
        self.k = 0.0

    def randomize(self, data: object = None) -> None:
        super().randomize(None)
        self.k = float(self.R.uniform(-self.distort_limit, self.distort_limit))

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return d
        for key, mode in self.key_iterator(d, self.mode):
            img = convert_to_tensor(d[key], track_meta=False)
            d[key] = convert_to_dst_type(optical_distortion(img, self.k, mode), d[key], dtype=torch.float32)[0]
        return d
