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
FEASIBLE = OneOf(
    [
        Identityd(["image", "label"]),
        Flipd(["image", "label"], spatial_axis=0),
        Rotate90d(["image", "label"], k=1, spatial_axes=(0, 1)),
        Rotate90d(["image", "label"], k=2, spatial_axes=(0, 1)),
        Rotate90d(["image", "label"], k=3, spatial_axes=(0, 1)),
    ]
)


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


def test_samples_are_transformed_untracked_with_the_same_values_and_tracking_is_restored():
    """Training samples skip MONAI's metadata bookkeeping (apply_untracked): plain tensors, same numbers."""
    from monai.data import MetaTensor, get_track_meta
    from monai.transforms import Compose, RandFlipd, RandRotate90d

    from strokezoo.data.cached_volumes import apply_untracked

    random = [Compose([RandFlipd(["image", "label"], prob=0.5, spatial_axis=0), RandRotate90d(["image", "label"], prob=0.75, max_k=3)])]
    ds = BalancedPatchDataset(volumes(), volume_transform=lambda e: e, patch_size=PATCH, num_patches=40, seed=0, lesion_transform=FEASIBLE, transform=random[0])
    for t in (FEASIBLE, random[0]):
        t.set_random_state(seed=0)
    untracked = [ds[i] for i in range(len(ds))]
    for t in (FEASIBLE, random[0]):
        t.set_random_state(seed=0)
    tracked = []
    for i in range(len(ds)):
        v, (x, y, z), on_lesion = ds.index[i]
        s = {k: MetaTensor(ds.volumes[v][k][:, x : x + PATCH[0], y : y + PATCH[1], z : z + PATCH[2]].clone()) for k in ("image", "label")}
        s = FEASIBLE(s) if on_lesion else s
        tracked.append(random[0](s))
    assert get_track_meta()
    for u, t in zip(untracked, tracked):
        assert type(u["image"]) is torch.Tensor and isinstance(t["image"], MetaTensor)
        assert torch.equal(u["image"], t["image"].as_tensor()) and torch.equal(u["label"], t["label"].as_tensor())
    with pytest.raises(RuntimeError, match="boom"):
        apply_untracked(lambda s: (_ for _ in ()).throw(RuntimeError("boom")), {})
    assert get_track_meta()  # restored after a failing transform too


def test_healthy_centres_lie_in_the_brain_mask_whatever_the_image_values():
    """Healthy centres come from the ``brain_key`` mask, not from the image's sign: a z-scored image is negative
    in much of the brain and the mask keeps every centre in it."""
    vols = volumes()
    for v in vols:
        v["brain"] = (v["image"][:1] > 0).to(torch.uint8)
        v["image"] = v["image"] - 5.0  # no voxel > 0 any more
    ds = BalancedPatchDataset(vols, volume_transform=lambda e: e, patch_size=PATCH, num_patches=40, seed=0, brain_key="brain")
    healthy = [(v, c) for v, c, on in ds.index if not on]
    assert len(healthy) == 40 and all(vols[v]["brain"][(0, *c)] == 1 for v, c in healthy)
    anywhere = BalancedPatchDataset(vols, volume_transform=lambda e: e, patch_size=PATCH, num_patches=400, seed=0)
    assert any(vols[v]["brain"][(0, *c)] == 0 for v, c, on in anywhere.index if not on)  # without a mask: the whole volume


def coded_volumes(n=2):
    """Volumes whose image value is its voxel's code, so that a patch's centre voxel names its centre."""
    out = []
    for i, v in enumerate(volumes(n)):
        x, y, z = torch.meshgrid(*(torch.arange(s) for s in v["label"].shape[1:]), indexing="ij")
        v["image"] = (1_000_000 * i + 1 + x * 10_000 + y * 100 + z).float()[None]  # x, y, z < 100: one code per voxel
        out.append(v)
    return out


def test_set_epoch_redraws_the_centres_deterministically_and_keeps_the_length():
    ds = BalancedPatchDataset(volumes(), volume_transform=lambda e: e, patch_size=PATCH, num_patches=40, seed=0, healthy_sampling="random")
    first = list(ds.index)
    ds.set_epoch(1)
    assert ds.index == first  # epoch 1 is the construction's draw
    ds.set_epoch(2)
    second = list(ds.index)
    assert len(second) == len(first) and second != first and ds.lesion_counts == [20, 20]
    assert all(ds[i]["label"].sum() > 0 for i, (_, _, on) in enumerate(second) if on)  # lesion patches still hold lesion
    again = BalancedPatchDataset(volumes(), volume_transform=lambda e: e, patch_size=PATCH, num_patches=40, seed=0, healthy_sampling="random")
    again.set_epoch(2)
    assert again.index == second  # a resumed run draws the same epoch-2 patches
    healthy = {c for _, c, on in first if not on} ^ {c for _, c, on in second if not on}
    assert healthy  # random healthy centres change too
    regular = BalancedPatchDataset(volumes(), volume_transform=lambda e: e, patch_size=PATCH, num_patches=40, seed=0)
    before = [(v, c) for v, c, on in regular.index if not on]
    regular.set_epoch(2)
    assert [(v, c) for v, c, on in regular.index if not on] == before  # regular steps stay regular (Clerigues et al.)
    with pytest.raises(ValueError, match="healthy_sampling"):
        BalancedPatchDataset(volumes(1), volume_transform=lambda e: e, patch_size=PATCH, num_patches=4, healthy_sampling="grid")


@pytest.mark.parametrize("num_workers", [0, 1])
def test_the_trainer_reads_each_epochs_own_patches(num_workers):
    """RedrawPatches on a real ignite engine: the patches an epoch's batches hold are that epoch's draw, also when
    the data loader's worker processes copy the dataset."""
    from ignite.engine import Engine
    from torch.utils.data import DataLoader

    from strokezoo.engines import RedrawPatches

    vols = coded_volumes()
    ds = BalancedPatchDataset(vols, volume_transform=lambda e: e, patch_size=PATCH, num_patches=20, seed=0, lesion_offset=[0, 0, 0])
    seen: dict[int, set] = {}

    def step(engine, batch):
        centre = batch["image"][:, 0, PATCH[0] // 2, PATCH[1] // 2, PATCH[2] // 2]
        seen.setdefault(engine.state.epoch, set()).update(int(c) for c in centre)

    engine = Engine(step)
    RedrawPatches(ds).attach(engine)
    engine.run(DataLoader(ds, batch_size=8, shuffle=True, num_workers=num_workers), max_epochs=3)
    code = lambda v, c: int(vols[v]["image"][(0, *c)])  # noqa: E731
    for epoch in (1, 2, 3):
        expected = BalancedPatchDataset(vols, volume_transform=lambda e: e, patch_size=PATCH, num_patches=20, seed=0, lesion_offset=[0, 0, 0])
        expected.set_epoch(epoch)
        assert seen[epoch] == {code(v, c) for v, c, _ in expected.index}, epoch
    assert seen[1] != seen[2]
