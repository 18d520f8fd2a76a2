"""Whether an input's values can be the modality it is given as: a rater's mask given as an ADC, a map given as a
CT, or an ADC in other units than the usual. Checked before a study is segmented, so that a wrong file is refused by
name instead of being segmented without a word."""

from __future__ import annotations

import numpy as np

__all__ = ["ADC_UNITS", "check_values"]

#: the median of an ADC map's non-zero voxels (brain tissue and CSF) in each unit scanners store it in: the
#: usual 10^-6 mm^2/s (ISLES, Siemens, GE), and 10^-3 mm^2/s and mm^2/s, which a scaling explains
ADC_UNITS = {"1e-6 mm^2/s": (150.0, 5000.0), "1e-3 mm^2/s": (0.15, 5.0), "mm^2/s": (1.5e-4, 5e-3)}
CT_KEYS = ("ct", "ctp")


def check_values(key: str, data: np.ndarray) -> tuple[str | None, str | None]:
    """``(refusal, warning)`` for an image given as modality ``key``, each a sentence or None:

    - any modality: refused when it holds only two values, one of them 0 (a mask), or a single value;
    - ``adc``: accepted when the median of its non-zero voxels lies in the usual unit's range
      (:data:`ADC_UNITS`); warned of when it lies in another unit's (a scanner's scaling); refused otherwise;
    - ``ct``, ``ctp``: warned of when no value is negative and the 99th percentile is above 1000 (Hounsfield units
      stored without the rescale intercept's -1024).
    """
    values = np.asarray(data, np.float32)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "has no finite value", None
    distinct = np.unique(finite[:2_000_000])
    if distinct.size == 1:
        return f"every voxel is {float(distinct[0]):g}: an empty image, not {key}", None
    if distinct.size == 2 and 0 in distinct:
        return f"holds only the values {float(distinct[0]):g} and {float(distinct[1]):g}: a mask, not {key}", None
    if key == "adc":
        nonzero = finite[finite != 0]
        median = float(np.median(nonzero))
        units = [unit for unit, (lo, hi) in ADC_UNITS.items() if lo <= median <= hi]
        if not units:
            ranges = "; ".join(f"{lo:g}-{hi:g} in {unit}" for unit, (lo, hi) in ADC_UNITS.items())
            return f"median non-zero value {median:.4g} is not an ADC's ({ranges})", None
        if units[0] != "1e-6 mm^2/s":
            return None, f"adc: median non-zero value {median:.4g} reads as {units[0]}, not the usual 1e-6 mm^2/s; check the scanner's scaling"
    if key in CT_KEYS and float(finite.min()) >= 0 and float(np.percentile(finite, 99)) > 1000:
        return None, f"{key}: no negative value and the 99th percentile above 1000: Hounsfield units stored without the -1024 rescale intercept?"
    return None, None
