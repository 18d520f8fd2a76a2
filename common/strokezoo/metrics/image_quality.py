"""Quality of a synthesized image (e.g. a pseudo-DWI) against the acquired one: SSIM and PSNR,
over the whole volume and within a margin around the lesion.

SSIM and PSNR are MONAI's (``SSIMMetric`` with a 3D Gaussian window, ``PSNRMetric``), with the data range
taken from the reference image. The lesion-local figures use the bounding box of the reference lesion
grown by ``margin_mm`` (the local region of Wang et al., MedIA 2020, Sec. 4.2); they are NaN when the
reference lesion is empty.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.metrics import PSNRMetric, SSIMMetric

__all__ = ["image_quality", "lesion_box"]


def lesion_box(lesion: np.ndarray, spacing, margin_mm: float) -> tuple[slice, ...] | None:
    """Bounding box of ``lesion`` grown by ``margin_mm`` on each side (clipped to the volume)."""
    if not lesion.any():
        return None
    box = []
    for ax in range(lesion.ndim):
        other = tuple(a for a in range(lesion.ndim) if a != ax)
        idx = np.flatnonzero(lesion.any(axis=other))
        m = int(np.ceil(margin_mm / float(spacing[ax])))
        box.append(slice(max(0, idx[0] - m), min(lesion.shape[ax], idx[-1] + m + 1)))
    return tuple(box)


def _ssim_psnr(pred: np.ndarray, ref: np.ndarray, data_range: float) -> tuple[float, float]:
    p = torch.from_numpy(np.ascontiguousarray(pred, np.float32))[None, None]
    r = torch.from_numpy(np.ascontiguousarray(ref, np.float32))[None, None]
    size = min(7, *[s if s % 2 else s - 1 for s in ref.shape])
    ssim = SSIMMetric(spatial_dims=3, data_range=data_range, win_size=max(size, 1))(p, r)
    psnr = PSNRMetric(max_val=data_range)(p, r)
    return float(ssim.mean()), float(psnr.mean())


def image_quality(pred: np.ndarray, ref: np.ndarray, lesion: np.ndarray | None, spacing, margin_mm: float = 10.0) -> dict[str, float]:
    """``ssim``, ``psnr`` (global) and ``ssim_lesion``, ``psnr_lesion`` (lesion box) of ``pred`` vs ``ref``."""
    if pred.shape != ref.shape:
        raise ValueError(f"synthesized image shape {pred.shape} differs from reference shape {ref.shape}")
    data_range = float(ref.max() - ref.min()) or 1.0
    out = dict(zip(("ssim", "psnr"), _ssim_psnr(pred, ref, data_range)))
    box = lesion_box(lesion, spacing, margin_mm) if lesion is not None else None
    if box is None:
        out["ssim_lesion"] = out["psnr_lesion"] = float("nan")
    else:
        out["ssim_lesion"], out["psnr_lesion"] = _ssim_psnr(pred[box], ref[box], data_range)
    return out
