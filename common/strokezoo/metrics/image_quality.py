"""Quality of a synthesized image (e.g. a pseudo-DWI) against the acquired one: SSIM and PSNR,
over the whole volume and within a margin around the lesion (Wang et al., MedIA 2020, Sec. 4.2).

The paper works on 2D axial slices (Sec. 3: inter-slice spacing 9.48 mm on average, 2–22 slices a volume), so
SSIM is MONAI's ``SSIMMetric`` in 2D, a Gaussian window of 7×7 on each axial slice (the last voxel axis, as the
2D bundles slice), averaged over the slices; PSNR is MONAI's ``PSNRMetric`` on the mean squared error of the
volume. Both use a fixed ``data_range``: for images scaled to (0, 1) by their minimum and 99th percentile (the
paper's DWI pre-processing, Sec. 4.1) that range is 1, what the bundle's validation PSNR uses; without a range
given, the reference's own max − min. The lesion-local figures use the bounding box of the reference lesion grown
by ``margin_mm``; they are NaN when the reference lesion is empty. A box narrower than 7 voxels in-plane uses the
largest odd window that fits.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.metrics import PSNRMetric, SSIMMetric

__all__ = ["image_quality", "lesion_box", "slice_ssim"]


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


def slice_ssim(pred: np.ndarray, ref: np.ndarray, data_range: float, win_size: int = 7) -> float:
    """Mean 2D SSIM over the axial slices (last axis) of two (H, W, D) volumes, a Gaussian window of ``win_size``
    (shrunk to the largest odd size that fits the slice)."""
    fit = min(win_size, *[s if s % 2 else s - 1 for s in ref.shape[:2]])
    p = torch.from_numpy(np.ascontiguousarray(np.moveaxis(pred, -1, 0), np.float32))[:, None]
    r = torch.from_numpy(np.ascontiguousarray(np.moveaxis(ref, -1, 0), np.float32))[:, None]
    return float(SSIMMetric(spatial_dims=2, data_range=data_range, win_size=max(fit, 1))(p, r).mean())


def _psnr(pred: np.ndarray, ref: np.ndarray, data_range: float) -> float:
    p = torch.from_numpy(np.ascontiguousarray(pred, np.float32))[None, None]
    r = torch.from_numpy(np.ascontiguousarray(ref, np.float32))[None, None]
    return float(PSNRMetric(max_val=data_range)(p, r).mean())


def image_quality(
    pred: np.ndarray, ref: np.ndarray, lesion: np.ndarray | None, spacing, margin_mm: float = 10.0, data_range: float | None = None
) -> dict[str, float]:
    """``ssim``, ``psnr`` (global) and ``ssim_lesion``, ``psnr_lesion`` (lesion box) of ``pred`` vs ``ref``,
    with a fixed ``data_range`` (default: ``ref.max() - ref.min()``)."""
    if pred.shape != ref.shape:
        raise ValueError(f"synthesized image shape {pred.shape} differs from reference shape {ref.shape}")
    if data_range is None:
        data_range = float(ref.max() - ref.min()) or 1.0
    out = {"ssim": slice_ssim(pred, ref, data_range), "psnr": _psnr(pred, ref, data_range)}
    box = lesion_box(lesion, spacing, margin_mm) if lesion is not None else None
    if box is None:
        out["ssim_lesion"] = out["psnr_lesion"] = float("nan")
    else:
        out["ssim_lesion"], out["psnr_lesion"] = slice_ssim(pred[box], ref[box], data_range), _psnr(pred[box], ref[box], data_range)
    return out
