"""Perfusion maps from concentration-time curves by block-circulant SVD deconvolution.

Implements the delay-insensitive circulant SVD of Wu et al., "Tracer arrival timing-insensitive technique
for estimating flow in MR perfusion-weighted imaging using singular value decomposition with a
block-circulant deconvolution matrix", MRM 50 (2003): the AIF and the tissue curves are zero-padded to
length L = 2T, the AIF forms an L x L circulant matrix D = dt * circ(c_a), and the flow-scaled residue is
k = D^+ c_t with singular values below ``threshold * s_max`` truncated. Then (Østergaard et al., 1996)

    CBF  = max_t k(t) * k_H / rho * 6000          [mL/100 g/min]
    CBV  = k_H / rho * 100 * sum(c_t) / sum(c_a)  [mL/100 g]
    MTT  = 60 * CBV / CBF                         [s]
    Tmax = argmax_t k(t)                          [s]  (parabolic sub-frame refinement)

Written by hand: neither MONAI nor another maintained Python library provides it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .indicator_dilution import HEMATOCRIT_FACTOR, TISSUE_DENSITY

__all__ = ["PerfusionMaps", "block_circulant_svd", "time_to_peak"]


@dataclass
class PerfusionMaps:
    """CBF (mL/100 g/min), CBV (mL/100 g), MTT (s) and Tmax (s), each shaped like the input's voxels."""

    cbf: np.ndarray
    cbv: np.ndarray
    mtt: np.ndarray
    tmax: np.ndarray


def block_circulant_svd(concentration: np.ndarray, aif: np.ndarray, dt: float, threshold: float = 0.1, chunk: int = 262144) -> PerfusionMaps:
    """Deconvolve tissue curves ``concentration`` (..., T) by the arterial curve ``aif`` (T,).

    Args:
        concentration: baseline-subtracted tissue concentration, any leading shape, time last.
        aif: baseline-subtracted arterial concentration in the same unit.
        dt: frame interval in s.
        threshold: relative singular-value cut-off (0.1 to 0.2 are usual for cSVD).
        chunk: voxels per matrix product, to bound memory.
    """
    c = np.asarray(concentration, dtype=np.float32)
    lead, n_t = c.shape[:-1], c.shape[-1]
    a = np.asarray(aif, dtype=np.float64)
    if a.shape != (n_t,):
        raise ValueError(f"aif has shape {a.shape}, expected ({n_t},)")
    length = 2 * n_t
    padded = np.concatenate([a, np.zeros(n_t)])
    idx = (np.arange(length)[:, None] - np.arange(length)[None, :]) % length
    d = dt * padded[idx]
    u, s, vt = np.linalg.svd(d)
    s_inv = np.where(s >= threshold * s.max(), 1.0 / s, 0.0)
    d_pinv = ((vt.T * s_inv) @ u.T)[:, :n_t].astype(np.float32)  # tissue curve's zero padding dropped
    flat = c.reshape(-1, n_t)
    k_max = np.empty(len(flat), np.float32)
    t_max = np.empty(len(flat), np.float32)
    for start in range(0, len(flat), chunk):
        k = flat[start : start + chunk] @ d_pinv.T  # (n, L)
        i = np.argmax(k, axis=1)
        rows = np.arange(len(k))
        k_max[start : start + chunk] = k[rows, i]
        left, right = k[rows, (i - 1) % length], k[rows, (i + 1) % length]
        denom = left - 2 * k[rows, i] + right
        offset = np.where(np.abs(denom) > 1e-12, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0)
        pos = i + np.clip(offset, -0.5, 0.5)
        pos = np.where(pos >= n_t, pos - length, pos)  # the circulant's second half is negative delays
        t_max[start : start + chunk] = pos * dt
    scale = HEMATOCRIT_FACTOR / TISSUE_DENSITY
    cbf = np.clip(k_max, 0, None) * scale * 6000.0
    cbv = np.clip(flat.sum(1) / a.sum(), 0, None) * scale * 100.0
    with np.errstate(divide="ignore", invalid="ignore"):
        mtt = np.where(cbf > 1e-3, 60.0 * cbv / np.maximum(cbf, 1e-3), 0.0)
    return PerfusionMaps(
        cbf.reshape(lead).astype(np.float32),
        cbv.reshape(lead).astype(np.float32),
        mtt.reshape(lead).astype(np.float32),
        np.clip(t_max, 0, None).reshape(lead).astype(np.float32),
    )


def time_to_peak(concentration: np.ndarray, dt: float) -> np.ndarray:
    """Time (s) of the maximum of each curve after a 3-frame moving average, time last."""
    c = np.asarray(concentration, dtype=np.float32)
    pad = np.concatenate([c[..., :1], c, c[..., -1:]], axis=-1)
    smooth = (pad[..., :-2] + pad[..., 1:-1] + pad[..., 2:]) / 3.0
    return (np.argmax(smooth, axis=-1) * dt).astype(np.float32)
