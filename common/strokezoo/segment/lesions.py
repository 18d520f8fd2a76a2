"""What a clinician reads off a lesion mask: total volume, lesion count, the largest lesion, volume per hemisphere."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["lesion_statistics", "midline_x"]

_CONN26 = np.ones((3, 3, 3), bool)


def midline_x(reference: np.ndarray, affine: np.ndarray) -> float:
    """World x (RAS, mm) of the head's mid-sagittal plane: the middle of the extent along x of the voxels above 10 %
    of ``reference``'s intensity range (1st to 99th percentile), i.e. of the head or brain, whatever its position on
    the scanner's grid."""
    lo, hi = np.percentile(reference, [1, 99])
    ijk = np.argwhere(reference > lo + 0.1 * (hi - lo))
    if not len(ijk):
        ijk = np.argwhere(np.ones(reference.shape, bool))
    x = ijk @ affine[0, :3] + affine[0, 3]
    return float((x.min() + x.max()) / 2)


def lesion_statistics(mask: np.ndarray, affine: np.ndarray, reference: np.ndarray) -> dict:
    """Total lesion volume (mL), lesion count (26-connected components), the largest lesion's volume and the volume
    on each side of the mid-sagittal plane (:func:`midline_x` of ``reference``; the subject's left is world x below
    it in NIfTI's RAS space, whatever the voxel order), for a binary ``mask`` on ``affine``'s grid."""
    mask = np.asarray(mask) > 0
    voxel_ml = abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0
    labels, count = ndimage.label(mask, structure=_CONN26)
    sizes = np.bincount(labels.ravel())[1:] if count else np.zeros(0, int)
    midline = midline_x(reference, affine)
    x = np.argwhere(mask) @ affine[0, :3] + affine[0, 3]
    return {
        "total_volume_ml": round(float(mask.sum()) * voxel_ml, 3),
        "lesion_count": int(count),
        "largest_lesion_ml": round(float(sizes.max()) * voxel_ml, 3) if count else 0.0,
        "volume_ml_by_hemisphere": {"left": round(float((x < midline).sum()) * voxel_ml, 3), "right": round(float((x >= midline).sum()) * voxel_ml, 3)},
        "midline_x_mm": round(midline, 2),
        "connectivity": 26,
    }
