"""Indicator-dilution forward model of a bolus passage through brain tissue.

The tissue concentration is the arterial input function (AIF) convolved with the tissue's scaled residue
function (Østergaard et al., MRM 1996, Eq. 1)::

    C_t(t) = (rho / k_H) * F * (C_a(. - delay) * R)(t),     R(t) = exp(-t / MTT),

with F the blood flow in mL/g/s (CBF / 6000 for CBF in mL/100 g/min), rho the tissue density and k_H the
large/small-vessel hematocrit correction. The AIF is a gamma variate (Thompson et al., 1964). Under this
model CBV = CBF * MTT / 60 (central volume theorem) and Tmax = delay.

Curves for many voxels are computed through a look-up table over (delay, MTT) on a fine time grid, so the
cost per voxel is one gather; this is written by hand because no library offers the forward model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["TISSUE_DENSITY", "HEMATOCRIT_FACTOR", "gamma_variate", "tissue_concentration"]

TISSUE_DENSITY = 1.04  # g/mL
HEMATOCRIT_FACTOR = 0.73  # (1 - Hct_large) / (1 - Hct_small)


def gamma_variate(t: np.ndarray, t0: float, alpha: float, beta: float, peak: float) -> np.ndarray:
    """Gamma-variate bolus ``(t - t0)^alpha exp(-(t - t0) / beta)``, scaled so its maximum is ``peak``."""
    s = np.clip(np.asarray(t, dtype=np.float64) - t0, 0.0, None)
    y = s**alpha * np.exp(-s / beta)
    t_peak = alpha * beta
    return peak * y / (t_peak**alpha * np.exp(-alpha))


def tissue_concentration(
    times: np.ndarray,
    aif: Callable[[np.ndarray], np.ndarray],
    cbf: np.ndarray,
    mtt: np.ndarray,
    delay: np.ndarray,
    *,
    fine_dt: float = 0.1,
    bin_s: float = 0.25,
) -> np.ndarray:
    """Tissue concentration curves sampled at ``times``.

    Args:
        times: frame times in s, shape (T,).
        aif: function of time (s) returning the arterial concentration.
        cbf: flow in mL/100 g/min, shape (N,).
        mtt: mean transit time in s, shape (N,).
        delay: bolus arrival delay relative to the AIF in s (equals Tmax), shape (N,).
        fine_dt: step of the convolution grid.
        bin_s: (delay, MTT) quantisation of the look-up table.

    Returns:
        array (N, T), float32, in the AIF's concentration unit.
    """
    times = np.asarray(times, dtype=np.float64)
    t_fine = np.arange(0.0, times[-1] + fine_dt, fine_dt)
    ca = aif(t_fine)
    d_idx = np.rint(np.clip(delay, 0.0, None) / bin_s).astype(np.int64)
    m_idx = np.rint(np.clip(mtt, bin_s, None) / bin_s).astype(np.int64)
    d_levels, d_inv = np.unique(d_idx, return_inverse=True)
    m_levels, m_inv = np.unique(m_idx, return_inverse=True)
    # Unit-flow curves (F = 1 mL/g/s) for every (delay, MTT) level present.
    table = np.empty((len(d_levels), len(m_levels), len(times)), dtype=np.float32)
    tau = t_fine
    frame_pos = np.clip(np.rint(times / fine_dt).astype(np.int64), 0, len(t_fine) - 1)
    for j, m in enumerate(m_levels):
        residue = np.exp(-tau / (m * bin_s))
        conv = np.convolve(ca, residue)[: len(t_fine)] * fine_dt  # (C_a * R)(t)
        for i, d in enumerate(d_levels):
            shift = int(round(d * bin_s / fine_dt))
            shifted = np.concatenate([np.zeros(shift), conv[: len(conv) - shift]]) if shift else conv
            table[i, j] = shifted[frame_pos]
    flow = (np.asarray(cbf, dtype=np.float64) / 6000.0) * (TISSUE_DENSITY / HEMATOCRIT_FACTOR)
    return (table[d_inv.ravel(), m_inv.ravel()] * flow[:, None]).astype(np.float32)
