"""``strokezoo show``: a montage of a case's modalities with the lesion outline, for people and for docs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .data.layouts import modality_of
from .io.atomic import atomic_path
from .io.nifti import is_nifti, load_nifti

__all__ = ["display_window", "show_case"]

_CT_KEYS = {"ct", "ncct", "cta", "ctp"}
_BRAIN_WINDOW_HU = (0.0, 80.0)


def display_window(values: np.ndarray, modality: str) -> tuple[float, float]:
    """Grey-level range to show ``values`` of ``modality``: the brain window (0–80 HU) for CT, else the 1st–99th
    percentile of the non-zero values."""
    if modality in _CT_KEYS:
        return _BRAIN_WINDOW_HU
    inside = values[values != 0]
    lo, hi = np.percentile(inside, [1, 99]) if inside.size else (0.0, 1.0)
    return float(lo), float(hi if hi > lo else lo + 1)


def _bids_derivative_masks(subject_dir: Path) -> list[Path]:
    """Lesion masks of a BIDS subject, which live under ``<dataset>/derivatives/<sub>/`` (ISLES 2022/2024)."""
    for parent in subject_dir.parents:
        found = (
            sorted(
                p
                for p in (parent / "derivatives" / subject_dir.name).rglob("*")
                if p.is_file() and is_nifti(p) and modality_of(p) == "label" and "rater" not in p.name
            )
            if (parent / "derivatives").is_dir()
            else []
        )
        if found:
            return found
    return []


def _per_panel(masks: str | os.PathLike | Mapping[str, str] | None, keys) -> dict:
    """``{modality: mask array or None}``: one mask for every panel, or a mask per modality."""
    if masks is None:
        return dict.fromkeys(keys)
    if isinstance(masks, Mapping):
        loaded = {k: load_nifti(p, "label", allow_zero=True).data for k, p in masks.items()}
        return {k: loaded.get(k) for k in keys}
    m = load_nifti(masks, "label", allow_zero=True).data
    return dict.fromkeys(keys, m)


def show_case(
    case_dir: str | os.PathLike,
    out: str | os.PathLike = "case.png",
    label: str | Mapping[str, str] | None = None,
    z: int | None = None,
    pred: str | Mapping[str, str] | None = None,
) -> Path:
    """Draw every modality of ``case_dir`` at one axial slice (the lesion's largest, unless ``z``), with
    the lesion outlined in red and, given ``pred`` (a mask on the label's grid), the prediction in blue;
    4D series are shown as their temporal maximum. ``label`` and ``pred`` may map modalities to masks
    (``{"adc": …, "dwi": …}``) for methods that segment each modality on its own; the slice is then chosen
    on the first label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    case_dir = Path(case_dir)
    files = sorted(p for p in case_dir.rglob("*") if p.is_file() and is_nifti(p))
    images, masks = {}, []
    for p in files:
        key = modality_of(p)
        if key == "label":
            masks.append(p)
        elif key is not None and key not in images:
            images[key] = p
    if label and not isinstance(label, Mapping):
        masks = [Path(label)]
    elif label:
        masks = [Path(p) for p in label.values()]
    elif not masks and case_dir.name.startswith("sub-"):
        masks = _bids_derivative_masks(case_dir)
    if not images:
        raise FileNotFoundError(f"{case_dir}: no image of a known modality found")
    lesion = load_nifti(masks[0], "label").data if masks else None
    vols = {}
    for key, p in images.items():
        try:
            v = load_nifti(p, "image", allow_zero=True).data
        except ValueError:
            v = load_nifti(p, "series", allow_zero=True).data.max(-1)
        vols[key] = v
    # ``z`` indexes the lesion's grid (else the first image's); images on other grids show the same relative height.
    depth = lesion.shape[2] if lesion is not None else next(iter(vols.values())).shape[2]
    if z is None:
        z = int(np.argmax(lesion.sum((0, 1)))) if lesion is not None and lesion.any() else depth // 2
    lesions = _per_panel(label, vols) if isinstance(label, Mapping) else dict.fromkeys(vols, lesion)
    predicted = _per_panel(pred, vols)
    n = len(vols)
    fig, axes = plt.subplots(1, n, figsize=(3 * n, 3.4), squeeze=False)
    for ax, (key, v) in zip(axes[0], vols.items()):
        zz = z if v.shape[2] == depth else min(v.shape[2] - 1, int(round((z + 0.5) * v.shape[2] / depth - 0.5)))
        sl = v[:, :, zz].T
        lo, hi = display_window(sl, key)
        ax.imshow(sl, cmap="gray", origin="lower", vmin=lo, vmax=hi)
        for mask, colour in ((lesions[key], "red"), (predicted[key], "deepskyblue")):
            if mask is not None and mask.shape == v.shape[:3] and mask[:, :, zz].any():
                ax.contour(mask[:, :, zz].T, levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(f"{key} (z={zz})", fontsize=9)
        ax.axis("off")
    fig.suptitle(case_dir.name, fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return out
