"""Per-case 3D segmentation metrics in physical units, on the reference's own grid.

Overlap and surface distances are MONAI's (``compute_dice``, ``get_confusion_matrix``,
``compute_hausdorff_distance``, ``compute_average_surface_distance``) with the voxel spacing passed in,
so distances are in mm. Volume metrics are in mL. The lesion-wise F1 follows the ISLES'22 evaluation
(its official ``utils/eval_utils.py``; de la Rosa et al., arXiv:2403.19425), which ISLES'24 kept: a 26-connected
reference lesion overlapped by any predicted voxel is a true positive, one overlapped by none a false negative,
and a 26-connected predicted component that overlaps no reference voxel is a false positive (a prediction that
spills past a lesion it found is not penalised); F1 = TP / (TP + (FP + FN) / 2), and 1 when both masks are empty.
Components are counted on the voxel grid, so spacing does not change them.

Conventions for empty masks (summaries skip NaN and report how many values they averaged):
Dice is 1 when both are empty; precision of an empty prediction against a lesion is 0/0, NaN by default and 0
with ``empty_precision="zero"`` (the convention of Clèrigues et al.'s code), recall NaN when the reference is
empty (both 1 when both are empty); HD, HD95 and ASSD are 0 when both are empty and NaN when exactly one is;
RVE and |RVE| are NaN for an empty reference. ``hd_voxels=True`` adds ``hd_voxels``, the Hausdorff distance on
the voxel grid without spacing (Clèrigues et al., CMPB 2020, Table 1).
"""

from __future__ import annotations

import numpy as np
import torch
from monai.metrics import (
    compute_average_surface_distance,
    compute_confusion_matrix_metric,
    compute_dice,
    compute_hausdorff_distance,
    get_confusion_matrix,
)
from scipy import ndimage

__all__ = ["segmentation_metrics", "lesion_wise_counts", "hausdorff", "metric_names", "METRICS", "EMPTY_PRECISION"]

METRICS = (
    "dice",
    "precision",
    "recall",
    "hd",
    "hd95",
    "assd",
    "rve",
    "abs_rve",
    "volume_ref_ml",
    "volume_pred_ml",
    "abs_volume_diff_ml",
    "lesion_count_diff",
    "lesion_f1",
)
#: what the precision of an empty prediction against a non-empty reference (0/0) is taken to be
EMPTY_PRECISION = {"nan": float("nan"), "zero": 0.0}


def metric_names(hd_voxels: bool = False) -> list[str]:
    """The keys :func:`segmentation_metrics` returns, in order."""
    names = list(METRICS)
    if hd_voxels:
        names.insert(names.index("hd") + 1, "hd_voxels")
    return names


_CONN26 = np.ones((3, 3, 3), bool)


def _t(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]


def lesion_wise_counts(pred: np.ndarray, ref: np.ndarray) -> tuple[int, int, int, int, int]:
    """ISLES'22 lesion-wise (TP, FP, FN, reference lesions, predicted lesions) with 26-connected components:
    TP = reference lesions that any predicted voxel overlaps, FN = the others, FP = predicted components that
    overlap no reference voxel."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    ref_labels, n_ref = ndimage.label(ref, structure=_CONN26)
    pred_labels, n_pred = ndimage.label(pred, structure=_CONN26)
    tp = len(np.unique(ref_labels[pred & ref]))
    fp = n_pred - len(np.unique(pred_labels[pred & ref]))
    return tp, fp, n_ref - tp, n_ref, n_pred


def _crop(pred: np.ndarray, ref: np.ndarray, margin: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cropped to the bounding box of their union (plus a margin): same distances, less work."""
    union = pred | ref
    if not union.any():
        return pred, ref
    lo, hi = [], []
    for ax in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != ax)
        idx = np.flatnonzero(union.any(axis=other))
        lo.append(max(0, idx[0] - margin))
        hi.append(min(union.shape[ax], idx[-1] + margin + 1))
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    return pred[box], ref[box]


def hausdorff(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...] | None = None, percentile: float | None = None) -> float:
    """Hausdorff distance (or its ``percentile``) of binary masks, in the units of ``spacing`` (voxels when None):
    0 when both are empty, NaN when one is. MONAI's ``compute_hausdorff_distance`` on the union's bounding box."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    n_pred, n_ref = pred.any(), ref.any()
    if not n_pred and not n_ref:
        return 0.0
    if not n_pred or not n_ref:
        return float("nan")
    cp, cr = _crop(pred, ref)
    return float(compute_hausdorff_distance(_t(cp), _t(cr), include_background=True, percentile=percentile, spacing=spacing)[0, 0])


def segmentation_metrics(
    pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...], empty_precision: str = "nan", hd_voxels: bool = False
) -> dict[str, float]:
    """All metrics of :func:`metric_names` for binary 3D masks on one grid with voxel ``spacing`` (mm);
    ``empty_precision`` ("nan" or "zero") is the precision of an empty prediction against a lesion."""
    if empty_precision not in EMPTY_PRECISION:
        raise ValueError(f"empty_precision must be one of {sorted(EMPTY_PRECISION)}, not {empty_precision!r}")
    pred = np.asarray(pred, bool)
    ref = np.asarray(ref, bool)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    spacing = tuple(float(s) for s in spacing)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    p, r = _t(pred), _t(ref)
    n_pred, n_ref = int(pred.sum()), int(ref.sum())
    out: dict[str, float] = {}
    out["dice"] = float(compute_dice(p, r, include_background=True, ignore_empty=False)[0, 0])
    cm = get_confusion_matrix(p, r, include_background=True)
    both_empty = n_pred == 0 and n_ref == 0
    out["precision"] = 1.0 if both_empty else (float(compute_confusion_matrix_metric("precision", cm)[0, 0]) if n_pred else EMPTY_PRECISION[empty_precision])
    out["recall"] = 1.0 if both_empty else (float(compute_confusion_matrix_metric("sensitivity", cm)[0, 0]) if n_ref else float("nan"))
    if both_empty:
        out["hd"] = out["hd95"] = out["assd"] = 0.0
    elif n_pred == 0 or n_ref == 0:
        out["hd"] = out["hd95"] = out["assd"] = float("nan")
    else:
        out["hd"] = hausdorff(pred, ref, spacing)
        out["hd95"] = hausdorff(pred, ref, spacing, percentile=95)
        cp, cr = _crop(pred, ref)
        out["assd"] = float(compute_average_surface_distance(_t(cp), _t(cr), include_background=True, symmetric=True, spacing=spacing)[0, 0])
    v_pred, v_ref = n_pred * voxel_ml, n_ref * voxel_ml
    if hd_voxels:
        out["hd_voxels"] = hausdorff(pred, ref)
    out["rve"] = (v_pred - v_ref) / v_ref if n_ref else float("nan")
    out["abs_rve"] = abs(out["rve"])
    out["volume_ref_ml"] = v_ref
    out["volume_pred_ml"] = v_pred
    out["abs_volume_diff_ml"] = abs(v_pred - v_ref)
    tp, fp, fn, lesions_ref, lesions_pred = lesion_wise_counts(pred, ref)
    out["lesion_count_diff"] = float(abs(lesions_pred - lesions_ref))
    out["lesion_f1"] = 1.0 if tp + fp + fn == 0 else tp / (tp + (fp + fn) / 2)
    return out
