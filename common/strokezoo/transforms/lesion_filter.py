"""Threshold and minimum lesion size (Clèrigues et al., CMPB 2020, Sec. 3.5).

The lesion probability map is binarised at ``T_h`` and connected lesions smaller than ``S_min`` voxels are
removed. Lesions are face-connected by default (6-connectivity in 3D, ``scipy.ndimage.label``'s default, as
the authors' code counts them); ``connectivity`` = the number of dimensions gives full connectivity (26 in 3D).
MONAI's ``RemoveSmallObjects`` needs scikit-image, which strokezoo does not otherwise depend on;
``scipy.ndimage.label`` does the same here.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from scipy import ndimage

__all__ = ["filter_lesions", "LesionFilterd"]


def filter_lesions(probability: np.ndarray, threshold: float, min_size: int, connectivity: int = 1) -> np.ndarray:
    """``probability > threshold`` without the connected components of fewer than ``min_size`` voxels (uint8).

    ``connectivity``: neighbours share a face (1: 6-connected in 3D), an edge (2: 18) or a corner (3: 26), as in
    ``scipy.ndimage.generate_binary_structure``."""
    mask = np.asarray(probability) > threshold
    if not 1 <= connectivity <= mask.ndim:
        raise ValueError(f"connectivity must lie in 1..{mask.ndim} for a {mask.ndim}-D map, got {connectivity}")
    if min_size <= 1 or not mask.any():
        return mask.astype(np.uint8)
    labels, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(mask.ndim, connectivity))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_size
    keep[0] = False
    return keep[labels].astype(np.uint8)


class LesionFilterd(MapTransform):
    """Replace ``d[key]`` (``(C, X, Y, Z)`` class probabilities, or ``(1, X, Y, Z)`` lesion probability) by the
    filtered lesion mask ``(1, X, Y, Z)``; the lesion is channel ``lesion_channel`` (the last by default).

    Args:
        keys: keys of probability maps.
        threshold: ``T_h``.
        min_size: ``S_min`` in voxels.
        lesion_channel: channel of the lesion class.
        connectivity: of the lesions whose size is compared with ``min_size`` (:func:`filter_lesions`).
    """

    def __init__(
        self,
        keys: KeysCollection,
        threshold: float = 0.5,
        min_size: int = 0,
        lesion_channel: int = -1,
        connectivity: int = 1,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.connectivity = int(connectivity)
        self.threshold = float(threshold)
        self.min_size = int(min_size)
        self.lesion_channel = lesion_channel

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            x = d[key]
            prob = x[self.lesion_channel].detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)[self.lesion_channel]
            mask = torch.as_tensor(filter_lesions(prob, self.threshold, self.min_size, self.connectivity))[None]
            d[key] = MetaTensor(mask, affine=x.affine, meta=dict(x.meta)) if isinstance(x, MetaTensor) else mask
        return d
