"""The training target of the CTP transformer (de Vries et al., MIDL 2021, Sec. 2): the transformer classifies
the 4 central pixels of a patch. The target is the share of infarcted pixels among them, as class
probabilities ``[1 - f, f]``; cross-entropy against it is the mean cross-entropy of the four pixels under the
one prediction they share (plain cross-entropy when all four agree).
"""

from __future__ import annotations

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["central_pixels_target", "CentralPixelsd"]


def central_pixels_target(label: torch.Tensor, size: int = 2) -> torch.Tensor:
    """``[1 - f, f]``, ``f`` the share of label > 0 in the central ``size × size`` pixels of a label patch
    ``(1, P, P)`` or ``(1, P, P, 1)``; the centre block starts at ``P // 2 - size // 2`` (as in :func:`strokezoo.networks.tfa_map`)."""
    patch = torch.as_tensor(label).reshape(label.shape[-3:-1] if label.ndim == 4 else label.shape[-2:])
    start = [n // 2 - size // 2 for n in patch.shape]
    share = (patch[start[0] : start[0] + size, start[1] : start[1] + size] > 0).float().mean()
    return torch.stack([1.0 - share, share])


class CentralPixelsd(MapTransform):
    """Replace the label patch under ``keys`` by :func:`central_pixels_target`."""

    def __init__(self, keys: KeysCollection, size: int = 2, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.size = size

    def __call__(self, data):
        d = dict(data)
        for k in self.key_iterator(d):
            d[k] = central_pixels_target(d[k], self.size)
        return d
