"""Symmetric modality augmentation (Clèrigues et al. 2020, Sec. 3.1): the registration recovers a known
mirror shift, and every modality is mirrored with the one transform."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from strokezoo.transforms.symmetric_modalities import left_right_axis, mirror_transform, symmetric_modalities

SHAPE = (48, 40, 24)
SPACING = (2.0, 2.0, 3.0)


def blob(centre, sigma):
    g = np.meshgrid(*(np.arange(s) for s in SHAPE), indexing="ij")
    return np.exp(-sum(((gi - c) / s) ** 2 for gi, c, s in zip(g, centre, sigma)) / 2)


@pytest.fixture(scope="module")
def head():
    """A head symmetric about x = 21 (not the matrix centre 23.5): flipping the array shifts it by 5 voxels."""
    m = 21.0
    anatomy = blob((m, 20, 12), (12, 14, 7)) + 0.6 * blob((m - 7, 14, 10), (3, 4, 3)) + 0.6 * blob((m + 7, 14, 10), (3, 4, 3))
    anatomy += 0.4 * blob((m - 5, 27, 14), (2, 3, 2)) + 0.4 * blob((m + 5, 27, 14), (2, 3, 2))
    lesion = anatomy + 0.8 * blob((m + 9, 24, 12), (2, 2, 2))  # one hemisphere only
    return m, {"t1": anatomy.astype(np.float32), "dwi": lesion.astype(np.float32)}


def test_left_right_axis_from_the_affine():
    assert left_right_axis(np.diag([2.0, 2.0, 3.0, 1.0])) == 0
    assert left_right_axis(np.array([[0, 0, -1.0, 0], [1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1]])) == 2


def test_registration_recovers_the_mirror_plane_and_mirrors_every_modality(head):
    m, images = head
    sym = symmetric_modalities(images, SPACING, np.diag([*SPACING, 1.0]), reference="t1")
    assert set(sym) == {"t1", "dwi"} and sym["t1"].shape == SHAPE
    # the anatomy is symmetric about x = m, so its mirrored copy must coincide with it
    inside = images["t1"] > 0.05
    r = np.corrcoef(sym["t1"][inside], images["t1"][inside])[0, 1]
    assert r > 0.99, r
    naive = np.flip(images["t1"], 0)  # the flip without registration is 5 voxels off
    assert np.corrcoef(naive[inside], images["t1"][inside])[0, 1] < r - 0.02
    # the one-sided lesion of the second modality appears mirrored about x = m in its symmetric copy
    excess = sym["dwi"] - sym["t1"]
    peak = np.unravel_index(np.argmax(excess), SHAPE)
    assert abs(peak[0] - (m - 9)) <= 1 and abs(peak[1] - 24) <= 1 and abs(peak[2] - 12) <= 1


@pytest.mark.parametrize("registration, tolerance", [("rigid", 0.25), ("affine", 0.5)])
def test_the_transform_is_the_known_mirror_shift(head, registration, tolerance):
    """Flipping the array maps x to N-1-x; the head's own mirror maps x to 2m-x; so the registration must find a
    pure shift of N-1-2m = 5 voxels along x (10 mm) and nothing else; the affine option (FLIRT's 12 degrees of
    freedom) too, with its extra freedom left unused."""
    m, images = head
    t = mirror_transform(images["t1"], SPACING, axis=0, registration=registration)
    assert t.GetName() == ("VersorRigid3DTransform" if registration == "rigid" else "AffineTransform")
    for voxel in ((10, 20, 12), (30, 8, 5), (21, 33, 20)):
        mapped = np.array(t.TransformPoint([float(v * s) for v, s in zip(voxel, SPACING)])) / SPACING
        assert np.abs(mapped - (np.array(voxel) + [SHAPE[0] - 1 - 2 * m, 0, 0])).max() < tolerance, (voxel, mapped)
    with pytest.raises(ValueError, match="registration must be one of"):
        mirror_transform(images["t1"], SPACING, axis=0, registration="elastic")


def test_images_on_different_grids_are_refused(head):
    _, images = head
    with pytest.raises(ValueError, match="share one grid"):
        symmetric_modalities({"t1": images["t1"], "dwi": images["dwi"][:-1]}, SPACING, np.eye(4))


def test_dictionary_transform_caches_beside_the_dataset_and_reuses_it(cohort, tmp_path, monkeypatch):
    """On a synthetic SISS case: four mirrored channels on the input grid, cached outside the dataset, reused for
    the same content wherever it is read from, computed again when a voxel changes."""
    import json

    from monai.transforms import Compose, LoadImaged

    import strokezoo.transforms.symmetric_modalities as sm
    from strokezoo.data.datalist import build_datalist
    from strokezoo.errors import InputError
    from strokezoo.transforms import SymmetricModalitiesd

    from conftest import tree_digest

    root, _ = cohort("isles2015-siss")
    dl = tmp_path / "dl.json"
    build_datalist(root, dl, layout="isles2015-siss", folds=2)
    entry = json.loads(dl.read_text())["training"][0]
    keys = ["flair", "t1", "t2", "dwi"]
    load = LoadImaged(keys=keys, image_only=True, ensure_channel_first=True)
    digest = tree_digest(root)
    cache = tmp_path / "cache"
    out = Compose([load, SymmetricModalitiesd(keys, cache_dir=cache)])(entry)
    assert tree_digest(root) == digest
    for k in keys:
        assert out[f"{k}_sym"].shape == out[k].shape and np.allclose(out[f"{k}_sym"].affine, out[k].affine)
    files = sorted(cache.rglob("*.nii.gz"))
    assert [f.name for f in files] == sorted(f"{k}.nii.gz" for k in keys)
    assert files[0].parent.name.startswith(entry["case_id"])

    def no_registration(*args, **kwargs):
        raise AssertionError("the cached copies should have been used")

    monkeypatch.setattr(sm, "symmetric_modalities", no_registration)
    again = Compose([load, SymmetricModalitiesd(keys, cache_dir=cache)])(entry)
    assert all(np.allclose(np.asarray(again[f"{k}_sym"]), np.asarray(out[f"{k}_sym"])) for k in keys)
    # keyed by content: the same files copied elsewhere are not registered again ...
    import shutil

    (tmp_path / "copy").mkdir()
    copy = {**entry, **{k: str(shutil.copy(entry[k], tmp_path / "copy" / Path(entry[k]).name)) for k in keys}}
    moved = Compose([load, SymmetricModalitiesd(keys, cache_dir=cache)])(copy)
    assert all(np.array_equal(np.asarray(moved[f"{k}_sym"]), np.asarray(again[f"{k}_sym"])) for k in keys)
    # ... nor the same voxels under another case name (a stacked study is named after its file), without a copy
    renamed = SymmetricModalitiesd(keys, cache_dir=cache)({**load(copy), "case_id": "study-stacked"})
    assert all(np.array_equal(np.asarray(renamed[f"{k}_sym"]), np.asarray(again[f"{k}_sym"])) for k in keys)
    assert len([d for d in cache.iterdir() if d.is_dir()]) == 1
    # ... and a changed voxel is
    changed = load(copy)
    changed["t2"][0, 0, 0, 0] += 1.0
    with pytest.raises(AssertionError, match="cached copies"):
        SymmetricModalitiesd(keys, cache_dir=cache)(changed)
    # ... and so are copies made from another reference modality, frame (a CTP series' registration_frame) or registration
    for other in ({"reference_key": "dwi"}, {"reference_channel": 1}, {"registration": "affine"}):
        with pytest.raises(AssertionError, match="cached copies"):
            SymmetricModalitiesd(keys, cache_dir=cache, **other)(load(copy))
    with pytest.raises(ValueError, match="not one of the keys"):
        SymmetricModalitiesd(keys, reference_key="cbf")
    with pytest.raises(InputError, match="inside the folder of the input"):
        SymmetricModalitiesd(keys, cache_dir=Path(entry["t1"]).parent / "cache")(load(entry))


def test_thin_slab_series_is_mirrored_frame_by_frame_with_one_transform(head):
    """A 4-slice slab (ISLES 2018 CTP slabs have 2 to 22 slices) of a 3-frame series: the transform estimated on
    frame 0 still finds the 5-voxel mirror shift, and every frame is mirrored with it."""
    m, images = head
    slab = images["t1"][:, :, 10:14]
    series = np.stack([slab, 1.5 * slab, 0.5 * slab])
    t = mirror_transform(slab, SPACING, axis=0)
    for voxel in ((10, 20, 1), (30, 8, 2)):
        mapped = np.array(t.TransformPoint([float(v * s) for v, s in zip(voxel, SPACING)])) / SPACING
        assert np.abs(mapped - (np.array(voxel) + [SHAPE[0] - 1 - 2 * m, 0, 0])).max() < 0.5, (voxel, mapped)
    sym = symmetric_modalities({"ctp": series}, SPACING, np.diag([*SPACING, 1.0]), reference_channel=0)["ctp"]
    assert sym.shape == series.shape
    inside = slab > 0.05
    assert np.corrcoef(sym[0][inside], slab[inside])[0, 1] > 0.99
    np.testing.assert_allclose(sym[1], 1.5 * sym[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sym[2], 0.5 * sym[0], rtol=1e-4, atol=1e-5)


def test_the_same_image_always_gives_the_same_transform():
    """ITK on one thread: with its default threads the same ISLES 2018-sized slab gave parameters that differed by
    about 1e-14 between calls, enough to move a voxel at a threshold (the stacked-study check of test_bad_inputs)."""
    rng = np.random.default_rng(0)
    slab = np.zeros((77, 77, 8), np.float32)
    slab[18:63, 10:65] = 1
    slab += rng.normal(0, 0.1, slab.shape).astype(np.float32)
    runs = [np.array(list(mirror_transform(slab, (2.86, 2.86, 5.0), axis=0).GetParameters())) for _ in range(3)]
    for p in runs[1:]:
        np.testing.assert_allclose(p, runs[0], rtol=0, atol=1e-300)  # equal up to denormals
