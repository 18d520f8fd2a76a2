"""``strokezoo grid-search``: the post-processing threshold and minimum lesion size (Clèrigues et al., CMPB 2020,
Sec. 3.5 and 4.1, Eq. 2).

Over the cross-validation probability maps of the training cases, every pair (``T_h``, ``S_min``) is applied
(:func:`strokezoo.transforms.filter_lesions`) and scored with the paper's combined score of the mean Dice and
the mean Hausdorff distance (in voxels, normalised by ``HD_max`` = 200 voxels)::

    Score = DSC · (1 − HD/HD_max) / (DSC + (1 − HD/HD_max))

A case whose filtered mask is empty while its reference is not counts as ``HD = HD_max``; ``1 − HD/HD_max``
is clipped at 0. The best pair is written into a bundle's inference config (keys ``threshold`` and
``min_size``) by the command, not by hand.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.atomic import write_csv_atomic, write_json_atomic
from ..data.datalist import load_datalist_entries, select_entries
from ..data.nifti import InputError, load_nifti, same_grid
from ..transforms.lesion_filter import filter_lesions
from .segmentation import hausdorff

__all__ = ["eq2_score", "grid_search", "THRESHOLDS", "MIN_SIZES"]

THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(1, 10))
MIN_SIZES = (10, 20, 50, 100, 200, 300, 500, 1000)


def eq2_score(dice: float, hd: float, hd_max: float = 200.0) -> float:
    """Eq. 2 of the paper: ``DSC·h / (DSC + h)`` with ``h = 1 − HD/HD_max`` clipped to [0, 1]; 0 when both are 0."""
    h = min(1.0, max(0.0, 1.0 - hd / hd_max))
    return 0.0 if dice + h == 0 else dice * h / (dice + h)


def grid_search(
    probs: str | os.PathLike,
    ref: str | os.PathLike,
    out: str | os.PathLike | None = None,
    config: str | os.PathLike | None = None,
    thresholds: Sequence[float] = THRESHOLDS,
    min_sizes: Sequence[int] = MIN_SIZES,
    hd_max: float = 200.0,
    split: str = "training",
    folds: Sequence[int] | None = None,
    suffix: str = "_prob",
) -> dict:
    """Score every (threshold, min_size) on the maps ``probs/<case_id><suffix>.nii.gz`` (lesion probability) against
    the labels of ``ref``; write ``grid_search.csv``/``.json`` to ``out`` and the best pair into ``config``.
    Returns ``{"threshold", "min_size", "score", "dice", "hd", "table", "failures"}``."""
    probs = Path(probs)
    entries = load_datalist_entries(ref, split) if folds is None else select_entries(ref, split, folds=list(folds))
    cases, failures = [], []
    for e in entries:
        cid = e.get("case_id", "?")
        try:
            path = probs / f"{cid}{suffix}.nii.gz"
            if not path.is_file():
                raise InputError(path, "no probability map for this case")
            p, r = load_nifti(path, "image", allow_zero=True), load_nifti(e["label"], "label")
            diff = same_grid(p, r, 1e-3)
            if diff:
                raise InputError(path, f"probability map is not on the label's grid: {diff}")
            if p.data.min() < 0 or p.data.max() > 1:
                raise InputError(path, f"values outside [0, 1] ({p.data.min():.3g} .. {p.data.max():.3g}): not a probability map")
            cases.append((cid, p.data, r.data.astype(bool)))
        except (InputError, ValueError, KeyError) as err:
            failures.append({"case_id": cid, "error": str(err)})
            print(f"cannot use {cid}: {err}", file=sys.stderr)
    if not cases:
        raise InputError(probs, "no case could be scored")
    table = []
    for t in thresholds:
        for s in min_sizes:
            dices, hds = [], []
            for _, prob, label in cases:
                mask = filter_lesions(prob, t, s).astype(bool)
                inter, total = np.count_nonzero(mask & label), np.count_nonzero(mask) + np.count_nonzero(label)
                dices.append(1.0 if total == 0 else 2.0 * inter / total)
                hd = hausdorff(mask, label)
                hds.append(hd_max if math.isnan(hd) else hd)
            dice, hd = float(np.mean(dices)), float(np.mean(hds))
            table.append({"threshold": float(t), "min_size": int(s), "dice": dice, "hd": hd, "score": eq2_score(dice, hd, hd_max)})
    best = max(table, key=lambda r: (r["score"], r["dice"]))
    result = {**best, "cases": len(cases), "hd_max": hd_max, "table": table, "failures": failures}
    if out is not None:
        out = Path(out)
        write_csv_atomic(table, ["threshold", "min_size", "dice", "hd", "score"], out / "grid_search.csv")
        write_json_atomic({k: v for k, v in result.items() if k != "table"}, out / "grid_search.json")
    if config is not None:
        cfg_path = Path(config)
        cfg = json.loads(cfg_path.read_text())
        cfg["threshold"], cfg["min_size"] = best["threshold"], best["min_size"]
        write_json_atomic(cfg, cfg_path, indent=4)  # the bundles' config style
    return result
