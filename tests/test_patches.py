"""BalancedPatchDataset and the anatomically feasible lesion augmentations (Clèrigues et al. 2020, Sec. 3.3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import Flipd, Identityd, OneOf, Rotate90d

from strokezoo.data.patches import BalancedPatchDataset

PATCH = (8, 8, 4)


def volumes(n=2):
    out = []
    for i in range(n):
        image = torch.zeros(2, 20, 20, 12)
        image[:, 2:18, 2:18, 1:11] = torch.rand(2, 16, 16, 10) + 0.1  # brain
        label = torch.zeros(1, 20, 20, 12)
        label[0, 10 + i : 13 + i, 5:8, 4:6] = 1
        image[1] += 3 * label[0]  # the lesion is bright in channel 1
        out.append({"case_id": f"c{i}", "image": image, "label": label})
    return out


#: the paper's five anatomically feasible operations, the same for image and label
FEASIBLE = OneOf([
    Identityd(["image", "label"]),
    Flipd(["image", "label"], spatial_axis=0),
    Rotate90d(["image", "label"], k=1, spatial_axes=(0, 1)),
    Rotate90d(["image", "label"], k=2, spatial_axes=(0, 1)),
    Rotate90d(["image", "label"], k=3, spatial_axes=(0, 1)),
])


def test_half_the_patches_hold_lesion_and_patches_are_the_volume_around_their_centre():
    vols = volumes()
    ds = BalancedPatchDataset(vols, volume_transform=lambda e: e, patch_size=PATCH, num_patches=40, seed=0)
    assert len(ds) == 80 and ds.lesion_counts == [20, 20]
    lesion_samples = [ds[i] for i, (_, _, on) in enumerate(ds.index) if on]
    assert all(s["label"].sum() > 0 for s in lesion_samples) and all(s["image"].shape == (2, *PATCH) for s in lesion_samples)
    healthy = [ds[i] for i, (_, _, on) in enumerate(ds.index) if not on]
    assert np.mean([float(s["label"].sum() > 0) for s in healthy]) < 0.5
    # an independent crop: the patch centred on c covers [c - p//2, c - p//2 + p), zero outside the volume
    v, c, _ = ds.index[3]
    ref = torch.zeros(2, *PATCH)
    src = [slice(max(0, ci - p // 2), min(s, ci - p // 2 + p)) for ci, p, s in zip(c, PATCH, (20, 20, 12))]
    dst = [slice(sl.start - (ci - p // 2), sl.stop - (ci - p // 2)) for sl, ci, p in zip(src, c, PATCH)]
    ref[(slice(None), *dst)] = vols[v]["image"][(slice(None), *src)]
    assert torch.equal(ds[3]["image"], ref)


@pytest.mark.parametrize("seed", range(5))
def test_lesion_augmentation_moves_image_and_label_together(seed):
    ds = BalancedPatchDataset(volumes(1), volume_transform=lambda e: e, patch_size=PATCH, num_patches=20, seed=0, lesion_transform=FEASIBLE)
    FEASIBLE.set_random_state(seed)
    for i, (_, _, on) in enumerate(ds.index):
        if on:
            s = ds[i]
            assert s["image"].shape == (2, *PATCH)
            # the bright lesion channel and the label still coincide, whatever operation was drawn
            assert torch.equal(s["image"][1] > 2.0, s["label"][0] > 0)
