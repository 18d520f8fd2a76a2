"""The lesion-attention weight map A of Wang et al., MedIA 2020 (Eq. 9), used by the synthesis loss (Eq. 7) and
the weighted cross-entropy (Eq. 12).

``A_i = w`` on lesion voxels; elsewhere ``A_i = 0.5 + e^{-d_i/D} / (e^{-d_i/D} + 1)``, with ``d_i`` the
Euclidean distance from voxel i to the nearest lesion voxel. The weight falls from about 1 next to the lesion to
0.5 far from it; a slice without lesion (d = ∞ everywhere) is 0.5 everywhere. The networks work on slices, so
distances are measured in each 2D slice, in pixels (the paper's D = 50 is in the unit of its 256×256 slices).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform
from monai.utils import convert_to_dst_type, convert_to_numpy
from scipy import ndimage

__all__ = ["lesion_weight_map", "LesionWeightMapd"]


def lesion_weight_map(lesion: np.ndarray, w: float = 1.5, d: float = 50.0) -> np.ndarray:
    """Eq. 9 for a 2D ``(H, W)`` or channel-first ``(C, H, W)`` mask (each channel alone); float32, same shape."""
    if w < 1 or d <= 0:
        raise ValueError(f"Eq. 9 needs w >= 1 and D > 0, got w={w}, D={d}")
    mask = np.asarray(lesion) > 0.5
    if mask.ndim == 3:
        return np.stack([lesion_weight_map(m, w, d) for m in mask])
    if mask.ndim != 2:
        raise ValueError(f"the weight map is computed per 2D slice, got shape {mask.shape}")
    if not mask.any():
        return np.full(mask.shape, 0.5, np.float32)
    distance = ndimage.distance_transform_edt(~mask)
    e = np.exp(-distance / d)
    return np.where(mask, w, 0.5 + e / (e + 1.0)).astype(np.float32)


class LesionWeightMapd(MapTransform):
    """Adds ``weight_key``: Eq. 9 of the channel-first 2D label slice under ``keys`` (after the spatial augmentations,
    so that the map follows the augmented lesion)."""

    def __init__(self, keys: KeysCollection, weight_key: str = "weight", w: float = 1.5, d: float = 50.0, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError("LesionWeightMapd takes one label key")
        self.weight_key, self.w, self.d = weight_key, w, d

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            weight = lesion_weight_map(convert_to_numpy(d[key]), self.w, self.d)
            d[self.weight_key] = convert_to_dst_type(weight, d[key], dtype=torch.float32)[0]
        return d
