"""The brain mask of a skull-stripped study, from one modality as released (before any intensity scaling).

The authors' code counts as brain every voxel whose first channel is > 0: right for skull-stripped images with an
exact zero background, wrong as soon as the background is not exactly zero. Here the background level and its
noise are estimated from the volume's six faces (a skull-stripped head does not fill its matrix): their median
``b`` and robust standard deviation ``σ`` (1.4826 × the median absolute deviation). Brain is every voxel above
``b + k·σ``. On an exact zero background (``σ`` = 0) that is the authors' test, ``value > 0``, voxel for voxel; on
a noisy one, the specks of noise that pass are dropped by keeping the largest face-connected component, and the
holes this leaves inside it (dark CSF) are filled. A background offset moves ``b``; a stray negative voxel is
below it.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from scipy import ndimage

from ..errors import InputError

__all__ = ["brain_mask", "BrainMaskd"]


def _faces(volume: np.ndarray) -> np.ndarray:
    """The voxels on the faces of a 3D volume."""
    return np.concatenate([np.moveaxis(volume, axis, 0)[side].ravel() for axis in range(volume.ndim) for side in (0, -1)])


def brain_mask(volume: np.ndarray, k: float = 3.0) -> np.ndarray:
    """Boolean brain mask of a skull-stripped 3D ``volume``: voxels above the background level of the volume's faces
    by more than ``k`` robust standard deviations of it (module docstring). Raises ``ValueError`` when no voxel is."""
    v = np.asarray(volume, dtype=np.float64)
    if v.ndim != 3:
        raise ValueError(f"a 3D volume is needed, got shape {v.shape}")
    faces = _faces(v)
    level = float(np.median(faces))
    sigma = 1.4826 * float(np.median(np.abs(faces - level)))
    mask = v > level + k * sigma
    if not mask.any():
        raise ValueError(f"no voxel lies above the background level {level:.4g} (+{k:g} x noise {sigma:.3g})")
    if sigma > 0:  # noisy background: the largest component, holes filled
        labels, n = ndimage.label(mask)
        if n > 1:
            mask = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
        mask = ndimage.binary_fill_holes(mask)
    return mask


class BrainMaskd(MapTransform):
    """Add ``d[name]``, the :func:`brain_mask` of channel ``channel`` of ``d[key]`` (one key: the reference
    modality, named, not taken by position), as a ``(1, X, Y, Z)`` uint8 image on the modality's grid.

    Run it on the modality as loaded, before intensity scaling. A modality with no voxel above its background
    raises :class:`~strokezoo.errors.InputError` naming its file.
    """

    def __init__(self, keys: KeysCollection, name: str = "brain", channel: int = 0, k: float = 3.0, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"one reference modality, got keys {self.keys}")
        self.name, self.channel, self.k = name, channel, k

    def __call__(self, data: dict) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            x = d[key]
            volume = x[self.channel].detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)[self.channel]
            try:
                mask = torch.as_tensor(brain_mask(volume, self.k), dtype=torch.uint8)[None]
            except ValueError as err:
                source = x.meta.get("filename_or_obj", key) if isinstance(x, MetaTensor) else key
                raise InputError(source, f"no brain mask from '{key}': {err}") from err
            d[self.name] = MetaTensor(mask, meta=dict(x.meta)) if isinstance(x, MetaTensor) else mask
        return d
