"""A study's files, one per modality key of a bundle: given per modality, or found in a folder by modality token."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..data.layouts import modality_of
from ..errors import InputError
from ..io.nifti import is_nifti

__all__ = ["study_inputs"]


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with path.open("rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def study_inputs(keys: Sequence[str], files: Mapping[str, str | os.PathLike] | None = None, study: str | os.PathLike | None = None) -> dict[str, str]:
    """``{modality: path}`` for the modality ``keys`` of a bundle: ``files`` as given (one per key), or the NIfTI files
    under the folder ``study`` matched by modality token (file names as in the ISLES releases, ``strokezoo datalist``'s
    rule: ``..._adc.nii.gz``, ``...MR_DWI...``). Raises :class:`InputError` naming the study and what is missing, or
    which files match one modality twice."""
    if study is None:
        files = {k: str(v) for k, v in (files or {}).items()}
        missing = [k for k in keys if k not in files]
        if missing:
            raise InputError("study", f"no file for {', '.join(missing)}: this bundle reads {', '.join(keys)} (give --{missing[0]} FILE)")
        return {k: files[k] for k in keys}
    root = Path(study)
    if not root.is_dir():
        raise InputError(root, "no such study folder")
    found: dict[str, list[Path]] = {}
    candidates = sorted(p for p in root.rglob("*") if p.is_file())
    for p in candidates:
        if is_nifti(p) and (m := modality_of(p)) in keys:
            found.setdefault(m, []).append(p)
    twice = {k: v for k, v in found.items() if len(v) > 1}
    if twice:
        k, v = next(iter(twice.items()))
        raise InputError(root, f"more than one file matches {k}: {', '.join(str(p) for p in v)}")
    missing = [k for k in keys if k not in found]
    if missing:
        if not found and any(_is_dicom(p) for p in candidates):
            raise InputError(root, "holds DICOM files; segment reads NIfTI (convert the series first, e.g. with dcm2niix)")
        named = ", ".join(f"{k}={found[k][0].name}" for k in found) or "none"
        raise InputError(root, f"no file for {', '.join(missing)} (matched: {named}); this bundle reads {', '.join(keys)}")
    return {k: str(found[k][0]) for k in keys}
