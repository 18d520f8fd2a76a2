"""Inter-rater agreement of binary masks."""

from __future__ import annotations

import numpy as np

__all__ = ["cohen_kappa", "kappa_level", "KAPPA_LEVELS"]


def cohen_kappa(a: np.ndarray, b: np.ndarray, within: np.ndarray | None = None) -> float:
    """Voxel-wise Cohen's kappa of two binary masks, ``(p_o - p_e) / (1 - p_e)``.

    ``within`` restricts the voxels counted (e.g. the brain). Two empty masks agree perfectly (1.0).
    """
    a = np.asarray(a, bool)
    b = np.asarray(b, bool)
    if within is not None:
        a, b = a[within], b[within]
    n = a.size
    if n == 0:
        return float("nan")
    p_o = np.count_nonzero(a == b) / n
    pa, pb = np.count_nonzero(a) / n, np.count_nonzero(b) / n
    p_e = pa * pb + (1 - pa) * (1 - pb)
    if p_e >= 1.0:
        return 1.0
    return float((p_o - p_e) / (1 - p_e))


#: Landis & Koch (1977) agreement levels: (upper bound of kappa, name), as Gómez et al. (MICCAI 2023, Fig. 2)
#: report them; kappa below 0 is "poor"
KAPPA_LEVELS = ((0.2, "slight"), (0.4, "fair"), (0.6, "moderate"), (0.8, "substantial"), (1.0, "almost perfect"))


def kappa_level(kappa: float) -> str:
    """Landis–Koch level of a kappa value: poor (< 0), slight (≤ 0.2), fair, moderate, substantial, almost perfect (> 0.8)."""
    if kappa < 0:
        return "poor"
    return next((name for upper, name in KAPPA_LEVELS if kappa <= upper), KAPPA_LEVELS[-1][1])
