"""The study's report: ``report.json``, ``report.md`` and the overlay PNG a person looks at first."""

from __future__ import annotations

import io
import os
from pathlib import Path

import nibabel as nib
import numpy as np

from ..io.atomic import atomic_path, write_json_atomic, write_text_atomic
from ..visualize import display_window

__all__ = ["write_overlay", "write_report"]


def write_overlay(reference: np.ndarray, mask: np.ndarray, affine: np.ndarray, modality: str, title: str, out: str | os.PathLike, max_slices: int = 12) -> Path:
    """A montage of the axial slices with lesion (up to ``max_slices``, evenly chosen; the middle slice when there is
    none), the lesion's contour in red over ``reference`` (the modality the mask is on; a 4D series as its temporal
    maximum), in the closest RAS orientation, the subject's right on the image's right; ``title`` above. Written
    atomically to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if reference.ndim == 4:
        reference = reference.max(axis=3)
    ornt = nib.orientations.io_orientation(affine)
    image = nib.orientations.apply_orientation(reference, ornt)
    lesion = nib.orientations.apply_orientation(np.asarray(mask) > 0, ornt)
    with_lesion = np.flatnonzero(lesion.any(axis=(0, 1)))
    if len(with_lesion) > max_slices:
        with_lesion = with_lesion[np.linspace(0, len(with_lesion) - 1, max_slices).round().astype(int)]
    slices = list(with_lesion) if len(with_lesion) else [image.shape[2] // 2]
    cols = min(4, len(slices))
    rows = -(-len(slices) // cols)
    vmin, vmax = display_window(image, modality)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, z in zip(axes.ravel(), slices):
        ax.imshow(image[:, :, z].T, cmap="gray", vmin=vmin, vmax=vmax, origin="lower")
        if lesion[:, :, z].any():
            ax.contour(lesion[:, :, z].T.astype(float), levels=[0.5], colors="red", linewidths=1.0, origin="lower")
        ax.set_title(f"slice {z}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    with atomic_path(out) as tmp:
        tmp.write_bytes(buf.getvalue())
    return Path(out)


def write_report(report: dict, out_dir: str | os.PathLike) -> Path:
    """``report.json`` (everything) and ``report.md`` (a summary table and the overlay) in ``out_dir``, atomically."""
    out_dir = Path(out_dir)
    write_json_atomic(report, out_dir / "report.json")
    s = report["lesions"]
    rows = [
        ("study", report["study"]),
        ("mask", f"`{report['mask']}` ({report['mask_from']})"),
        ("total lesion volume", f"{s['total_volume_ml']:.2f} mL"),
        ("lesions (26-connected)", str(s["lesion_count"])),
        ("largest lesion", f"{s['largest_lesion_ml']:.2f} mL"),
        ("left / right hemisphere", f"{s['volume_ml_by_hemisphere']['left']:.2f} / {s['volume_ml_by_hemisphere']['right']:.2f} mL"),
        ("bundles", ", ".join(f"{b['name']} {b['version']}" for b in report["bundles"])),
        ("seconds", f"{report['seconds']:.1f}"),
    ]
    if report.get("dicom_seg"):
        rows.insert(2, ("DICOM SEG", f"`{report['dicom_seg']['file']}`, referencing series {report['dicom_seg']['references_series']}"))
    if report.get("dicom_sr"):
        rows.insert(3, ("DICOM SR", f"`{report['dicom_sr']['file']}`, a TID 1500 measurement report referencing the SEG"))
    text = "\n".join(
        [
            f"# Lesion segmentation: {report['study']}",
            "",
            "| | |",
            "|---|---|",
            *(f"| {k} | {v} |" for k, v in rows),
            "",
            f"![lesion overlay]({report['overlay']})",
            "",
            "Research software, trained on the data named in each bundle's README; not a medical device.",
            "",
        ]
    )
    write_text_atomic(text, out_dir / "report.md")
    return out_dir / "report.json"
