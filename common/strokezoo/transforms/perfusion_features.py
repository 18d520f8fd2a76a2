"""The hand-made part of the feature extractor of Wang et al., MedIA 2020 (Sec. 3.1): the temporal MIP and the
perfusion stage of a 4D CTA series.

* F_l = max_t I(x, y, z, t) (Eq. 1).
* q(t) = Σ_xyz I(x, y, z, t); T_s is the earliest t whose K following derivatives q'(t … t+K−1) are all positive
  (Eq. 2), T_e the latest t whose K preceding derivatives q'(t−K+1 … t) are all ≤ 0 (Eq. 3; the Heaviside H(0) = 0),
  K = 5. q' is the central difference (one-sided at the ends, ``numpy.gradient``). Where no such t exists, or
  the rules give T_e ≤ T_s (a flat or truncated curve), the whole series is kept; that case is logged.
* The frames T_s … T_e are down-sampled uniformly to C_e = 6 (frame ``round(T_s + k (T_e − T_s) / (C_e − 1))``,
  k = 0 … C_e − 1), the input I* of the CNN Φ_e.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.utils import convert_to_numpy

__all__ = ["perfusion_stage", "perfusion_frames", "PerfusionFeaturesd"]

logger = logging.getLogger(__name__)


def perfusion_stage(curve: np.ndarray, k: int = 5) -> tuple[int, int] | None:
    """``(T_s, T_e)`` of the summed-intensity curve q(t) by Eqs. 2–3, or None when the rules find no stage."""
    q = np.asarray(curve, np.float64)
    t_count = q.size
    if k < 1 or t_count < k + 2:
        return None
    dq = np.gradient(q)
    rising = dq > 0
    starts = [t for t in range(0, t_count - k) if rising[t : t + k].all()]
    ends = [t for t in range(k, t_count) if not rising[t - k + 1 : t + 1].any()]
    if not starts or not ends or ends[-1] <= starts[0]:
        return None
    return starts[0], ends[-1]


def perfusion_frames(start: int, end: int, frames: int = 6) -> np.ndarray:
    """Indices of ``frames`` uniformly spaced frames from ``start`` to ``end`` (both included)."""
    return np.rint(np.linspace(start, end, frames)).astype(int)


class PerfusionFeaturesd(MapTransform):
    """From a channel-first series ``(T, H, W, D)`` under ``keys``: the MIP F_l under ``mip_key`` ``(1, H, W, D)``,
    and the series cropped to its perfusion stage and down-sampled to ``frames`` under the key itself
    ``(frames, H, W, D)``. The stage found is recorded as ``<key>_stage`` = (T_s, T_e).

    Args:
        keys: series keys.
        mip_key: output key of F_l (with several keys: ``<key>_<mip_key>``).
        frames: C_e (the paper: 6).
        k: K of Eqs. 2–3 (the paper: 5).
    """

    def __init__(self, keys: KeysCollection, mip_key: str = "mip", frames: int = 6, k: int = 5, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.mip_key, self.frames, self.k = mip_key, frames, k

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            series = d[key]
            if series.ndim != 4 or series.shape[0] < 2:
                raise ValueError(f"{key}: a 4D series (T, H, W, D) with at least 2 frames is needed, got shape {tuple(series.shape)}")
            t_count = series.shape[0]
            stage = perfusion_stage(convert_to_numpy(series.reshape(t_count, -1).sum(1)), self.k)
            if stage is None:
                logger.info("%s: no perfusion stage by Eqs. 2-3 (K=%d); all %d frames kept", key, self.k, t_count)
                stage = (0, t_count - 1)
            index = torch.as_tensor(perfusion_frames(*stage, self.frames), device=series.device)
            d[self.mip_key if len(self.keys) == 1 else f"{key}_{self.mip_key}"] = series.amax(0, keepdim=True)
            d[key] = series[index]
            d[f"{key}_stage"] = stage
        return d
