"""Brain anatomy for synthetic subjects: the MNI152 2009a templates, posed and resampled.

Tissue probability maps (grey matter, white matter; CSF as the rest of the intracranial volume) come
from the ICBM152 2009a symmetric templates that nilearn ships inside its wheel (Fonov et al., NeuroImage
2011); nothing is downloaded. Skull and scalp are shells at 2-7 mm and 7-12 mm outside the intracranial
volume. A subject is the atlas under a random similarity transform (rotation, translation, head size);
:func:`sample_fractions` gives the tissue fractions of any voxel grid, averaging sub-samples across thick
slices so that partial volumes look like those of a real thick-slice acquisition.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage

__all__ = ["Atlas", "Pose", "Grid", "TISSUES", "mni_atlas", "sample_fractions", "random_pose"]

TISSUES = ("gm", "wm", "csf", "skull", "scalp")
_TEMPLATE = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"


@dataclass
class Atlas:
    """Tissue fractions on the 1 mm MNI grid: ``maps`` (len(TISSUES), X, Y, Z) and their ``affine``."""

    maps: np.ndarray
    affine: np.ndarray

    def world_to_index(self, mni: np.ndarray) -> np.ndarray:
        inv = np.linalg.inv(self.affine).astype(np.float32)
        return mni @ inv[:3, :3].T + inv[:3, 3]


def _template_dir() -> Path:
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("nilearn is required for the MNI152 templates (pip install nilearn)")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


@lru_cache(maxsize=1)
def mni_atlas() -> Atlas:
    """Load (once per process) the MNI152 tissue maps and derive CSF, skull and scalp."""
    d = _template_dir()
    t1 = nib.load(d / _TEMPLATE.format("t1"))
    gm = np.asarray(nib.load(d / _TEMPLATE.format("gm")).dataobj, np.float32) / 255.0
    wm = np.asarray(nib.load(d / _TEMPLATE.format("wm")).dataobj, np.float32) / 255.0
    icv = ndimage.binary_fill_holes(np.asarray(t1.dataobj) > 0)
    outside = ndimage.distance_transform_edt(~icv).astype(np.float32)
    csf = np.clip(icv.astype(np.float32) - gm - wm, 0.0, 1.0)
    skull = ((outside > 2.0) & (outside <= 7.0)).astype(np.float32)
    scalp = ((outside > 7.0) & (outside <= 12.0)).astype(np.float32)
    # Dura/CSF shell between brain and skull so the skull does not touch parenchyma.
    csf = np.maximum(csf, ((outside > 0) & (outside <= 2.0)).astype(np.float32))
    maps = np.stack([gm, wm, csf, skull, scalp])
    return Atlas(ndimage.gaussian_filter(maps, sigma=(0, 0.6, 0.6, 0.6)), t1.affine.astype(np.float64))


@dataclass
class Pose:
    """Similarity transform from MNI space to scanner space: ``x = scale * R @ mni + t`` (mm)."""

    rotation: np.ndarray
    translation: np.ndarray
    scale: float

    def to_mni(self, world: np.ndarray) -> np.ndarray:
        m = (self.rotation / self.scale).astype(np.float32)
        return (world - self.translation.astype(np.float32)) @ m

    def to_world(self, mni: np.ndarray) -> np.ndarray:
        return self.scale * (np.asarray(mni) @ self.rotation.T) + self.translation


def _rotation(angles_deg: np.ndarray) -> np.ndarray:
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_pose(rng: np.random.Generator) -> Pose:
    """Head pose: rotations up to about 8 deg (pitch, roll) and 10 deg (yaw), shifts of 8 mm, size 0.85-1.0 of MNI152."""
    angles = rng.uniform(-1, 1, 3) * np.array([8.0, 6.0, 10.0])
    return Pose(_rotation(angles), rng.uniform(-8, 8, 3) + np.array([0.0, 15.0, 10.0]), float(rng.uniform(0.85, 1.0)))


@dataclass
class Grid:
    """A voxel grid: ``shape`` and the voxel-to-world ``affine`` (RAS, mm)."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    @classmethod
    def centred(cls, shape: tuple[int, int, int], spacing: tuple[float, float, float], centre=(0.0, 0.0, 0.0)) -> Grid:
        affine = np.diag([*spacing, 1.0])
        affine[:3, 3] = np.asarray(centre) - (np.asarray(shape) - 1) / 2.0 * np.asarray(spacing)
        return cls(tuple(int(s) for s in shape), affine)  # type: ignore[arg-type]

    @property
    def spacing(self) -> np.ndarray:
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    def world_points(self, z_sub: int = 1) -> np.ndarray:
        """World coordinates (z_sub, X, Y, Z, 3) of sub-samples spread evenly across each slice."""
        offsets = (np.arange(z_sub) + 0.5) / z_sub - 0.5
        a = self.affine.astype(np.float32)
        pts = np.empty((z_sub, *self.shape, 3), np.float32)
        i, j, k = (np.arange(s, dtype=np.float32) for s in self.shape)
        for n, o in enumerate(offsets):
            for axis in range(3):
                pts[n, ..., axis] = a[axis, 0] * i[:, None, None] + a[axis, 1] * j[None, :, None] + a[axis, 2] * (k[None, None, :] + np.float32(o)) + a[axis, 3]
        return pts

    def z_subsamples(self) -> int:
        return int(min(4, max(1, np.ceil(self.spacing[2] / 2.0))))


def sample_fractions(atlas: Atlas, mni: np.ndarray) -> np.ndarray:
    """Trilinear tissue fractions (len(TISSUES), ...) at MNI coordinates ``mni`` (..., 3); zero outside."""
    lead = mni.shape[:-1]
    idx = atlas.world_to_index(mni.reshape(-1, 3))
    size = np.array(atlas.maps.shape[1:], dtype=np.float32)
    norm = idx * (2.0 / (size - 1)).astype(np.float32) - 1.0  # align_corners=True convention
    grid = torch.from_numpy(np.ascontiguousarray(norm[:, ::-1])).view(1, 1, 1, -1, 3)
    maps = torch.from_numpy(atlas.maps).unsqueeze(0)
    out = torch.nn.functional.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.view(len(TISSUES), *lead).numpy()
