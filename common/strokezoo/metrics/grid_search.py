"""``strokezoo grid-search``: the post-processing threshold and minimum lesion size (Clèrigues et al., CMPB 2020,
Sec. 3.5 and 4.1, Eq. 2).

Over the cross-validation probability maps of the training cases, every pair (``T_h``, ``S_min``) is applied
(:func:`strokezoo.transforms.filter_lesions`) and scored with the paper's combined score of the mean Dice and
the mean Hausdorff distance (in voxels, normalised by ``HD_max`` = 200 voxels)::

    Score = DSC · (1 − HD/HD_max) / (DSC + (1 − HD/HD_max))

A case whose filtered mask is empty while its reference is not counts as ``HD = HD_max``; ``1 − HD/HD_max``
is clipped at 0. Every pair is reported with the four metrics of the paper's Table 1: mean DSC, PPV (0 for an
empty prediction, as the authors' code counts it), sensitivity and HD (voxels). At the best pair the maps give
the pooled cross-validation evaluation, Table 1's row: each metric's mean ± SD (ddof 1) with its n over all the
cases of all the folds (``table1.csv`` per case, ``table1.md``). The best pair is written to an override file
(``override``: only the keys ``threshold`` and ``min_size``) that inference takes after its own config, e.g.
``--config_file "['configs/inference.json','configs/postprocessing.json']"``; no tracked config is rewritten.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.datalist import load_datalist_entries, select_entries
from ..errors import InputError
from ..io.atomic import write_csv_atomic, write_json_atomic, write_text_atomic
from ..io.nifti import load_nifti, same_grid
from ..transforms.lesion_filter import filter_lesions
from .evaluate import conventions, conventions_line, fmt_metric, summarize
from .segmentation import hausdorff

__all__ = ["eq2_score", "grid_search", "table1_metrics", "THRESHOLDS", "MIN_SIZES", "TABLE1"]

#: the metrics of Clèrigues et al.'s Table 1, in its order
TABLE1 = ("dice", "precision", "recall", "hd")

THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(1, 10))
MIN_SIZES = (10, 20, 50, 100, 200, 300, 500, 1000)


def eq2_score(dice: float, hd: float, hd_max: float = 200.0) -> float:
    """Eq. 2 of the paper: ``DSC·h / (DSC + h)`` with ``h = 1 − HD/HD_max`` clipped to [0, 1]; 0 when both are 0."""
    h = min(1.0, max(0.0, 1.0 - hd / hd_max))
    return 0.0 if dice + h == 0 else dice * h / (dice + h)


def table1_metrics(mask: np.ndarray, label: np.ndarray, hd_max: float | None = None) -> dict[str, float]:
    """DSC, PPV (0 when nothing is predicted), sensitivity and HD in voxels of one case, as Table 1 counts them.
    An empty prediction against a lesion has no HD: NaN, or ``hd_max`` where given (the grid search's Eq. 2)."""
    inter, n_mask, n_label = np.count_nonzero(mask & label), np.count_nonzero(mask), np.count_nonzero(label)
    hd = hausdorff(mask, label)
    return {
        "dice": 1.0 if n_mask + n_label == 0 else 2.0 * inter / (n_mask + n_label),
        "precision": (1.0 if n_label == 0 else 0.0) if n_mask == 0 else inter / n_mask,
        "recall": (1.0 if n_mask == 0 else float("nan")) if n_label == 0 else inter / n_label,
        "hd": hd_max if (hd_max is not None and math.isnan(hd)) else hd,
    }


def grid_search(
    probs: str | os.PathLike,
    ref: str | os.PathLike,
    out: str | os.PathLike | None = None,
    override: str | os.PathLike | None = None,
    thresholds: Sequence[float] = THRESHOLDS,
    min_sizes: Sequence[int] = MIN_SIZES,
    hd_max: float = 200.0,
    split: str = "training",
    folds: Sequence[int] | None = None,
    suffix: str = "_prob",
    connectivity: int = 1,
) -> dict:
    """Score every (threshold, min_size) on the maps ``probs/<case_id><suffix>.nii.gz`` (lesion probability) against
    the labels of ``ref``; write ``grid_search.csv``/``.json`` and the Table 1 row at the best pair (``table1.csv``,
    ``table1.md``) to ``out``, and the best pair to the override file ``override``. Lesions are counted with
    ``connectivity`` (:func:`strokezoo.transforms.filter_lesions`; inference must use the same). Returns ``{"threshold",
    "min_size", "score", "dice", "precision", "recall", "hd", "table1", "table", "failures"}``."""
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
            per_case = [table1_metrics(filter_lesions(prob, t, s, connectivity).astype(bool), label, hd_max) for _, prob, label in cases]
            means = {k: float(np.nanmean([c[k] for c in per_case])) for k in TABLE1}
            table.append({"threshold": float(t), "min_size": int(s), **means, "score": eq2_score(means["dice"], means["hd"], hd_max)})
    best = max(table, key=lambda r: (r["score"], r["dice"]))
    rows = [
        {"case_id": cid, **table1_metrics(filter_lesions(prob, best["threshold"], best["min_size"], connectivity).astype(bool), label)}
        for cid, prob, label in cases
    ]
    table1 = summarize(rows, list(TABLE1))
    result = {**best, "cases": len(cases), "hd_max": hd_max, "table1": table1, "table": table, "failures": failures}
    if out is not None:
        out = Path(out)
        write_csv_atomic(table, ["threshold", "min_size", *TABLE1, "score"], out / "grid_search.csv")
        write_json_atomic({k: v for k, v in result.items() if k != "table"}, out / "grid_search.json")
        write_csv_atomic(rows, ["case_id", *TABLE1], out / "table1.csv")
        cell = lambda k, d: f"{fmt_metric(table1[k]['mean'], d)} ± {fmt_metric(table1[k]['sd'], d)}"  # noqa: E731
        conv = conventions("zero", distances="HD in voxels, no spacing (Table 1); none for an empty prediction, left out of its mean")
        write_text_atomic(
            "\n".join(
                [
                    f"# Pooled cross-validation evaluation of {probs} at T_h {best['threshold']:g}, S_min {best['min_size']}",
                    "",
                    f"Table 1 of Clèrigues et al. (CMPB 2020): {len(cases)} cases of {'all folds' if folds is None else f'folds {list(folds)}'}, "
                    f"{len(failures)} failed; mean ± SD over the n cases that gave a value.",
                    "",
                    conventions_line(conv),
                    "",
                    "| T_h | S_min | DSC | PPV | sensitivity | HD (voxels) | n (DSC / PPV / sensitivity / HD) |",
                    "|---|---|---|---|---|---|---|",
                    f"| {best['threshold']:g} | {best['min_size']} | {cell('dice', 2)} | {cell('precision', 2)} | {cell('recall', 2)} | {cell('hd', 1)} "
                    f"| {' / '.join(str(table1[k]['n']) for k in TABLE1)} |",
                ]
            )
            + "\n",
            out / "table1.md",
        )
    if override is not None:
        path = Path(override)
        if path.exists():
            try:
                old = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise InputError(path, f"exists and is not a readable JSON override ({e}); nothing written") from None
            if not isinstance(old, dict) or set(old) - {"threshold", "min_size"}:
                raise InputError(path, "exists and holds more than threshold and min_size (a bundle config?); it is not overwritten, give another path")
        write_json_atomic({"threshold": best["threshold"], "min_size": best["min_size"]}, path, indent=4)
    return result
