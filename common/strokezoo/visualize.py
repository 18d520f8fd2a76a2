"""``strokezoo show``: a montage of a case's modalities with the lesion outline, for people and for docs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .data.layouts import modality_of
from .data.nifti import is_nifti, load_nifti

__all__ = ["show_case"]


def show_case(case_dir: str | os.PathLike, out: str | os.PathLike = "case.png", label: str | None = None, z: int | None = None) -> Path:
    """Draw every modality of ``case_dir`` at one axial slice (the lesion's largest, unless ``z``), with
    the lesion outlined in red; 4D series are shown as their temporal maximum."""
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
    if label:
        masks = [Path(label)]
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
    first = next(iter(vols.values()))
    if z is None:
        z = int(np.argmax(lesion.sum((0, 1)))) if lesion is not None and lesion.any() else first.shape[2] // 2
    n = len(vols)
    fig, axes = plt.subplots(1, n, figsize=(3 * n, 3.4), squeeze=False)
    for ax, (key, v) in zip(axes[0], vols.items()):
        zz = min(v.shape[2] - 1, int(round(z * v.shape[2] / first.shape[2])))
        sl = v[:, :, zz].T
        lo, hi = np.percentile(sl, [1, 99]) if sl.any() else (0, 1)
        ax.imshow(sl, cmap="gray", origin="lower", vmin=lo, vmax=hi if hi > lo else lo + 1)
        if lesion is not None and lesion.shape == v.shape[:3] and lesion[:, :, zz].any():
            ax.contour(lesion[:, :, zz].T, levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(f"{key} (z={zz})", fontsize=9)
        ax.axis("off")
    fig.suptitle(case_dir.name, fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, out)
    return out
