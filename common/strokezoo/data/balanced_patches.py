"""Balanced training patch sampling (Clèrigues et al., CMPB 2020, Sec. 3.3, Fig. 3).

A goal number of patches is set per case. Half are centred on healthy brain voxels taken at regular spatial
steps, so that every part of the brain is represented; half are centred on lesion voxels, each moved by a
random offset of at most half the patch size per axis (so the sampled lesion voxel stays inside the patch and
the tissue around the lesion is represented too). Small lesions are sampled several times over; the random
offsets make the repeats different patches. MONAI's ``RandCropByPosNegLabeld`` draws both classes at random
and has no regular healthy grid or bounded lesion offset, hence this sampler.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["balanced_patch_centres"]


def _regular_subset(voxels: np.ndarray, n: int) -> np.ndarray:
    """``n`` rows of ``voxels`` (in raster order) at a regular stride, all of them (repeated) when ``n`` exceeds them."""
    if n <= 0 or len(voxels) == 0:
        return voxels[:0]
    index = np.floor(np.arange(n) * (len(voxels) / n)).astype(np.int64)
    return voxels[index]


def balanced_patch_centres(
    label: np.ndarray,
    brain: np.ndarray,
    num_patches: int,
    patch_size: Sequence[int] = (24, 24, 16),
    rng: np.random.Generator | None = None,
    lesion_fraction: float = 0.5,
    max_offset: Sequence[int] | None = None,
    healthy_sampling: str = "regular",
) -> tuple[np.ndarray, np.ndarray]:
    """Patch centres of one case: ``(lesion_centres, healthy_centres)``, each ``(K, 3)`` int voxel indices.

    Args:
        label: 3D lesion mask.
        brain: 3D mask of the voxels that count as brain (e.g. first modality > 0).
        num_patches: goal number of patches for the case (paper: 10,000).
        patch_size: the patch, for the lesion offset bound (at most half the patch per axis, the sampled voxel
            stays inside the patch centred as in :class:`strokezoo.inferers.DensePatchInferer`).
        rng: random generator for the lesion offsets and the order of lesion voxels.
        lesion_fraction: share of lesion-centred patches (paper: 0.5); a case without lesion gets healthy ones only.
        max_offset: largest lesion offset per axis (default: half the patch, the most that keeps the lesion voxel
            inside; 0 centres the patches on lesion voxels, as de Vries et al. 2021 do).
        healthy_sampling: ``"regular"``: healthy centres evenly spaced in raster order (Clèrigues et al. 2020,
            "at regular spatial steps"); ``"random"``: drawn at random with ``rng`` (de Vries et al. 2021, "randomly
            select patches"), without replacement while there are enough voxels.

    Lesion centres are clipped to the volume after the offset; healthy centres are brain voxels outside the
    lesion.
    """
    if healthy_sampling not in ("regular", "random"):
        raise ValueError(f"healthy_sampling must be 'regular' or 'random', got {healthy_sampling!r}")
    label = np.asarray(label, bool)
    brain = np.asarray(brain, bool)
    if label.shape != brain.shape or label.ndim != len(patch_size):
        raise ValueError(f"label {label.shape}, brain {brain.shape} and patch {tuple(patch_size)} must have the same dimensions")
    rng = rng or np.random.default_rng()
    lesion_voxels = np.argwhere(label)
    healthy_voxels = np.argwhere(brain & ~label)
    n_lesion = int(round(num_patches * lesion_fraction)) if len(lesion_voxels) else 0
    n_healthy = num_patches - n_lesion
    lesion = _regular_subset(lesion_voxels[rng.permutation(len(lesion_voxels))], n_lesion)
    # a patch centred on c covers [c - p//2, c - p//2 + p): offsets in [-(p - p//2 - 1), p//2] keep the voxel inside
    size = np.asarray(patch_size)
    low, high = size - size // 2 - 1, size // 2
    if max_offset is not None:
        low, high = np.minimum(low, max_offset), np.minimum(high, max_offset)
    lesion = lesion + rng.integers(-low, high + 1, size=lesion.shape)
    lesion = np.clip(lesion, 0, np.asarray(label.shape) - 1)
    if healthy_sampling == "random" and len(healthy_voxels):
        healthy = healthy_voxels[rng.choice(len(healthy_voxels), n_healthy, replace=n_healthy > len(healthy_voxels))]
    else:
        healthy = _regular_subset(healthy_voxels, n_healthy)
    return lesion.astype(np.int64), healthy.astype(np.int64)
