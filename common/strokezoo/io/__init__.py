"""Files in and out, below every other layer but the errors: atomic writes (:mod:`.atomic`) and NIfTI volumes read,
checked and written (:mod:`.nifti`), DICOM series read (:mod:`.dicom`), and a bundle's other config read for its
settings (:mod:`.sibling_config`)."""

__all__ = ["atomic", "dicom", "nifti", "sibling_config"]
