"""``strokezoo segment`` from DICOM: series written by pydicom (as scanners export them, oblique too) read back by ITK on
their own grids, matched to the bundles' modalities by name, checked for whole volumes, and the mask returned as a
DICOM SEG that references the series it is on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from strokezoo.bundle_info import BUNDLES, bundle_folder, inference_keys
from strokezoo.data.datalist import build_datalist
from strokezoo.errors import InputError
from strokezoo.io.dicom import find_series, read_series, slice_files
from strokezoo.segment.dicom_seg import write_dicom_seg
from strokezoo.segment.inputs import study_inputs
from strokezoo.synth.dicom import oblique, write_dicom_series

from conftest import strokezoo_cli, tree_digest, untrained_checkpoint

#: series names as scanners write them, one per modality key of the bundles
DESCRIPTIONS = {
    "adc": "ep2d_diff_3scan_trace_ADC",
    "dwi": "ep2d_diff_3scan_TRACEW",
    "flair": "t2_tirm_tra_dark-fluid FLAIR",
    "t1": "t1_mprage_tra",
    "t2": "t2_tse_tra",
    "ttp": "PWI TTP",
    "tmax": "PWI Tmax",
    "ct": "Head CT",
    "ctp": "CT 4D Perfusion",
    "cbf": "CT CBF",
    "cbv": "CT CBV",
    "mtt": "CT MTT",
}
XD = "stroke_dwi_crossdomain_unet2d"
TILT = 12.0  # degrees about the left-right axis, as an axial stack tilted to the AC-PC line


def tilted(affine: np.ndarray) -> np.ndarray:
    return oblique(oblique(affine, TILT, axis=0), TILT / 3, axis=2)


def write_study(entry: dict, keys: list[str], folder: Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Write the modalities ``keys`` of a datalist entry as the DICOM series of one study, all on the entry's grid
    tilted by :func:`tilted`; returns each key's SeriesInstanceUID and the voxels as stored."""
    from pydicom.uid import generate_uid

    study, frame = generate_uid(), generate_uid()
    uids, values = {}, {}
    for n, k in enumerate(keys):
        img = nib.load(entry[k])
        modality = "CT" if "ctp" in entry else "MR"  # the ISLES 2018 study is CT, the others MR
        uids[k], values[k] = write_dicom_series(
            np.asarray(img.dataobj, np.float32), tilted(img.affine), folder / f"series{n}", DESCRIPTIONS[k], modality, study, frame, series_number=n + 1
        )
    return uids, values


def test_a_series_reads_back_voxel_for_voxel_on_its_own_grid(tmp_path):
    """3D and 4D, axial and oblique: ITK's reading of pydicom's series gives the written voxels on the written grid,
    slice k of the NIfTI file being the k-th file of :func:`slice_files`."""
    rng = np.random.default_rng(0)
    affine = np.diag([0.9, 1.1, 3.0, 1.0])
    affine[:3, 3] = [-50, -60, -20]
    for grid in (affine, tilted(affine)):
        for shape in ((20, 24, 7), (20, 24, 5, 4)):
            folder = tmp_path / f"{len(shape)}d_{len(list(tmp_path.iterdir()))}"
            uid, values = write_dicom_series(rng.normal(100, 30, shape), grid, folder, "ep2d ADC")
            (series,) = find_series(folder)
            assert series.uid == uid and series.description == "ep2d ADC" and len(series.files) == int(np.prod(shape[2:]))
            img = nib.load(read_series(series, tmp_path / f"{folder.name}.nii.gz"))
            assert img.shape == shape and np.array_equal(np.asarray(img.dataobj), values)
            assert np.allclose(img.affine, grid, atol=1e-4), (img.affine, grid)
            files = slice_files(series)
            for k, f in enumerate(files):
                ds = pydicom.dcmread(f)
                assert ds.TemporalPositionIdentifier == 1 if len(shape) == 4 else "TemporalPositionIdentifier" not in ds
                world = img.affine @ np.array([0, 0, k, 1.0])  # voxel (0, 0, k) in RAS is the slice's position in LPS
                assert np.allclose(np.asarray(ds.ImagePositionPatient, float), world[:3] * [-1, -1, 1], atol=1e-3)


def test_the_seg_frames_are_the_mask_slice_for_slice_on_an_oblique_series(tmp_path):
    """A hand-made asymmetric mask on an oblique 3D series: each SEG frame references the source instance of its
    slice and holds that slice's mask (rows along j, columns along i)."""
    affine = tilted(np.diag([1.0, 1.2, 2.5, 1.0]))
    uid, _ = write_dicom_series(np.full((16, 12, 5), 50.0), affine, tmp_path / "dicom", "FLAIR")
    (series,) = find_series(tmp_path / "dicom")
    grid = nib.load(read_series(series, tmp_path / "flair.nii.gz"))
    mask = np.zeros(grid.shape, np.uint8)
    mask[2:5, 7:9, 1] = 1
    mask[10, 3, 3] = 1
    nib.save(nib.Nifti1Image(mask, grid.affine), tmp_path / "mask.nii.gz")
    out = write_dicom_seg(tmp_path / "mask.nii.gz", series, tmp_path / "seg.dcm", "test", "1.0", "strokezoo test")
    seg = pydicom.dcmread(out)
    assert seg.Modality == "SEG" and seg.ReferencedSeriesSequence[0].SeriesInstanceUID == uid
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    assert frames.shape == (5, 12, 16)
    by_instance = {pydicom.dcmread(f).SOPInstanceUID: k for k, f in enumerate(slice_files(series))}
    for frame, item in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        k = by_instance[item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID]
        assert np.array_equal(frame, mask[:, :, k].T), k


def test_series_names_and_map_choose_the_modalities(tmp_path):
    keys = ["adc", "dwi"]
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    data = np.full((8, 8, 4), 10.0)
    adc, _ = write_dicom_series(data, affine, tmp_path / "s" / "a", DESCRIPTIONS["adc"])
    dwi, _ = write_dicom_series(data, affine, tmp_path / "s" / "b", DESCRIPTIONS["dwi"])
    found = study_inputs(keys, study=tmp_path / "s")
    assert {k: v.uid for k, v in found.items()} == {"adc": adc, "dwi": dwi}
    dwi2, _ = write_dicom_series(data, affine, tmp_path / "s" / "c", "diffusion b1000")
    with pytest.raises(InputError, match="more than one series matches dwi.*--map dwi=UID"):
        study_inputs(keys, study=tmp_path / "s")
    assert study_inputs(keys, study=tmp_path / "s", mapping={"dwi": dwi2})["dwi"].uid == dwi2
    with pytest.raises(InputError, match="--map dwi=1.2.3: no such series"):
        study_inputs(keys, study=tmp_path / "s", mapping={"dwi": "1.2.3"})
    shutil.rmtree(tmp_path / "s" / "a")
    with pytest.raises(InputError, match="no DICOM series for adc"):
        study_inputs(keys, study=tmp_path / "s", mapping={"dwi": dwi2})


def test_broken_series_are_refused_by_name(tmp_path):
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    uids = {}
    for name, shape in (("gap", (8, 8, 6)), ("hole4d", (8, 8, 4, 3)), ("cut_pixels", (8, 8, 4)), ("cut_header", (8, 8, 4)), ("single", (8, 8, 1))):
        uids[name], _ = write_dicom_series(np.full(shape, 10.0), affine, tmp_path / name, f"{name} ADC")
    (tmp_path / "gap" / "IM_000_002.dcm").unlink()  # a slice missing in the middle
    (tmp_path / "hole4d" / "IM_001_002.dcm").unlink()  # one time point missing at one position
    for name, keep in (("cut_pixels", -60), ("cut_header", 400)):  # a file cut short in its pixels, or in its header
        cut = tmp_path / name / "IM_000_001.dcm"
        cut.write_bytes(cut.read_bytes()[:keep])
    expected = {
        "gap": "unevenly spaced slices",
        "hole4d": "positions hold 2 to 3 images",
        "single": "a single slice position",
        "cut_pixels": "ITK cannot read it",
    }
    with pytest.raises(InputError, match="IM_000_001.dcm: has no .*cut short"):
        find_series(tmp_path / "cut_header")
    for name, problem in expected.items():
        (series,) = find_series(tmp_path / name)
        with pytest.raises(InputError, match=problem) as err:
            read_series(series, tmp_path / f"{name}.nii.gz")
        assert uids[name] in str(err.value) and not (tmp_path / f"{name}.nii.gz").exists(), err.value
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "scan.dcm").write_bytes(b"GIF89a not DICOM at all " * 20)
    with pytest.raises(InputError, match="scan.dcm: not a readable DICOM file"):
        find_series(tmp_path / "garbage")


@pytest.fixture(scope="module")
def dicom_studies(cohort, tmp_path_factory):
    """``dicom_studies(bundle)`` -> (DICOM study folder, its series UIDs and stored voxels, untrained CPU-sized weights
    of ``bundle``): the first case of the bundle's synthetic layout, every modality it reads as a tilted series."""
    made = {}

    def get(bundle: str):
        if bundle not in made:
            root, _ = cohort(BUNDLES[bundle].layout)
            tmp = tmp_path_factory.mktemp(f"dicom_{bundle}")
            entry = build_datalist(root, tmp / "datalist.json", layout=BUNDLES[bundle].layout, folds=3)["training"][0]
            keys = inference_keys(bundle_folder(bundle))
            uids, values = write_study(entry, keys, tmp / "study" / "patient1")
            weights = untrained_checkpoint(bundle, tmp / "weights" / "model.pt", "inference.json")
            made[bundle] = (tmp / "study" / "patient1", entry, uids, values, weights)
        return made[bundle]

    return get


@pytest.mark.parametrize("bundle", BUNDLES)
def test_segment_from_dicom_writes_the_mask_on_the_series_grid_and_a_seg_of_it(bundle, dicom_studies, tmp_path):
    study, entry, uids, values, weights = dicom_studies(bundle)
    before = tree_digest(study)
    r = strokezoo_cli("segment", "--bundle", bundle, "--weights", weights, "--config", "smoke.json", "--study", study, "--out", tmp_path / "seg")
    assert r.returncode == 0, r.stderr[-3000:]
    assert tree_digest(study) == before
    out = tmp_path / "seg" / study.name
    report = json.loads((out / "report.json").read_text())
    key = report["mask_modality"]
    mask = nib.load(out / f"{bundle}_mask.nii.gz")
    grid = values[key].shape[:3]
    assert mask.shape == grid and np.allclose(mask.affine, tilted(nib.load(entry[key]).affine), atol=1e-4)  # the series' own grid
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{bundle}_mask.nii.gz", "overlay.png", "report.json", "report.md", "segmentation.dcm", "measurements.dcm"]
    )
    for k, uid in uids.items():
        assert report["inputs"][k]["dicom_series"] == uid
    seg = pydicom.dcmread(out / "segmentation.dcm")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == uids[key] == report["dicom_seg"]["references_series"]
    assert int(seg.NumberOfFrames) == grid[2]
    assert int(seg.pixel_array.sum()) == int((np.asarray(mask.dataobj) > 0).sum())
    assert f"| DICOM SEG | `segmentation.dcm`, referencing series {uids[key]} |" in (out / "report.md").read_text()


@pytest.fixture
def xd_dicom(cohort, tmp_path):
    """A cross-domain study whose ADC series holds two volumes (two images at every position)."""
    root, _ = cohort("isles2022")
    entry = build_datalist(root, tmp_path / "datalist.json", layout="isles2022", folds=3)["training"][0]
    study = tmp_path / "study"
    adc, dwi = (nib.load(entry[k]) for k in ("adc", "dwi"))
    two = np.stack([np.asarray(adc.dataobj, np.float32)] * 2, axis=-1)
    adc_uid, _ = write_dicom_series(two, adc.affine, study / "adc", DESCRIPTIONS["adc"])
    write_dicom_series(np.asarray(dwi.dataobj, np.float32), dwi.affine, study / "dwi", DESCRIPTIONS["dwi"])
    return study, adc_uid, untrained_checkpoint(XD, tmp_path / "w" / "model.pt", "inference.json")


def test_a_study_with_a_4d_series_where_3d_is_expected_is_refused_naming_the_series(xd_dicom, tmp_path):
    """The cross-domain bundle reads a 3D ADC: a 2-volume ADC series is refused by the case checker, with the
    series named as the user knows it (not the working file it was read into), and nothing is written."""
    study, adc_uid, weights = xd_dicom
    r = strokezoo_cli("segment", "--bundle", XD, "--weights", weights, "--config", "smoke.json", "--study", study, "--out", tmp_path / "seg")
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"refused for {XD}" in r.stderr and adc_uid in r.stderr and ".work" not in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "seg" / study.name).exists()
