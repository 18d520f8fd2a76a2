"""``strokezoo evaluate``: 3D metrics of a folder of predicted masks against a datalist's references.

Each prediction is matched to its case by file name (``<case_id>.nii.gz``, or ``<case_id>_<anything>``
without "prob" in it), must be a binary mask on the reference label's grid, and is scored on that grid in
mm and mL (:mod:`.segmentation`). Optionally a folder of synthesized images is scored against one
modality of the datalist (SSIM/PSNR, :mod:`.image_quality`; ``reference_percentile`` scales that modality
to (0, 1) by its minimum and that percentile first, the DWI pre-processing of Wang et al., MedIA 2020), and the
cases can be grouped by reference lesion volume (``size_groups_ml``, e.g. [10, 50]: < 10, 10–50, > 50 mL, that
paper's Sec. 4.2.5). Writes ``metrics.csv`` (one row per case),
``summary.json`` (mean, sd with ddof 1, median and n of every metric, NaN skipped and counted out of n, and the
evaluation's ``conventions``) and ``report.md``, which states the same; cases that cannot be scored are listed in
both and make the command exit non-zero, after the others are scored.

The conventions are settings, declared per bundle where its paper says: ``empty_precision`` ("nan" or "zero",
the precision of an empty prediction against a lesion), ``hd_voxels`` (add the Hausdorff distance on the voxel
grid) and, for synthesized images, ``image_data_range`` (1 for images scaled to (0, 1) by ``reference_percentile``).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np

from ..data.datalist import load_datalist_entries, select_entries
from ..errors import InputError
from ..io.atomic import write_csv_atomic, write_json_atomic, write_text_atomic
from ..io.nifti import load_nifti, same_grid
from .image_quality import image_quality
from .segmentation import EMPTY_PRECISION, metric_names, segmentation_metrics

__all__ = ["conventions", "conventions_line", "evaluate", "find_prediction", "fmt_metric", "scale_to_percentile", "size_groups", "summarize"]

#: how every summary treats its values
SUMMARY_RULES = {"sd_ddof": 1, "nan": "skipped; n counts the values averaged"}


def find_prediction(folder: Path, case_id: str) -> Path:
    """The one file of ``folder`` named ``<case_id>.nii[.gz]`` or ``<case_id>_*.nii[.gz]`` (not a probability map)."""
    hits = [p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith((".nii", ".nii.gz"))]
    exact = [p for p in hits if p.name in (f"{case_id}.nii.gz", f"{case_id}.nii")]
    if exact:
        return exact[0]
    loose = [p for p in hits if p.name.startswith(f"{case_id}_") and "prob" not in p.name.lower()]
    if len(loose) == 1:
        return loose[0]
    if not loose:
        raise InputError(folder / f"{case_id}.nii.gz", "no prediction for this case")
    raise InputError(folder, f"several predictions match case {case_id}: {[p.name for p in loose]}")


def summarize(rows: list[dict], keys: list[str]) -> dict:
    """mean, sd (ddof=1), median and n of each metric over the rows, NaN values skipped."""
    out = {}
    for k in keys:
        v = np.array([r[k] for r in rows if k in r and r[k] is not None and math.isfinite(r[k])], dtype=np.float64)
        out[k] = {
            "mean": float(v.mean()) if v.size else None,
            "sd": float(v.std(ddof=1)) if v.size > 1 else None,
            "median": float(np.median(v)) if v.size else None,
            "n": int(v.size),
        }
    return out


def scale_to_percentile(image: np.ndarray, percentile: float) -> np.ndarray:
    """``image`` scaled linearly so that its minimum is 0 and its ``percentile``-th percentile is 1 (not clipped)."""
    low, high = float(np.min(image)), float(np.percentile(image, percentile))
    return ((np.asarray(image, np.float64) - low) / ((high - low) or 1.0)).astype(np.float32)


def size_groups(rows: list[dict], edges_ml: list[float]) -> dict[str, list[dict]]:
    """Rows grouped by reference lesion volume: ``< e0 mL``, ``e0–e1 mL``, …, ``> e_last mL`` (lower edge included)."""
    edges = sorted(float(e) for e in edges_ml)
    names = [f"< {edges[0]:g} mL"] + [f"{a:g}–{b:g} mL" for a, b in zip(edges, edges[1:])] + [f"> {edges[-1]:g} mL"]
    groups: dict[str, list[dict]] = {n: [] for n in names}
    for r in rows:
        groups[names[int(np.searchsorted(edges, r["volume_ref_ml"], side="right"))]].append(r)
    return groups


def conventions(empty_precision: str = "nan", hd_voxels: bool = False, **more) -> dict:
    """The evaluation's declared conventions, as ``summary.json`` records them."""
    if empty_precision not in EMPTY_PRECISION:
        raise ValueError(f"empty_precision must be one of {sorted(EMPTY_PRECISION)}, not {empty_precision!r}")
    out = {
        "distances": "mm, on the reference's grid" + ("; hd_voxels on the voxel grid without spacing" if hd_voxels else ""),
        "empty_precision": f"an empty prediction against a lesion has precision {'0' if empty_precision == 'zero' else 'NaN (skipped)'}",
        "lesions": "26-connected components; FP = a predicted component overlapping no reference voxel (ISLES'22)",
        **SUMMARY_RULES,
    }
    out.update({k: v for k, v in more.items() if v is not None})
    return out


def conventions_line(conv: dict) -> str:
    """One Markdown paragraph that states the conventions of a report."""
    return "Conventions: " + "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in conv.items()) + "."


def fmt_metric(x: float | None, digits: int = 3) -> str:
    """A summary value for a Markdown table: fixed digits, or "–" where no case gave one."""
    return "–" if x is None else f"{x:.{digits}f}"


def evaluate(
    pred: str | os.PathLike,
    ref: str | os.PathLike,
    out: str | os.PathLike,
    label_key: str = "label",
    split: str = "training",
    image_pred: str | os.PathLike | None = None,
    image_key: str | None = None,
    margin_mm: float = 10.0,
    folds: list[int] | None = None,
    reference_percentile: float | None = None,
    size_groups_ml: list[float] | None = None,
    empty_precision: str = "nan",
    hd_voxels: bool = False,
    image_data_range: float | None = None,
) -> dict:
    """Score every case of ``split`` in datalist ``ref`` (only those of ``folds`` when given); returns the
    summary (also written to ``out``). ``image_data_range`` defaults to 1 with ``reference_percentile`` (the
    scaled image's range) and to each reference image's max − min without."""
    if image_data_range is None and reference_percentile is not None:
        image_data_range = 1.0
    conv = conventions(empty_precision, hd_voxels, image_data_range=None if image_pred is None else (image_data_range or "each reference's max - min"))
    pred, out = Path(pred), Path(out)
    if not pred.is_dir():
        raise InputError(pred, "prediction folder does not exist")
    if image_pred is not None and image_key is None:
        raise ValueError("image_key (the datalist modality to compare with) is needed with image_pred")
    entries = load_datalist_entries(ref, split) if folds is None else select_entries(ref, split, folds=list(folds))
    rows, failures = [], []
    for e in entries:
        cid = e.get("case_id", "?")
        try:
            if label_key not in e:
                raise InputError(ref, f"case {cid} has no '{label_key}'")
            ref_vol = load_nifti(e[label_key], "label")
            p_path = find_prediction(pred, cid)
            p_vol = load_nifti(p_path, "label")
            diff = same_grid(p_vol, ref_vol, 1e-3)
            if diff:
                raise InputError(p_path, f"prediction is not on the reference grid: {diff}")
            row = {"case_id": cid, **segmentation_metrics(p_vol.data, ref_vol.data, ref_vol.zooms, empty_precision, hd_voxels)}
            if image_pred is not None:
                if image_key not in e:
                    raise InputError(ref, f"case {cid} has no '{image_key}' to compare the synthesized image with")
                img_ref = load_nifti(e[image_key], "image")
                img = load_nifti(find_prediction(Path(image_pred), cid), "image")
                if img.spatial_shape != img_ref.spatial_shape:
                    raise InputError(img.path, f"shape {img.spatial_shape} differs from {img_ref.path}")
                reference = img_ref.data if reference_percentile is None else scale_to_percentile(img_ref.data, reference_percentile)
                row.update(image_quality(img.data, reference, ref_vol.data.astype(bool), ref_vol.zooms, margin_mm, image_data_range))
            rows.append(row)
        except (InputError, ValueError) as err:
            failures.append({"case_id": cid, "error": str(err)})
            print(f"cannot evaluate {cid}: {err}", file=sys.stderr)
    seg_keys = metric_names(hd_voxels)
    keys = seg_keys + (["ssim", "psnr", "ssim_lesion", "psnr_lesion"] if image_pred is not None else [])
    out.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(rows, ["case_id", *keys], out / "metrics.csv")
    summary = {
        "datalist": str(ref),
        "predictions": str(pred),
        "split": split,
        "cases": len(rows),
        "conventions": conv,
        "metrics": summarize(rows, keys),
        "failures": failures,
    }
    if size_groups_ml:
        summary["size_groups"] = {name: {"cases": len(group), "metrics": summarize(group, keys)} for name, group in size_groups(rows, size_groups_ml).items()}
    write_json_atomic(summary, out / "summary.json")
    lines = [
        f"# Evaluation of {pred}",
        "",
        f"{len(rows)} cases scored, {len(failures)} failed. 3D metrics on each reference grid; distances in mm, volumes in mL.",
        "",
        conventions_line(conv),
        "",
        "| metric | mean | sd | median | n |",
        "|---|---|---|---|---|",
    ]
    for k in keys:
        s = summary["metrics"][k]
        lines.append(f"| {k} | {fmt_metric(s['mean'])} | {fmt_metric(s['sd'])} | {fmt_metric(s['median'])} | {s['n']} |")
    for name, group in summary.get("size_groups", {}).items():
        lines += ["", f"## Reference lesion {name} ({group['cases']} cases)", "", "| metric | mean | sd | median | n |", "|---|---|---|---|---|"]
        for k in ("dice", "precision", "recall", "hd", "assd", "abs_rve", *keys[len(seg_keys) :]):
            s = group["metrics"][k]
            lines.append(f"| {k} | {fmt_metric(s['mean'])} | {fmt_metric(s['sd'])} | {fmt_metric(s['median'])} | {s['n']} |")
    if failures:
        lines += ["", "## Failures", ""] + [f"- {f['case_id']}: {f['error']}" for f in failures]
    write_text_atomic("\n".join(lines) + "\n", out / "report.md")
    return summary
