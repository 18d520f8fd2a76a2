"""brain_mask / BrainMaskd: the brain of a skull-stripped study from one modality as released, robust to what the
authors' test (first channel > 0) is not: negative voxels, a background offset, a noisy background."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scipy import ndimage

from strokezoo.errors import InputError
from strokezoo.transforms import BrainMaskd, brain_mask


def phantom(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A skull-stripped head: an ellipsoid of tissue (100-400) with a dark ventricle (5) on a zero background."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in (40, 48, 30)), indexing="ij")
    brain = (x / 0.8) ** 2 + (y / 0.85) ** 2 + (z / 0.75) ** 2 < 1
    volume = np.where(brain, rng.uniform(100, 400, brain.shape), 0.0)
    volume[(x / 0.15) ** 2 + (y / 0.3) ** 2 + (z / 0.2) ** 2 < 1] = 5.0  # CSF: dark, but inside the brain
    return volume.astype(np.float32), brain


def test_on_a_clean_zero_background_it_is_the_authors_test():
    volume, _ = phantom()
    assert np.array_equal(brain_mask(volume), volume > 0)


def test_negative_voxels_and_an_offset_background_change_nothing():
    volume, brain = phantom()
    stray = volume.copy()
    stray[0, 0, 0] = stray[20, 1, 3] = -5.0  # the voxel that, after (x - min) scaling, made 99.99 % of a volume "brain"
    assert np.array_equal(brain_mask(stray), brain)
    assert np.array_equal(brain_mask(volume + 250.0), brain)  # background at 250, not 0
    assert np.array_equal(brain_mask(volume - 50.0), brain)  # background below zero


@pytest.mark.parametrize("seed", range(3))
def test_a_noisy_background_leaves_the_brain_and_no_specks(seed):
    volume, brain = phantom(seed)
    noisy = volume + np.random.default_rng(seed).normal(0.0, 10.0, volume.shape).astype(np.float32)
    mask = brain_mask(noisy)
    assert (mask != brain).mean() < 0.002  # disagreements only on the brain's outline
    assert ndimage.label(mask)[1] == 1  # one component: no speck of noise outside it
    assert (noisy > 0).mean() > 0.5 and mask.mean() < brain.mean() * 1.01  # the authors' test takes half the background


def test_the_transform_names_the_file_of_an_empty_modality():
    volume, brain = phantom()
    meta = {"filename_or_obj": "/data/case1/dwi.nii.gz"}
    out = BrainMaskd("dwi")({"dwi": MetaTensor(torch.as_tensor(volume)[None], meta=meta), "flair": torch.zeros(1, 2, 2, 2)})
    assert out["brain"].shape == (1, 40, 48, 30) and out["brain"].dtype == torch.uint8 and np.array_equal(out["brain"][0].numpy(), brain)
    with pytest.raises(InputError, match=r"/data/case1/dwi.nii.gz: no brain mask from 'dwi'"):
        BrainMaskd("dwi")({"dwi": MetaTensor(torch.zeros(1, 8, 8, 8), meta=meta)})
    with pytest.raises(ValueError, match="one reference modality"):
        BrainMaskd(["dwi", "flair"])
