"""Boundary class, optical distortion and the slice dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from strokezoo.data.slices import SliceDataset
from strokezoo.transforms import BoundaryClass, BoundaryClassd, RandOpticalDistortiond, optical_distortion


def outline_by_hand(mask: np.ndarray) -> np.ndarray:
    """Lesion pixels with a 4-neighbour outside the lesion or outside the image."""
    h, w = mask.shape
    out = np.zeros_like(mask, dtype=bool)
    for i in range(h):
        for j in range(w):
            if not mask[i, j]:
                continue
            for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                a, b = i + di, j + dj
                if not (0 <= a < h and 0 <= b < w) or not mask[a, b]:
                    out[i, j] = True
    return out


def test_boundary_class_on_a_square():
    m = torch.zeros(1, 7, 7)
    m[0, 1:6, 1:6] = 1
    y = BoundaryClass()(m)[0]
    assert int((y == 2).sum()) == 16 and int((y == 1).sum()) == 9 and int((y == 0).sum()) == 49 - 25


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_boundary_class_matches_hand_outline_with_holes_and_image_border(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((12, 10)) > 0.45
    mask[0, :] = True  # touches the image border
    y = BoundaryClass()(torch.as_tensor(mask[None], dtype=torch.float32))[0].numpy()
    expected = np.where(outline_by_hand(mask), 2, np.where(mask, 1, 0))
    assert np.array_equal(y, expected)


def test_boundary_class_is_per_axial_slice():
    v = torch.zeros(1, 5, 5, 3)
    v[0, 1:4, 1:4, :] = 1  # a 3x3 prism: the centre of each slice is interior in-plane
    y = BoundaryClassd(keys="label")({"label": v})["label"][0]
    for z in range(3):
        assert y[2, 2, z] == 1 and int((y[..., z] == 2).sum()) == 8


def test_optical_distortion_identity_and_label_values():
    torch.manual_seed(0)
    img = torch.rand(2, 33, 33)
    assert torch.allclose(optical_distortion(img, 0.0), img, atol=1e-6)
    label = (torch.rand(1, 33, 33) > 0.5).float()
    t = RandOpticalDistortiond(keys=["image", "label"], prob=1.0, distort_limit=0.3, mode=["bilinear", "nearest"])
    t.set_random_state(3)
    out = t({"image": img, "label": label})
    assert set(out["label"].unique().tolist()) <= {0.0, 1.0}
    assert out["image"][:, 16, 16].allclose(img[:, 16, 16], atol=1e-5)  # the centre does not move
    assert not torch.allclose(out["image"], img)


def test_optical_distortion_moves_pixels_radially():
    img = torch.zeros(1, 41, 41)
    img[0, 20, 38] = 1.0  # 18 px right of the centre
    k = 2.0
    # output pixel at offset r samples the source at r (1 + k (r/f)^2); the source at 10 px is reached from
    # r with r (1 + k r^2 / 41^2) = 18
    r = 18.0
    for _ in range(100):
        r = 18.0 / (1 + k * (r / 41) ** 2)
    out = optical_distortion(img, k)[0]
    col = out[20].argmax().item()
    assert abs(col - (20 + r)) <= 1.0 and col <= 35


def test_slice_dataset_yields_every_slice_of_every_volume():
    vols = [{"image": torch.rand(2, 8, 8, d), "label": (torch.rand(1, 8, 8, d) > 0.5).float(), "case_id": f"c{d}"} for d in (3, 5)]
    ds = SliceDataset(vols, volume_transform=lambda e: e, keys=("image", "label"))
    assert len(ds) == 8
    s = ds[4]  # second volume, slice 1
    assert s["case_id"] == "c5" and s["image"].shape == (2, 8, 8)
    assert torch.equal(s["image"], vols[1]["image"][..., 1]) and torch.equal(s["label"], vols[1]["label"][..., 1])
