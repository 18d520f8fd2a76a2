"""DICOM series in: found by their headers (pydicom), checked for a whole, evenly spaced volume, and read with ITK
(GDCM, through SimpleITK, which loads in 0.2 s where ITK's Python IO modules take 6 s) into a NIfTI file on the
series' own grid.

A series is the set of instances that share a SeriesInstanceUID. Its images must share one orientation, matrix and
pixel spacing, and their positions along the slice normal must be evenly spaced; several images at every position
make a 4D series (a perfusion series' time points, a diffusion series' b-values), ordered in time by
TemporalPositionIdentifier, then AcquisitionTime, then InstanceNumber. Anything else (a missing slice, a slice
twice, mixed matrices) is refused with an :class:`InputError` that names the series and says what is wrong.

The NIfTI file has the series' geometry as ITK reads it: voxel ``(i, j, k)`` is column ``i`` and row ``j`` of the
``k``-th slice along the normal (row direction x column direction), and its affine is ITK's LPS geometry turned to
NIfTI's RAS. Nothing is resampled, so a mask on this grid maps back onto the source images slice for slice
(:func:`slice_files`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .nifti import save_nifti

__all__ = ["DicomSeries", "b_value", "diffusion_weighted", "find_series", "frame_headers", "is_dicom", "read_series", "slice_files", "slice_headers"]

#: slices closer than this along the normal (mm) share a position; spacings may differ from the usual one by as much
SPACING_TOLERANCE_MM = 0.01
#: ... or by this share of it, whichever is larger
SPACING_TOLERANCE = 0.01
#: objects that lie beside a study's images and are not images: segmentations, reports, presentation states, ...
NON_IMAGE_MODALITIES = ("SEG", "SR", "PR", "RTSTRUCT", "KO", "DOC", "REG")
DICOMDIR = "1.2.840.10008.1.3.10"
#: where an image's diffusion b-value (s/mm^2) is stored: the standard DiffusionBValue, then Siemens' private
#: B_value, GE's first "Slop_int_6" value (with 10^9 added on some systems) and Philips' private Diffusion B-Factor
B_VALUE_TAGS = ((0x0018, 0x9087), (0x0019, 0x100C), (0x0043, 0x1039), (0x2001, 0x1003))


def is_dicom(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a DICOM file: a ``.dcm`` name, or the ``DICM`` preamble marker."""
    path = Path(path)
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with path.open("rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


@dataclass
class DicomSeries:
    """One series of a folder: its UID, its descriptive names, its images' files (unsorted) and their headers (read
    without pixel data, in the order of ``files``). An enhanced (multi-frame) image gives one entry per frame: its
    file, a header with that frame's functional groups at the top level (:func:`frame_headers`), and the frame's
    index in ``frames``."""

    uid: str
    description: str
    protocol: str
    modality: str
    files: list[Path] = field(default_factory=list)
    headers: list = field(default_factory=list, repr=False)
    #: for an enhanced (multi-frame) series, the frame of ``files[n]`` that ``headers[n]`` describes; empty otherwise
    frames: list[int] = field(default_factory=list)

    def subset(self, indices: list[int]) -> DicomSeries:
        """The images ``indices`` of this series, as a series of their own (same UID and names)."""
        pick = lambda items: [items[i] for i in indices] if items else []  # noqa: E731
        return DicomSeries(self.uid, self.description, self.protocol, self.modality, pick(self.files), pick(self.headers), pick(self.frames))

    @property
    def label(self) -> str:
        """How messages name the series: its description (or protocol) and UID."""
        name = self.description or self.protocol or "no description"
        return f"series {self.uid} ({name!r}, {len(self.files)} files)"


def find_series(folder: str | os.PathLike) -> list[DicomSeries]:
    """Every image series of the DICOM files under ``folder`` (recursively), by SeriesInstanceUID, an enhanced
    (multi-frame) image as one entry per frame; DICOM SEG, reports and other non-image objects
    (:data:`NON_IMAGE_MODALITIES`, a DICOMDIR) are left out. Raises :class:`InputError`
    for a DICOM file that cannot be read, or that has no series, rows or columns (cut short)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    series: dict[str, DicomSeries] = {}
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_dicom(p)):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError) as e:
            raise InputError(path, f"not a readable DICOM file: {type(e).__name__}: {e}") from None
        sop_class = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", ""))
        if str(ds.get("Modality", "")) in NON_IMAGE_MODALITIES or sop_class == DICOMDIR:
            continue
        missing = [tag for tag in ("SeriesInstanceUID", "Rows", "Columns") if not ds.get(tag)]
        if missing:
            raise InputError(path, f"has no {', '.join(missing)}: not an image, or the file is cut short")
        uid = str(ds.SeriesInstanceUID)
        s = series.setdefault(uid, DicomSeries(uid, str(ds.get("SeriesDescription", "")), str(ds.get("ProtocolName", "")), str(ds.get("Modality", ""))))
        if "PerFrameFunctionalGroupsSequence" in ds:
            if s.files and not s.frames:
                raise InputError(path, f"{s.label}: mixes enhanced (multi-frame) and single-frame images")
            for n, header in enumerate(frame_headers(ds)):
                s.files.append(path)
                s.headers.append(header)
                s.frames.append(n)
        else:
            if s.frames:
                raise InputError(path, f"{s.label}: mixes enhanced (multi-frame) and single-frame images")
            s.files.append(path)
            s.headers.append(ds)
    return list(series.values())


#: attributes a single-frame image holds at the top level and an enhanced image in its functional groups (per-frame,
#: else shared): the sequences that hold each, searched in this order
FUNCTIONAL_GROUPS = {
    "ImagePositionPatient": ("PlanePositionSequence",),
    "ImageOrientationPatient": ("PlaneOrientationSequence",),
    "PixelSpacing": ("PixelMeasuresSequence",),
    "SliceThickness": ("PixelMeasuresSequence",),
    "RescaleSlope": ("PixelValueTransformationSequence",),
    "RescaleIntercept": ("PixelValueTransformationSequence",),
    "DiffusionBValue": ("MRDiffusionSequence", "UnassignedPerFrameConvertedAttributesSequence", "UnassignedSharedConvertedAttributesSequence"),
    "TemporalPositionIndex": ("FrameContentSequence",),
}


def frame_headers(ds) -> list:
    """One header per frame of the enhanced (multi-frame) image ``ds``: its series' and image's identifying
    attributes, and each attribute of :data:`FUNCTIONAL_GROUPS` from the frame's own functional groups, else the
    shared ones, at the top level as a single-frame image has it (TemporalPositionIndex as TemporalPositionIdentifier;
    InstanceNumber the frame's number)."""
    from pydicom.dataset import Dataset

    shared = ds.SharedFunctionalGroupsSequence[0] if ds.get("SharedFunctionalGroupsSequence") else Dataset()
    headers = []
    for n, frame in enumerate(ds.PerFrameFunctionalGroupsSequence):
        header = Dataset()
        for keyword in ("SeriesInstanceUID", "SeriesDescription", "ProtocolName", "Modality", "Rows", "Columns", "SOPClassUID", "SOPInstanceUID"):
            if keyword in ds:
                setattr(header, keyword, ds[keyword].value)
        for keyword, sequences in FUNCTIONAL_GROUPS.items():
            found = [group[seq][0] for group in (frame, shared) for seq in sequences if group.get(seq)]
            for item in found:
                if keyword in item and item[keyword].value not in (None, ""):
                    setattr(header, keyword, item[keyword].value)
                    break
        if "TemporalPositionIndex" in header:
            header.TemporalPositionIdentifier = header.TemporalPositionIndex
        header.InstanceNumber = n + 1
        headers.append(header)
    return headers


def _number(value) -> float | None:
    """A header value as a number: a number, the first of several (``1000\\8\\0``), decimal text, or a private
    element pydicom could not type (``UN`` bytes: text, else a little-endian float)."""
    import struct

    if isinstance(value, bytes):
        text = value.decode("ascii", errors="replace").strip("\x00 ")
        try:
            return float(text.split("\\")[0])
        except ValueError:
            return float(struct.unpack("<f" if len(value) == 4 else "<d", value)[0]) if len(value) in (4, 8) else None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def b_value(ds) -> float | None:
    """The diffusion b-value (s/mm^2) a header states (:data:`B_VALUE_TAGS`, the first present), or None."""
    for tag in B_VALUE_TAGS:
        if tag in ds:
            value = _number(ds[tag].value)
            if value is not None:
                return value % 1e9 if tag == (0x0043, 0x1039) else value
    return None


def diffusion_weighted(series: DicomSeries, minimum: float = 500.0) -> tuple[DicomSeries, float | None]:
    """The images of the diffusion series ``series`` at its highest b-value, as a series of their own, and that
    b-value: a scanner's trace series often holds b = 0 and b = 1000 images in one series, in any order.

    A series with one image per position and no b-value is returned whole (b-value None). Raises
    :class:`InputError` naming the series when it holds several images per position and no b-value tells them
    apart, or when its highest b-value is under ``minimum``."""
    values = [b_value(ds) for ds in series.headers]
    known = [v for v in values if v is not None]
    if not known:
        if len(_frames(series)) > 1:
            raise InputError(
                series.files[0],
                f"{series.label}: several images at every position and no b-value (DiffusionBValue, or Siemens', GE's or "
                "Philips' private tag) to tell the diffusion-weighted ones from b = 0; export the b = 1000 images as a series of their own",
            )
        return series, None
    highest = max(known)
    if highest < minimum:
        raise InputError(series.files[0], f"{series.label}: its highest b-value is {highest:g} s/mm^2, under {minimum:g}: not diffusion-weighted images")
    chosen = series.subset([i for i, v in enumerate(values) if v == highest])
    _frames(chosen)  # whole volumes at that b-value, or a clear error
    return chosen, highest


def _frames(series: DicomSeries) -> list[list[int]]:
    """The series' images as volumes (one per time point), each the indices of its slices in increasing position
    along the normal; raises :class:`InputError` where they do not make whole, evenly spaced volumes."""
    headers = series.headers
    first = headers[0]
    for ds, path in zip(headers, series.files):
        for tag in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "Rows", "Columns"):
            if tag not in ds:
                raise InputError(path, f"{series.label}: has no {tag}, so its place in the volume is unknown")
        if not np.allclose(np.asarray(ds.ImageOrientationPatient, float), np.asarray(first.ImageOrientationPatient, float), atol=1e-4):
            raise InputError(path, f"{series.label}: its images have different orientations")
        spacing_differs = not np.allclose(np.asarray(ds.PixelSpacing, float), np.asarray(first.PixelSpacing, float), atol=1e-4)
        if (ds.Rows, ds.Columns) != (first.Rows, first.Columns) or spacing_differs:
            raise InputError(path, f"{series.label}: its images have different matrices or pixel spacings")
    orientation = np.asarray(first.ImageOrientationPatient, float)
    normal = np.cross(orientation[:3], orientation[3:])
    depth = np.array([float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal)) for ds in headers])
    order = np.argsort(depth, kind="stable")
    positions: list[list[int]] = []  # indices of the headers at each position, in increasing depth
    for i in order:
        if positions and abs(depth[i] - depth[positions[-1][0]]) < SPACING_TOLERANCE_MM:
            positions[-1].append(int(i))
        else:
            positions.append([int(i)])
    if len(positions) < 2:
        raise InputError(series.files[0], f"{series.label}: a single slice position; a volume needs at least two")
    counts = sorted({len(p) for p in positions})
    if len(counts) > 1:
        short = [f"{depth[p[0]]:.2f} mm" for p in positions if len(p) < counts[-1]][:5]
        raise InputError(
            series.files[0], f"{series.label}: positions hold {counts[0]} to {counts[-1]} images (missing images at {', '.join(short)} along the normal)"
        )
    gaps = np.diff([depth[p[0]] for p in positions])
    usual = float(np.median(gaps))
    uneven = np.flatnonzero(np.abs(gaps - usual) > max(SPACING_TOLERANCE_MM, SPACING_TOLERANCE * usual))
    if len(uneven):
        where = ", ".join(f"{gaps[g]:.3g} mm after slice {g + 1}" for g in uneven[:5])
        raise InputError(series.files[0], f"{series.label}: unevenly spaced slices ({usual:.3g} mm apart, but {where}): a slice missing?")

    def when(i: int) -> tuple:
        ds = headers[i]
        return (int(ds.get("TemporalPositionIdentifier", 0) or 0), str(ds.get("AcquisitionTime", "") or ""), int(ds.get("InstanceNumber", 0) or 0))

    by_time = [sorted(p, key=when) for p in positions]
    return [[p[t] for p in by_time] for t in range(counts[0])]


def slice_files(series: DicomSeries) -> list[Path]:
    """The files of the series' first volume in the order of :func:`read_series`'s third axis (slice ``k`` of the
    NIfTI file is the ``k``-th file); for an enhanced series, its one file, as often as it has slices."""
    return [series.files[i] for i in _frames(series)[0]]


def slice_headers(series: DicomSeries) -> list:
    """The headers of the series' first volume, in the order of :func:`read_series`'s third axis."""
    return [series.headers[i] for i in _frames(series)[0]]


def _read_frames(series: DicomSeries, volumes: list[list[int]]) -> tuple[list[np.ndarray], np.ndarray]:
    """An enhanced series' volumes ``(columns, rows, slices)`` (each frame's rescale applied) and their LPS affine,
    the geometry ITK gives a single-frame series: origin at the first slice, axes along the rows, the columns and
    the slice normal, spaced by PixelSpacing and the slices' gap."""
    import pydicom

    pixels = {}
    for path in dict.fromkeys(series.files):
        try:
            pixels[path] = pydicom.dcmread(path).pixel_array
        except Exception as e:  # noqa: BLE001 - pydicom raises several kinds for undecodable pixel data
            raise InputError(path, f"{series.label}: its pixel data cannot be decoded: {type(e).__name__}: {e}") from None

    def frame(i: int) -> np.ndarray:
        h, stack = series.headers[i], pixels[series.files[i]]
        data = (stack if stack.ndim == 3 else stack[None])[series.frames[i]].astype(np.float32)
        return (data * float(h.get("RescaleSlope", 1) or 1) + float(h.get("RescaleIntercept", 0) or 0)).T

    arrays = [np.stack([frame(i) for i in slices], axis=-1) for slices in volumes]
    first = series.headers[volumes[0][0]]
    orientation = np.asarray(first.ImageOrientationPatient, float)
    row, column = orientation[:3], orientation[3:]
    normal = np.cross(row, column)
    depths = [float(np.dot(np.asarray(series.headers[i].ImagePositionPatient, float), normal)) for i in volumes[0]]
    gap = float(np.median(np.diff(depths))) if len(depths) > 1 else float(first.get("SliceThickness", 1) or 1)
    spacing_rows, spacing_columns = (float(v) for v in first.PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = row * spacing_columns, column * spacing_rows, normal * gap
    lps[:3, 3] = np.asarray(first.ImagePositionPatient, float)
    return arrays, lps


def read_series(series: DicomSeries, path: str | os.PathLike) -> Path:
    """Read ``series`` with ITK's GDCM reader, through SimpleITK (rescale slope and intercept applied; an enhanced
    series' frames with pydicom, on the geometry ITK gives a single-frame one) and write it to the NIfTI file ``path``
    (float32; 4D ``(x, y, z, t)`` for several frames) on the series' grid. Raises :class:`InputError` naming the
    series when it does not make a whole, evenly spaced volume or ITK cannot read it."""
    frames = _frames(series)
    if series.frames:
        volumes, lps = _read_frames(series, frames)
    else:
        import SimpleITK as sitk

        volumes = []
        for indices in frames:
            files = [series.files[i] for i in indices]
            try:
                image = sitk.ReadImage([str(f) for f in files], sitk.sitkFloat32, imageIO="GDCMImageIO")
            except Exception as e:  # noqa: BLE001 - ITK raises RuntimeError and others for any unreadable file
                raise InputError(files[0], f"{series.label}: ITK cannot read it: {str(e).strip().splitlines()[-1][:300]}") from None
            volumes.append(sitk.GetArrayFromImage(image).transpose(2, 1, 0))
        direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
        lps = np.eye(4)
        lps[:3, :3] = direction * np.asarray(image.GetSpacing(), float)[None, :]
        lps[:3, 3] = np.asarray(image.GetOrigin(), float)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    data = volumes[0] if len(volumes) == 1 else np.stack(volumes, axis=-1)
    return save_nifti(np.asarray(data, np.float32), affine, path, dtype=np.float32)
