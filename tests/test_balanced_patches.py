"""balanced_patch_centres (Clèrigues et al. 2020, Sec. 3.3): balance, bounded lesion offsets, regular healthy grid."""

from __future__ import annotations

import numpy as np
import pytest

from strokezoo.data.balanced_patches import balanced_patch_centres

PATCH = (24, 24, 16)


def box(c, patch=PATCH):
    return tuple(slice(max(0, ci - p // 2), ci - p // 2 + p) for ci, p in zip(c, patch))


@pytest.fixture
def case():
    brain = np.zeros((60, 60, 30), bool)
    brain[5:55, 5:55, 3:27] = True
    label = np.zeros_like(brain)
    label[40:43, 20:22, 10:12] = True  # 12 voxels: each is sampled many times
    return label, brain


def test_half_lesion_half_healthy_and_every_lesion_patch_holds_lesion(case):
    label, brain = case
    lesion, healthy = balanced_patch_centres(label, brain, 1000, PATCH, np.random.default_rng(0))
    assert len(lesion) == len(healthy) == 500
    assert not label[tuple(healthy.T)].any() and brain[tuple(healthy.T)].all()
    # the offset moves the centre off the lesion voxel, but never so far that the patch loses it
    assert all(label[box(c)].any() for c in lesion)
    assert (~label[tuple(lesion.T)]).sum() > 100  # many centres land around the lesion
    offsets = np.abs(lesion - np.array([41, 20.5, 10.5])).max(0)
    assert (offsets <= np.array(PATCH) // 2 + 2).all()
    assert ((lesion >= 0) & (lesion < label.shape)).all()


def test_healthy_centres_are_spread_evenly_over_the_brain(case):
    label, brain = case
    _, healthy = balanced_patch_centres(label, brain, 2000, PATCH, np.random.default_rng(0))
    counts = np.histogram(healthy[:, 0], bins=5, range=(5, 55))[0]  # raster order: x is the slowest axis
    assert counts.min() >= 0.9 * counts.max()
    assert len(np.unique(healthy, axis=0)) == len(healthy)


def test_case_without_lesion_and_bad_shapes(case):
    _, brain = case
    lesion, healthy = balanced_patch_centres(np.zeros_like(brain), brain, 100, PATCH, np.random.default_rng(0))
    assert len(lesion) == 0 and len(healthy) == 100
    with pytest.raises(ValueError, match="same dimensions"):
        balanced_patch_centres(np.zeros((4, 4)), np.zeros((4, 4)), 10, PATCH)
