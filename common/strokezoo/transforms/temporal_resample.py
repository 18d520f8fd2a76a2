"""Temporal resampling of a perfusion series to a fixed number of frames (de Vries et al., MIDL 2021, Sec. 2,
after Bertels et al. 2019): ISLES 2018 CTP series have 28 to 64 frames; every series becomes 32 frames.

The frames are taken as evenly spaced (NIfTI stores one frame interval). The series is linearly interpolated
at ``frames`` evenly spaced times from its first frame to its last; when frames are dropped, the series is first
smoothed along time with a Gaussian (sigma = (T / frames - 1) / 2 frames, the anti-aliasing of MONAI's ``Resize``,
which does the work here), so that no frame's noise is sampled alone.
"""

from __future__ import annotations

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Resize

__all__ = ["temporal_resample", "TemporalResampled"]


def temporal_resample(series: torch.Tensor, frames: int = 32) -> torch.Tensor:
    """``series`` ``(T, X, Y, Z)`` (frames first) -> ``(frames, X, Y, Z)``, smoothed in time when ``T > frames``."""
    t, *spatial = series.shape
    if t < 2:
        raise ValueError(f"a series needs at least 2 frames, got {t}")
    if t == frames:
        return series
    plain = series.as_tensor() if isinstance(series, MetaTensor) else torch.as_tensor(series)
    flat = plain.to(torch.float32).reshape(1, t, -1)
    resized = Resize((frames, -1), mode="bilinear", align_corners=True, anti_aliasing=True)(flat)
    out = (resized.as_tensor() if isinstance(resized, MetaTensor) else resized).reshape(frames, *spatial)
    return MetaTensor(out, meta=dict(series.meta)) if isinstance(series, MetaTensor) else out


class TemporalResampled(MapTransform):
    """:func:`temporal_resample` of channel-first series (channels = frames) under ``keys``."""

    def __init__(self, keys: KeysCollection, frames: int = 32, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.frames = frames

    def __call__(self, data):
        d = dict(data)
        for k in self.key_iterator(d):
            d[k] = temporal_resample(d[k], self.frames)
        return d
