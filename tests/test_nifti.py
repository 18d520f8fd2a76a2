"""Bad-input handling and atomic writes of strokezoo.io.nifti."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from strokezoo.errors import InputError
from strokezoo.io.nifti import load_nifti, same_grid, save_nifti


def _write(path, data, affine=None, dtype=np.float32):
    nib.save(nib.Nifti1Image(np.asarray(data, dtype), np.eye(4) if affine is None else affine), str(path))
    return path


@pytest.fixture
def vol():
    return np.random.default_rng(0).uniform(1, 2, (8, 9, 5)).astype(np.float32)


def test_zero_byte_file_names_file(tmp_path):
    p = tmp_path / "empty.nii.gz"
    p.write_bytes(b"")
    with pytest.raises(InputError, match="empty.nii.gz: empty file"):
        load_nifti(p)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_truncated_file(tmp_path, vol, suffix):
    p = _write(tmp_path / f"t{suffix}", vol)
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="truncated|not a readable") as e:
        load_nifti(p)
    assert str(p) in str(e.value)


def test_not_nifti_bytes(tmp_path):
    p = tmp_path / "fake.nii"
    p.write_bytes(b"this is a text file, not an image" * 20)
    with pytest.raises(InputError, match="fake.nii: not a readable NIfTI"):
        load_nifti(p)
    g = tmp_path / "fake.nii.gz"
    g.write_bytes(gzip.compress(b"x" * 500))
    with pytest.raises(InputError, match="fake.nii.gz"):
        load_nifti(g)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_nifti(tmp_path / "nope.nii.gz")


def test_nan_and_inf_refused(tmp_path, vol):
    vol[1, 1, 1] = np.nan
    vol[2, 2, 2] = np.inf
    with pytest.raises(InputError, match="2 voxels are NaN or Inf"):
        load_nifti(_write(tmp_path / "nan.nii.gz", vol))


def test_all_zero_image(tmp_path):
    p = _write(tmp_path / "zero.nii.gz", np.zeros((4, 4, 4)))
    with pytest.raises(InputError, match="all voxels are zero"):
        load_nifti(p)
    assert load_nifti(p, allow_zero=True).data.shape == (4, 4, 4)
    assert load_nifti(p, "label").data.sum() == 0  # an empty label is legitimate


def test_label_values(tmp_path):
    lab = np.zeros((4, 4, 4))
    lab[1, 1, 1] = 1
    lab[2, 2, 2] = 2
    with pytest.raises(InputError, match="label is not binary"):
        load_nifti(_write(tmp_path / "multi.nii.gz", lab, dtype=np.uint8), "label")
    neg = np.zeros((4, 4, 4))
    neg[0, 0, 0] = -1
    with pytest.raises(InputError, match="negative"):
        load_nifti(_write(tmp_path / "neg.nii.gz", neg, dtype=np.int16), "label")


def test_scaled_integer_label_is_binarised_with_warning(tmp_path):
    lab = np.zeros((4, 4, 4), np.float32)
    lab[1:3, 1:3, 1:3] = 1
    p = save_nifti(lab, np.eye(4), tmp_path / "scaled.nii.gz", np.uint8, scale_slope=1 / 255)
    assert nib.load(str(p)).dataobj.slope == pytest.approx(1 / 255)
    assert set(np.unique(np.asarray(nib.load(str(p)).dataobj.get_unscaled()))) == {0, 255}
    with pytest.warns(UserWarning, match="binarised"):
        out = load_nifti(p, "label")
    assert out.data.dtype == np.uint8 and out.data.sum() == 8


def test_five_d_series_squeezed_and_frames_checked(tmp_path):
    series = np.random.default_rng(1).uniform(1, 2, (5, 6, 3, 1, 12))
    p = _write(tmp_path / "pwi.nii", series)
    v = load_nifti(p, "series")
    assert v.data.shape == (5, 6, 3, 12)
    np.testing.assert_allclose(v.data, series[:, :, :, 0, :].astype(np.float32))
    with pytest.raises(InputError, match="12 time frames, at least 20"):
        load_nifti(p, "series", min_frames=20)
    with pytest.raises(InputError, match="expected a 3D volume, found a series"):
        load_nifti(p, "image")


def test_2d_image_refused(tmp_path):
    p = _write(tmp_path / "flat.nii.gz", np.ones((6, 6)))
    with pytest.raises(InputError, match="expected a 3D volume"):
        load_nifti(p)


def test_absurd_header_shape(tmp_path, vol):
    p = _write(tmp_path / "huge.nii", vol)
    img = nib.load(str(p))
    hdr = img.header.copy()
    hdr["dim"][1:4] = [30000, 30000, 30000]
    raw = bytearray(p.read_bytes())
    raw[:348] = hdr.binaryblock
    p.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="implausible shape"):
        load_nifti(p)


def test_same_grid_tolerance(tmp_path, vol):
    a = load_nifti(_write(tmp_path / "a.nii.gz", vol))
    aff = np.eye(4)
    aff[0, 3] = 1e-5
    b = load_nifti(_write(tmp_path / "b.nii.gz", vol, aff))
    aff[0, 3] = 2.0
    c = load_nifti(_write(tmp_path / "c.nii.gz", vol, aff))
    assert same_grid(a, b) is None
    assert "differs" in same_grid(a, c)
    d = load_nifti(_write(tmp_path / "d.nii.gz", vol[:4]))
    assert "shape" in same_grid(a, d)


def test_save_is_atomic_and_round_trips(tmp_path, vol):
    target = tmp_path / "sub" / "out.nii.gz"
    save_nifti(vol, np.diag([2.0, 2.0, 3.0, 1.0]), target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.nii.gz"]
    back = load_nifti(target)
    np.testing.assert_array_equal(back.data, vol)
    assert back.zooms == (2.0, 2.0, 3.0)


def test_failed_write_leaves_target_untouched(tmp_path):
    from strokezoo.io.atomic import atomic_path

    target = tmp_path / "report.md"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_atomic_writes_get_the_permissions_of_a_plain_write(tmp_path):
    """An atomically written output gets the mode a file written with ``open`` gets (the process umask's), not the
    owner-only 0600 of the temporary file it was written through."""
    import stat

    from strokezoo.io.atomic import write_text_atomic

    (tmp_path / "plain.txt").write_text("x")
    write_text_atomic("x", tmp_path / "atomic.txt")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes["atomic.txt"] == modes["plain.txt"], modes
