"""The lesion figures of a DICOM study as a DICOM Structured Report a PACS can show: a TID 1500 measurement report
(highdicom's Comprehensive 3D SR) that references the SEG's lesion segment."""

from __future__ import annotations

import os
from pathlib import Path

from ..io.atomic import atomic_path
from ..io.dicom import DicomSeries
from .dicom_seg import source_images

__all__ = ["write_measurement_report"]

#: LOINC codes of the imaging procedure reported, by the source series' modality (the LOINC/RSNA Radiology Playbook)
PROCEDURES = {"MR": ("24590-2", "MR Brain"), "CT": ("24725-4", "CT Head")}


def write_measurement_report(
    seg_path: str | os.PathLike, series: DicomSeries, lesions: dict, out: str | os.PathLike, algorithm: str, version: str, software: str
) -> Path:
    """Write a TID 1500 measurement report to ``out`` (atomically) about the lesion segment (number 1) of the DICOM
    SEG ``seg_path``, which was made on ``series``: one volumetric ROI group (TID 1411) referencing that segment,
    holding the total lesion volume (mL), the lesion count, and the lesion volume in each hemisphere (finding site
    brain, laterality left or right), from ``lesions`` (:func:`strokezoo.segment.lesions.lesion_statistics`). The
    observer is the device ``algorithm`` ``version``. Source images without the type 2 patient and study attributes
    (anonymised) give a report with them empty, as the SEG has."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    seg = pydicom.dcmread(seg_path)
    sources = source_images(series)
    volume, millilitre = Code("118565006", "SCT", "Volume"), Code("ml", "UCUM", "milliliter")
    brain = Code("12738006", "SCT", "Brain")
    measurements = [
        hd.sr.Measurement(name=volume, value=float(lesions["total_volume_ml"]), unit=millilitre),
        hd.sr.Measurement(name=Code("246205007", "SCT", "Quantity"), value=int(lesions["lesion_count"]), unit=Code("{lesions}", "UCUM", "lesions")),
    ]
    for side, laterality in (("left", codes.SCT.Left), ("right", codes.SCT.Right)):
        measurements.append(
            hd.sr.Measurement(
                name=volume,
                value=float(lesions["volume_ml_by_hemisphere"][side]),
                unit=millilitre,
                finding_sites=[hd.sr.FindingSite(anatomic_location=brain, laterality=laterality)],
            )
        )
    group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="ischemic stroke lesion"),
        referenced_segment=hd.sr.ReferencedSegment(  # highdicom's from_segmentation misses a segment identified in the shared groups
            sop_class_uid=seg.SOPClassUID,
            sop_instance_uid=seg.SOPInstanceUID,
            segment_number=1,
            source_images=[hd.sr.SourceImageForSegmentation(ds.SOPClassUID, ds.SOPInstanceUID) for ds in sources],
        ),
        finding_type=Code("55641003", "SCT", "Infarct"),
        algorithm_id=hd.sr.AlgorithmIdentification(name=algorithm[:64], version=version[:64]),
        measurements=measurements,
    )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(uid=hd.UID(), name=algorithm[:64], model_name=software[:64]),
    )
    code, meaning = PROCEDURES.get(str(sources[0].Modality), PROCEDURES["MR"])
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=Code(code, "LN", meaning),
        imaging_measurements=[group],
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[seg, *sources],
        content=report,
        series_instance_uid=hd.UID(),
        series_number=int(getattr(sources[0], "SeriesNumber", 0) or 0) + 901,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="strokezoo",
        series_description=f"{algorithm} lesion measurements"[:64],
        is_complete=True,
        is_final=False,
        is_verified=False,
    )
    with atomic_path(out) as tmp:
        sr.save_as(tmp)
    return Path(out)
