"""A synthetic study written as DICOM series, as a scanner exports it: one single-frame instance per slice (and per
time point of a 4D series), in LPS patient coordinates, stored as 16-bit integers with a rescale slope.

The writer is pydicom, not the ITK that :mod:`strokezoo.io.dicom` reads with, so a test of the reader checks one
library's geometry against the other's. The stored values are returned: a NIfTI file of them is the same study, voxel
for voxel (the slope is a power of two, exact in float32, so nothing is lost to rounding on either path).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["oblique", "write_dicom_series"]

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def oblique(affine: np.ndarray, degrees: float, axis: int = 0) -> np.ndarray:
    """``affine`` rotated by ``degrees`` about world ``axis`` (0: x, 1: y, 2: z) through the volume's first voxel: the
    same voxels on a tilted grid, as a scanner's oblique slice stack."""
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    a, b = [i for i in range(3) if i != axis]
    rotation = np.eye(4)
    rotation[a, a], rotation[a, b], rotation[b, a], rotation[b, b] = c, -s, s, c
    out = np.array(affine, dtype=np.float64)
    out[:3, :3] = rotation[:3, :3] @ out[:3, :3]
    return out


def _slope(data: np.ndarray) -> float:
    """The smallest power-of-two rescale slope whose int16 range covers ``data``, at least 2^-15 (the finest whose
    decimal form fits a DICOM decimal string's 16 characters)."""
    peak = float(np.abs(data).max()) or 1.0
    return float(2.0 ** max(-15.0, np.ceil(np.log2(peak / 32000.0))))


def _time_of_day(seconds: float) -> str:
    """``seconds`` after noon as a DICOM time, ``HHMMSS.ffffff``."""
    total = 12 * 3600 + seconds
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{int(hours):02d}{int(minutes):02d}{secs:09.6f}"


def write_dicom_series(
    data: np.ndarray,
    affine: np.ndarray,
    folder: str | os.PathLike,
    description: str,
    modality: str = "MR",
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    series_number: int = 1,
    patient_id: str = "SYNTH001",
    frame_seconds: float = 1.0,
) -> tuple[str, np.ndarray]:
    """Write ``data`` (``(x, y, z)`` or ``(x, y, z, t)``, on the NIfTI grid ``affine``) as a DICOM series into
    ``folder``: slice ``k`` of time point ``t`` is ``IM_<t>_<k>.dcm``, rows along ``y`` and columns along ``x``.
    ``modality`` is ``"MR"`` or ``"CT"``; give the series of one study the same ``study_uid`` and
    ``frame_of_reference_uid``. The grid's third axis must point along the slice normal (row x column direction),
    i.e. ``affine`` keeps a positive determinant, as NIfTI's RAS+ grids do. Returns the SeriesInstanceUID and the
    values as stored (``data`` rounded to the slope), float32."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

    affine = np.asarray(affine, dtype=np.float64)
    if np.linalg.det(affine[:3, :3]) <= 0:
        raise ValueError("the grid's third axis points against the slice normal (negative determinant); reorient it first")
    volume = np.asarray(data, dtype=np.float64)
    frames = volume[..., None] if volume.ndim == 3 else volume
    slope = _slope(frames)
    stored = np.clip(np.rint(frames / slope), -32768, 32767).astype(np.int16)
    lps = _RAS_TO_LPS @ affine
    spacing = np.sqrt((lps[:3, :3] ** 2).sum(0))
    row_dir, col_dir = lps[:3, 0] / spacing[0], lps[:3, 1] / spacing[1]  # along a row (x, columns), down a column (y, rows)
    series_uid = generate_uid()
    study_uid = study_uid or generate_uid()
    frame_of_reference_uid = frame_of_reference_uid or generate_uid()
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    nx, ny, nz, nt = stored.shape
    for t in range(nt):
        for k in range(nz):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = sop_class
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_of_reference_uid
            ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = patient_id, "Synthetic^Study", "19500101", "O"
            ds.StudyID, ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "20260101", "120000", "", ""
            ds.Modality, ds.SeriesDescription, ds.ProtocolName, ds.SeriesNumber = modality, description, description, series_number
            ds.InstanceNumber = t * nz + k + 1
            ds.Manufacturer = "strokezoo synthetic"
            ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row_dir, *col_dir)]
            ds.ImagePositionPatient = [f"{v:.6f}" for v in (lps @ np.array([0.0, 0.0, k, 1.0]))[:3]]
            ds.PixelSpacing = [f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"]  # between rows, between columns
            ds.SliceThickness = f"{spacing[2]:.6f}"
            if nt > 1:
                ds.TemporalPositionIdentifier = t + 1
                ds.NumberOfTemporalPositions = nt
                ds.AcquisitionTime = _time_of_day(t * frame_seconds)
            ds.Rows, ds.Columns = ny, nx
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleSlope, ds.RescaleIntercept = repr(slope), "0"
            if modality == "CT":
                ds.RescaleType = "HU"
            ds.PixelData = np.ascontiguousarray(stored[:, :, k, t].T).tobytes()
            ds.save_as(folder / f"IM_{t:03d}_{k:03d}.dcm", enforce_file_format=True)
    values = stored.astype(np.float32) * np.float32(slope)
    return series_uid, values[..., 0] if volume.ndim == 3 else values
