"""A study's inputs, one per modality key of a bundle: files given per modality, or found in a folder: NIfTI files by
modality token, DICOM series by the tokens of their SeriesDescription or ProtocolName (or as the user maps them)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data.layouts import modality_of, modality_of_token
from ..errors import InputError
from ..io.dicom import DicomSeries, find_series, is_dicom
from ..io.nifti import is_nifti

__all__ = ["series_modality", "study_inputs"]

#: keys that name a modality or weighting broadly; in a series name beside a more specific key they give way to it
#: (``t2_tirm_tra_dark-fluid FLAIR`` is flair, ``CT CBF`` is cbf)
GENERIC_KEYS = frozenset({"ct", "t1", "t2"})
#: words of scanners' series names that stand for a modality key when no key's own token is in the name
SERIES_SYNONYMS = {"trace": "dwi", "tracew": "dwi", "diffusion": "dwi", "diff": "dwi", "perfusion": "ctp", "4dpwi": "ctp"}
#: vendors' names of a modality, as good as its own token (GE: "Apparent Diffusion Coefficient (mm2/s)"; Philips
#: prefixes a derived map with "d": "dADC")
SERIES_NAMES = {"apparent_diffusion": "adc", "diffusion_coefficient": "adc", "dadc": "adc"}
#: a map named beside the images it is computed from: the name is the map's (Philips: "DWI_SENSE_ADC")
DERIVED_FROM = {"adc": "dwi"}


def series_modality(series: DicomSeries, keys: Sequence[str]) -> str | None:
    """The one key of ``keys`` that ``series``' SeriesDescription (else its ProtocolName) names, or None.

    A name is split into lower-case words; pairs of words are tried first, as the ISLES file tokens (``CT_Tmax``:
    tmax, ``CT_4DPWI``: ctp), then single words (``ep2d_diff_ADC``: adc; ``FLAIR``; ``T2``), then common scanner words
    (``TRACEW``, ``diffusion``: dwi; ``perfusion``: ctp; GE's ``Apparent Diffusion Coefficient``, Philips' ``dADC``:
    adc). A name that points at several keys names none, except that a broad one (:data:`GENERIC_KEYS`) gives way to
    a more specific one (``CT CBF``: cbf; ``t2_tirm_tra_dark-fluid FLAIR``: flair), and the images a map is computed
    from give way to the map (:data:`DERIVED_FROM`; ``DWI_SENSE_ADC``: adc)."""
    for text in (series.description, series.protocol):
        words = re.findall(r"[a-z0-9]+", text.lower())
        hits: set[str] = set()
        for tries in ([f"{a}_{b}" for a, b in zip(words, words[1:])], words):
            hits = {k for w in tries for k in (modality_of_token(w), w, SERIES_NAMES.get(w)) if k in keys}
            if hits:
                break
        if len(hits) > 1:
            hits -= GENERIC_KEYS
        hits -= {DERIVED_FROM[k] for k in hits if k in DERIVED_FROM and len(hits) > 1}
        if not hits:
            hits = {SERIES_SYNONYMS[w] for w in words if SERIES_SYNONYMS.get(w) in keys}
        if len(hits) == 1:
            return hits.pop()
    return None


def _refuse_doubles(root: Path, found: Mapping[str, list], what: str, name: Callable[[Any], str], hint: str = "") -> None:
    """Raise :class:`InputError` for the first modality of ``found`` that more than one ``what`` (file, series)
    matches, naming each; ``hint`` (with ``{key}``) is added."""
    for key, matches in found.items():
        if len(matches) > 1:
            raise InputError(root, f"more than one {what} matches {key}: {'; '.join(name(m) for m in matches)}{hint.format(key=key)}")


def _dicom_inputs(root: Path, keys: Sequence[str], wanted: Sequence[str], mapping: Mapping[str, str]) -> dict[str, DicomSeries]:
    """The DICOM series under ``root`` for the modality keys ``wanted``: by ``mapping`` (``{key: SeriesInstanceUID}``),
    else by :func:`series_modality`."""
    series = find_series(root)
    by_uid = {s.uid: s for s in series}
    found: dict[str, list[DicomSeries]] = {}
    mapping = {k: uid for k, uid in mapping.items() if k in wanted}
    for k, uid in mapping.items():
        if uid not in by_uid:
            raise InputError(root, f"--map {k}={uid}: no such series here ({', '.join(by_uid) or 'no DICOM series'})")
        found[k] = [by_uid[uid]]
    mapped = set(mapping.values())
    for s in series:
        k = series_modality(s, keys)
        if k is not None and k in wanted and k not in mapping and s.uid not in mapped:
            found.setdefault(k, []).append(s)
    _refuse_doubles(root, found, "series", lambda s: s.label, "; choose one with --map {key}=UID")
    missing = [k for k in wanted if k not in found]
    if missing:
        listed = "; ".join(s.label for s in series) or "none"
        raise InputError(root, f"no DICOM series for {', '.join(missing)} (series here: {listed}); name one with --map {missing[0]}=UID")
    return {k: found[k][0] for k in wanted}


def study_inputs(
    keys: Sequence[str],
    files: Mapping[str, str | os.PathLike] | None = None,
    study: str | os.PathLike | None = None,
    mapping: Mapping[str, str] | None = None,
) -> dict[str, str | DicomSeries]:
    """``{modality: input}`` for the modality ``keys`` of a bundle: ``files`` as given (one path per key), or found
    under the folder ``study``: NIfTI files matched by modality token (file names as in the ISLES releases,
    ``strokezoo datalist``'s rule: ``..._adc.nii.gz``, ``...MR_DWI...``), and for the keys no NIfTI file matches, the
    folder's DICOM series (:class:`DicomSeries`), matched by :func:`series_modality` or by ``mapping`` (``{key:
    SeriesInstanceUID}``). Raises :class:`InputError` naming the study and what is missing, or which files or series
    match one modality twice."""
    mapping = dict(mapping or {})
    if study is None:
        if mapping:
            raise InputError("study", "--map names DICOM series of a --study or --studies folder; give one")
        files = {k: str(v) for k, v in (files or {}).items()}
        missing = [k for k in keys if k not in files]
        if missing:
            raise InputError("study", f"no file for {', '.join(missing)}: the bundles given read {', '.join(keys)} (give --{missing[0]} FILE)")
        return {k: files[k] for k in keys}
    root = Path(study)
    if not root.is_dir():
        raise InputError(root, "no such study folder")
    found: dict[str, list[Path]] = {}
    candidates = sorted(p for p in root.rglob("*") if p.is_file())
    for p in candidates:
        if is_nifti(p) and (m := modality_of(p)) in keys and m not in mapping:
            found.setdefault(m, []).append(p)
    _refuse_doubles(root, found, "file", str)
    missing = [k for k in keys if k not in found]
    if missing and any(is_dicom(p) for p in candidates):
        series = _dicom_inputs(root, keys, missing, mapping)
        return {k: series[k] if k in series else str(found[k][0]) for k in keys}
    if missing:
        named = ", ".join(f"{k}={found[k][0].name}" for k in found) or "none"
        raise InputError(root, f"no file for {', '.join(missing)} (matched: {named}); the bundles given read {', '.join(keys)}")
    return {k: str(found[k][0]) for k in keys}
