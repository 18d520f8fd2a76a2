"""``strokezoo datalist``: a MONAI datalist with patient-level folds from a dataset in its release layout.

Output (MONAI's decathlon-style JSON, readable by ``monai.data.load_decathlon_datalist``)::

    {"layout": ..., "root": ..., "num_folds": k, "seed": s, "modalities": [...],
     "training": [{"case_id", "patient_id", "fold", <modality>: path, ..., "label": path, ...}],
     "testing":  [{"case_id", "patient_id", <modality>: path, ...}],
     "failures": [{"case_id", "error"}]}

Every file of every case is opened and checked by the bundles' own case checker
(:func:`strokezoo.data.checks.check_entry`); modalities that must share the label's grid are compared. A bad
case is reported with the file and the problem and left out; the others are written. Nothing under the dataset root is ever written.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import InputError
from ..io.atomic import write_json_atomic
from .checks import check_entry
from .folds import patient_folds
from .layouts import LAYOUTS, CaseFiles, detect_layout, discover_cases

__all__ = [
    "build_datalist",
    "check_case",
    "group_isles2018_slabs",
    "load_datalist_entries",
    "select_entries",
    "require_key",
    "hold_out_patients",
    "held_out_split",
    "fold_split",
    "ensure_datalist",
]


def check_case(case: CaseFiles, layout: str, grid_atol_mm: float = 1e-3) -> list[str]:
    """Problems of one case (empty when it is usable): the layout's required modalities missing, and whatever
    :func:`~strokezoo.data.checks.check_entry` finds in its files (unreadable or bad files, grids that disagree
    with the label's; the layout's ``own_grid`` modalities are exempt)."""
    spec = LAYOUTS[layout]
    problems = [f"{case.where or case.case_id}: modality '{k}' is missing" for k in spec.required if k not in case.images]
    files = {**case.images, **case.labels}
    return problems + check_entry(files, list(files), grid_atol_mm=grid_atol_mm, own_grid=spec.own_grid, name=str(case.where or case.case_id))


def _slab_extent(path: Path) -> tuple[np.ndarray, tuple[int, int], float, float, float]:
    """In-plane affine rows, in-plane shape, lowest and highest slice z (mm) and slice spacing of a slab."""
    img = nib.load(str(path))
    a = img.affine
    z = [float((a @ np.array([0, 0, k, 1.0]))[2]) for k in (0, img.shape[2] - 1)]
    return a[:2, :].copy(), tuple(img.shape[:2]), min(z), max(z), float(img.header.get_zooms()[2])


def group_isles2018_slabs(cases: list[CaseFiles], tol_mm: float = 1.0) -> None:
    """Give the two slabs of one ISLES 2018 patient one ``patient_id``.

    The release numbers a patient's two slabs consecutively and does not say which cases pair up. Two
    consecutive cases of one split are taken as one patient when their in-plane geometry is identical
    (within ``tol_mm``) and their slabs are adjacent or overlap along z (gap at most one slice).
    """

    def number(c: CaseFiles) -> int | None:
        m = re.search(r"(\d+)$", c.case_id)
        return int(m.group(1)) if m else None

    geometry = {}
    for c in cases:
        ref = c.images.get("ct") or next(iter(c.images.values()), None)
        if ref is not None:
            try:
                geometry[c.case_id] = _slab_extent(ref)
            except Exception:  # unreadable files are reported by check_case
                pass
    by_number = {(number(c), c.testing): c for c in cases if number(c) is not None}
    for (n, testing), c in sorted(by_number.items(), key=lambda kv: kv[0][0]):
        prev = by_number.get((n - 1, testing))
        if prev is None or prev.patient_id != prev.case_id or prev.case_id not in geometry or c.case_id not in geometry:
            continue
        (a0, s0, lo0, hi0, dz0), (a1, s1, lo1, hi1, dz1) = geometry[prev.case_id], geometry[c.case_id]
        if s0 != s1 or np.abs(a0[:, [0, 1]] - a1[:, [0, 1]]).max() > tol_mm or np.abs(a0[:, 3] - a1[:, 3]).max() > tol_mm:
            continue
        gap = max(lo1 - hi0, lo0 - hi1)
        if gap <= max(dz0, dz1) + tol_mm:
            c.patient_id = prev.case_id


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def build_datalist(
    root: str | os.PathLike,
    out: str | os.PathLike,
    layout: str = "auto",
    folds: int = 5,
    seed: int = 0,
    relative: bool = False,
    check: bool = True,
    patients: str | os.PathLike | None = None,
) -> dict:
    """Write the datalist of the dataset under ``root`` to ``out`` and return it.

    Args:
        layout: a name from :data:`LAYOUTS`, or ``"auto"`` to detect it.
        folds: number of patient-level folds.
        relative: store paths relative to ``root`` (use ``root`` as MONAI's ``base_dir``).
        check: open and check every file (recommended; off lists files only).
        patients: optional CSV ``case_id,patient_id`` that overrides patient grouping.
    """
    root = Path(root).resolve()
    out = Path(out)
    if _inside(out, root):
        raise InputError(out, f"output is inside the dataset root {root}; nothing may be written there")
    layout = detect_layout(root) if layout == "auto" else layout
    cases = discover_cases(root, layout)
    if not cases:
        raise InputError(root, f"no {layout} case was found")
    if layout == "isles2018":
        group_isles2018_slabs(cases)
    if patients:
        mapping = dict(line.strip().split(",")[:2] for line in Path(patients).read_text().splitlines() if "," in line)
        for c in cases:
            c.patient_id = mapping.get(c.case_id, c.patient_id)
    failures = []
    good = []
    for c in cases:
        problems = check_case(c, layout) if check else [f"{c.where}: modality '{k}' is missing" for k in LAYOUTS[layout].required if k not in c.images]
        if problems:
            failures.append({"case_id": c.case_id, "error": "; ".join(problems)})
        else:
            good.append(c)
    fold_of = patient_folds([c.patient_id for c in good if not c.testing], folds, seed)

    def entry(c: CaseFiles) -> dict:
        e = {"case_id": c.case_id, "patient_id": c.patient_id}
        for k, p in sorted({**c.images, **c.labels}.items()):
            e[k] = str(p.relative_to(root)) if relative else str(p)
        return e

    training = [dict(entry(c), fold=fold_of[c.patient_id]) for c in good if not c.testing]
    testing = [entry(c) for c in good if c.testing]
    result = {
        "layout": layout,
        "root": str(root),
        "relative_paths": relative,
        "num_folds": folds,
        "seed": seed,
        "modalities": sorted({k for c in good for k in c.images}),
        "label": LAYOUTS[layout].label_of,
        "training": training,
        "testing": testing,
        "failures": failures,
    }
    write_json_atomic(result, out)
    for f in failures:
        print(f"bad case {f['case_id']}: {f['error']}", file=sys.stderr)
    return result


def load_datalist_entries(ref: str | os.PathLike, split: str = "training") -> list[dict]:
    """Entries of ``split`` with every path made absolute (relative ones resolve against ``root``)."""
    ref = Path(ref)
    try:
        data = json.loads(ref.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(ref, f"not a readable datalist JSON ({e})") from None
    if split not in data:
        raise InputError(ref, f"has no '{split}' list")
    root = Path(data.get("root") or ref.parent)
    entries = []
    for e in data[split]:
        e = dict(e)
        for k, v in e.items():
            if isinstance(v, str) and v.lower().endswith((".nii", ".nii.gz")) and not os.path.isabs(v):
                e[k] = str(root / v)
        entries.append(e)
    return entries


def select_entries(ref: str | os.PathLike, split: str = "training", folds: list[int] | None = None, exclude_folds: list[int] | None = None) -> list[dict]:
    """Entries of ``split`` (absolute paths), optionally only those in ``folds`` or not in ``exclude_folds``.

    Bundle configs use it to split a datalist by patient-level fold: training = ``exclude_folds=[k]``,
    validation = ``folds=[k]``.
    """
    entries = load_datalist_entries(ref, split)
    if folds is not None:
        entries = [e for e in entries if e.get("fold") in set(folds)]
    if exclude_folds is not None:
        entries = [e for e in entries if e.get("fold") not in set(exclude_folds)]
    if not entries:
        raise InputError(ref, f"no '{split}' entry is left for folds={folds} exclude_folds={exclude_folds}")
    return entries


def require_key(entries: list[dict], key: str, source: str | os.PathLike) -> list[dict]:
    """``entries`` unchanged when every one has ``key``; otherwise an error naming the datalist ``source`` and the
    cases without it (a bundle whose training needs that modality, e.g. the DWI target of a pseudo-DWI generator)."""
    missing = [e.get("case_id", "?") for e in entries if key not in e]
    if missing:
        raise InputError(source, f"training needs '{key}' for every case; {len(missing)} case(s) have none: {missing[:10]}")
    return entries


def hold_out_patients(entries: list[dict], fraction: float, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """``(kept, held_out)``: about ``fraction`` of the patients (all their entries) drawn at random with ``seed``,
    at least one, and at least one left. For a validation set taken from the training folds, so that early
    stopping never looks at the evaluation fold."""
    patients = sorted({e.get("patient_id", e.get("case_id")) for e in entries})
    if len(patients) < 2:
        raise ValueError(f"{len(patients)} patient(s): cannot hold any out and keep some to train on")
    n = min(len(patients) - 1, max(1, round(fraction * len(patients))))
    held = set(np.random.default_rng(seed).permutation(patients)[:n].tolist())
    return ([e for e in entries if e.get("patient_id", e.get("case_id")) not in held], [e for e in entries if e.get("patient_id", e.get("case_id")) in held])


def held_out_split(
    ref: str | os.PathLike, fold: int | None = None, fraction: float = 0.2, seed: int = 0, require: str | None = None
) -> tuple[list[dict], list[dict]]:
    """``(train, validation)`` for a bundle that validates on patients held out of its training folds: the
    ``training`` entries of datalist ``ref`` outside fold ``fold`` (every fold for ``None``), of which about
    ``fraction`` of the patients (drawn with ``seed``, :func:`hold_out_patients`) validate. ``require``: a key every
    entry must have (:func:`require_key`)."""
    entries = load_datalist_entries(ref, "training") if fold is None else select_entries(ref, "training", exclude_folds=[fold])
    if require is not None:
        entries = require_key(entries, require, ref)
    return hold_out_patients(entries, fraction, seed)


def fold_split(ref: str | os.PathLike, fold: int) -> tuple[list[dict], list[dict]]:
    """``(train, validation)``: the ``training`` entries of datalist ``ref`` outside fold ``fold``, and those in it."""
    return select_entries(ref, "training", exclude_folds=[fold]), select_entries(ref, "training", folds=[fold])


def ensure_datalist(dataset_dir: str | os.PathLike, datalist: str | os.PathLike, layout: str = "auto", folds: int = 5) -> str:
    """Path of ``datalist``, built from ``dataset_dir`` first when it does not exist yet.

    An existing datalist of another dataset root is refused rather than silently used or overwritten.
    """
    datalist = Path(datalist)
    if not datalist.exists():
        result = build_datalist(dataset_dir, datalist, layout=layout, folds=folds)
        if not result["training"] and not result["testing"]:
            raise InputError(dataset_dir, "no usable case (see the failures listed above)")
        return str(datalist)
    try:
        root = json.loads(datalist.read_text()).get("root")
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(datalist, f"not a readable datalist JSON ({e})") from None
    if root and Path(root).resolve() != Path(dataset_dir).resolve():
        raise InputError(datalist, f"was built for dataset root {root}, not {Path(dataset_dir).resolve()}; point 'datalist' elsewhere")
    return str(datalist)
