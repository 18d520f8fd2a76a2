"""Reading NIfTI inputs defensively and writing outputs atomically.

Every reader in strokezoo goes through :func:`load_nifti`, so that a bad file (empty, truncated, not a
NIfTI, non-finite voxels, an all-zero image, a label that is not binary, a series with the wrong number of
dimensions) is reported once, the same way, as an :class:`InputError` that names the file and the problem.
Outputs are written with :func:`save_nifti`, which writes a temporary file beside the target and renames
it, so a reader never sees a half-written file and an interrupted run leaves no partial output.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np

from ..errors import InputError
from .atomic import atomic_path

__all__ = ["NiftiVolume", "load_nifti", "save_nifti", "same_grid", "NIFTI_SUFFIXES", "is_nifti"]

NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: Refuse headers that claim more voxels than any stroke study has (a corrupt header, not a scan).
MAX_VOXELS = 2**31
Kind = Literal["image", "label", "series"]


@dataclass
class NiftiVolume:
    """Voxel array (x, y, z[, t]) with its affine; ``zooms`` are the spatial voxel sizes in mm."""

    path: str
    data: np.ndarray
    affine: np.ndarray
    zooms: tuple[float, float, float]
    header: nib.Nifti1Header

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape[:3])  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.zooms)) / 1000.0


def is_nifti(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def _squeeze_series(path: Path, shape: tuple[int, ...], kind: Kind) -> tuple[int, ...]:
    """Shape after dropping singleton dimensions past the third; raise when it does not fit ``kind``."""
    extra = [s for s in shape[3:] if s != 1]
    spatial = tuple(shape[:3])
    if len(shape) < 3 or min(spatial) < 1:
        raise InputError(path, f"expected a 3D volume, found shape {shape}")
    if kind == "series":
        if len(extra) != 1:
            raise InputError(path, f"expected a 4D series (x, y, z, t) or (x, y, z, 1, t), found shape {shape}")
        return spatial + (extra[0],)
    if extra:
        raise InputError(path, f"expected a 3D volume, found a series of shape {shape}")
    return spatial


def load_nifti(
    path: str | os.PathLike,
    kind: Kind = "image",
    *,
    min_frames: int = 1,
    allow_zero: bool = False,
    dtype: np.dtype | type = np.float32,
) -> NiftiVolume:
    """Load one NIfTI file and check it.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file.
        kind: ``"image"`` (3D), ``"label"`` (3D, binarised) or ``"series"`` (4D; a 5-D
            ``(x, y, z, 1, t)`` file, as some ISLES 2017 4DPWI files are stored, is squeezed to 4D).
        min_frames: for a series, the fewest time frames accepted.
        allow_zero: accept an image whose voxels are all zero (labels may always be empty).
        dtype: dtype of the returned array (labels are returned as uint8).

    Raises:
        InputError: naming the file and the problem. Labels: a label that holds exactly one non-zero
        value (a scaled-integer mask, e.g. 0/255 or a scale slope) is binarised ``> 0`` with a warning;
        more than one distinct non-zero value, or a negative value, is refused.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file does not exist")
    if p.is_dir():
        raise InputError(p, "is a directory, expected a NIfTI file")
    if p.stat().st_size == 0:
        raise InputError(p, "empty file (0 bytes)")
    if not is_nifti(p):
        raise InputError(p, "not a NIfTI file name (expected .nii or .nii.gz)")
    try:
        img = nib.load(str(p))
    except Exception as e:  # nibabel raises several types for bad headers or bad gzip streams
        raise InputError(p, f"not a readable NIfTI file ({type(e).__name__}: {e})") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(p, f"not a NIfTI image (read as {type(img).__name__})")
    shape = tuple(int(s) for s in img.shape)
    if int(np.prod(shape, dtype=np.float64)) > MAX_VOXELS:
        raise InputError(p, f"header claims an implausible shape {shape}")
    out_shape = _squeeze_series(p, shape, "image" if kind == "label" else kind)
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as e:
        raise InputError(p, f"truncated or corrupt voxel data ({type(e).__name__}: {e})") from None
    data = data.reshape(out_shape)
    if kind == "series" and out_shape[3] < min_frames:
        raise InputError(p, f"series has {out_shape[3]} time frames, at least {min_frames} are needed")
    if data.dtype.kind == "f":
        bad = ~np.isfinite(data)
        if bad.any():
            raise InputError(p, f"{int(bad.sum())} voxels are NaN or Inf")
    if kind == "label":
        values = np.unique(data)
        if (values < 0).any():
            raise InputError(p, f"label has negative values {values[values < 0][:5].tolist()}")
        nonzero = values[values != 0]
        if len(nonzero) > 1:
            raise InputError(p, f"label is not binary: values {values[:8].tolist()}{' ...' if len(values) > 8 else ''}")
        if len(nonzero) == 1 and nonzero[0] != 1:
            warnings.warn(f"{p}: label stored as {{0, {float(nonzero[0]):.9g}}} (scaled integer?); binarised as > 0", stacklevel=2)
        data = (data > 0).astype(np.uint8)
    else:
        if not allow_zero and not np.any(data):
            raise InputError(p, "all voxels are zero")
        data = data.astype(dtype, copy=False)
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    if min(zooms) <= 0:
        raise InputError(p, f"non-positive voxel size {zooms}")
    return NiftiVolume(str(p), data, img.affine.copy(), zooms, img.header)  # type: ignore[arg-type]


def same_grid(a: NiftiVolume, b: NiftiVolume, atol_mm: float = 1e-3) -> str | None:
    """``None`` when ``a`` and ``b`` share a voxel grid, else a sentence saying how they differ.

    ``atol_mm`` bounds the difference of the affines' entries (direction x spacing and origin, in mm):
    a rounding difference passes, a real shift does not.
    """
    if a.spatial_shape != b.spatial_shape:
        return f"shape {a.spatial_shape} differs from {b.spatial_shape} of {b.path}"
    diff = float(np.abs(a.affine - b.affine).max())
    if diff > atol_mm:
        return f"affine differs from that of {b.path} by up to {diff:.4g} mm"
    return None


def save_nifti(
    data: np.ndarray,
    affine: np.ndarray,
    path: str | os.PathLike,
    dtype: np.dtype | type | None = None,
    *,
    scale_slope: float | None = None,
    zooms: tuple[float, ...] | None = None,
) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename).

    Args:
        dtype: on-disk dtype (default: that of ``data``).
        scale_slope: store ``data / scale_slope`` and set the header's ``scl_slope``, as scanners do
            for integer maps with a physical unit.
        zooms: voxel sizes to record beyond the spatial ones (e.g. the frame interval of a series).
    """
    path = Path(path)
    dtype = np.dtype(dtype or data.dtype)
    stored = data if scale_slope is None else data / scale_slope
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        stored = np.clip(np.rint(stored), info.min, info.max)
    img = nib.Nifti1Image(stored.astype(dtype), affine)
    img.header.set_xyzt_units("mm", "sec")
    if zooms is not None:
        img.header.set_zooms(zooms)
    if scale_slope is not None:
        img.header.set_slope_inter(scale_slope, 0.0)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path
