"""Files in and out, below every other layer but the errors: atomic writes (:mod:`.atomic`) and NIfTI volumes read,
checked and written (:mod:`.nifti`)."""

__all__ = ["atomic", "nifti"]
