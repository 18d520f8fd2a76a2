"""The mask of a DICOM study as a DICOM Segmentation (SEG) object made with highdicom, referencing the source series."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from ..io.atomic import atomic_path
from ..io.dicom import DicomSeries, slice_files, slice_headers

__all__ = ["source_images", "write_dicom_seg"]

#: type 2 attributes of the Patient and General Study modules that the SEG copies from its source images; an
#: anonymiser removes them, and the standard lets a type 2 attribute be present with no value
TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID", "ReferringPhysicianName", "AccessionNumber")


def source_images(series: DicomSeries) -> list:
    """The instances of ``series``' first volume, each read once (an enhanced series: its one file), in slice order,
    with the type 2 attributes :data:`TYPE2_COPIED` present (empty where an anonymiser removed them)."""
    import pydicom

    sources = [pydicom.dcmread(f) for f in dict.fromkeys(slice_files(series))]
    for ds in sources:  # anonymised headers: the missing type 2 attributes present and empty, as the standard allows
        for keyword in TYPE2_COPIED:
            if keyword not in ds:
                setattr(ds, keyword, "")
    return sources


def write_dicom_seg(mask_path: str | os.PathLike, series: DicomSeries, out: str | os.PathLike, algorithm: str, version: str, software: str) -> Path:
    """Write the binary mask ``mask_path`` (a NIfTI file on the grid :func:`strokezoo.io.dicom.read_series` gave
    ``series``) as a one-segment BINARY DICOM SEG to ``out``, atomically: frame ``k`` covers the ``k``-th slice of the
    series' first volume (its first time point, for a 4D series) and references that instance (of an enhanced
    series, the frame at that slice's position); the segment is an
    automatic one by ``algorithm`` ``version`` (SNOMED CT 49755003 morphologically abnormal structure, 55641003
    infarct). Source images without the type 2 patient and study attributes (anonymised) give a SEG with them empty
    (:data:`TYPE2_COPIED`)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    sources, headers = source_images(series), slice_headers(series)
    mask = np.asarray(nib.load(str(mask_path)).dataobj) > 0
    grid = (int(sources[0].Columns), int(sources[0].Rows), len(headers))
    if mask.shape != grid:
        raise ValueError(f"{mask_path}: mask of shape {mask.shape} is not on the grid of {series.label} {grid}")
    positions = None  # single-frame sources: frame k is source k
    if series.frames:  # an enhanced source: each frame placed by its plane's position
        positions = [hd.PlanePositionSequence(hd.CoordinateSystemNames.PATIENT, [float(v) for v in h.ImagePositionPatient]) for h in headers]
    frames = np.ascontiguousarray(mask).transpose(2, 1, 0).astype(np.uint8)  # (slice, row, column)
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="ischemic stroke lesion",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=Code("55641003", "SCT", "Infarct"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(name=algorithm, version=version, family=codes.cid7162.ArtificialIntelligence),
    )
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=hd.UID(),
        series_number=int(getattr(sources[0], "SeriesNumber", 0) or 0) + 900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="strokezoo",
        manufacturer_model_name=algorithm[:64],
        software_versions=software,
        device_serial_number="0",
        series_description=f"{algorithm} lesion mask"[:64],
        omit_empty_frames=False,
        plane_positions=positions,
    )
    with atomic_path(out) as tmp:
        seg.save_as(tmp)
    return Path(out)
