"""Release layouts of the public stroke datasets, read by modality token rather than by exact path.

Each layout knows how to find its cases under a root folder and which file of a case holds which
modality. File names differ between releases and between cases of one release (``VSD.Brain`` vs
``SMIR.Brain`` vs ``VSD.Brain_3more``, ``rawdata/`` vs ``raw_data/`` vs none, ``.nii`` vs ``.nii.gz``),
so files are matched by the modality token inside their names:

* ISLES 2015 SISS/SPES, 2017, 2018 (SMIR/VSD): ``<prefix>.XX.O.<TOKEN>.<id>`` (folder and/or file).
* ISLES 2022, 2024 (BIDS): the last ``_``-separated entity of the file name (``..._adc.nii.gz``); where
  a modality exists both under ``derivatives/`` (ISLES 2024: co-registered to the NCCT) and as a raw
  scan, the derivative is taken. Vessel masks (``lvo-msk``, ``cow-msk``) are ignored.
* APIS: ``<case>_<token>.nii.gz`` and ``masks/<case>_r<k>_mask.nii.gz``.

See docs/datasets.md for where to obtain each release and the exact ``strokezoo datalist`` command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..io.nifti import is_nifti
from .modalities import MODALITIES, is_label, label_key

__all__ = ["Layout", "CaseFiles", "LAYOUTS", "detect_layout", "discover_cases", "modality_of", "modality_of_token"]


@dataclass
class CaseFiles:
    """The files of one case: ``images`` maps modality keys to paths; ``labels`` maps label keys
    (``label`` is the reference; ``label_r2``, ``label_r1_adc``... are extra raters) to paths."""

    case_id: str
    patient_id: str
    images: dict[str, Path] = field(default_factory=dict)
    labels: dict[str, Path] = field(default_factory=dict)
    testing: bool = False
    where: Path | None = None


@dataclass(frozen=True)
class Layout:
    """A release: its modality tokens (lower-case token -> datalist key), the keys every case must have,
    and the keys allowed on a grid of their own (all others must share the label's grid)."""

    name: str
    tokens: dict[str, str]
    required: tuple[str, ...]
    own_grid: tuple[str, ...] = ()
    label_of: str = "the lesion mask"

    def __post_init__(self) -> None:
        unknown = sorted({k for k in (*self.tokens.values(), *self.required, *self.own_grid) if k not in MODALITIES})
        if unknown:
            raise ValueError(f"layout {self.name!r}: {unknown} are not in strokezoo.data.modalities.MODALITIES")


_VSD = re.compile(r"(?:^|\.)O\.([A-Za-z0-9_]+)\.\d+(?:\.nii(?:\.gz)?)?$")

LAYOUTS: dict[str, Layout] = {
    "isles2015-siss": Layout(
        "isles2015-siss",
        {"mr_flair": "flair", "mr_t1": "t1", "mr_t2": "t2", "mr_dwi": "dwi", "ot": "label"},
        ("flair", "t1", "t2", "dwi"),
        label_of="the sub-acute lesion",
    ),
    "isles2015-spes": Layout(
        "isles2015-spes",
        {"mr_cbf": "cbf", "mr_cbv": "cbv", "mr_dwi": "dwi", "mr_t1c": "t1c", "mr_t2": "t2", "mr_tmax": "tmax", "mr_ttp": "ttp", "ot": "label"},
        ("cbf", "cbv", "dwi", "t1c", "t2", "tmax", "ttp"),
        label_of="the hypoperfused tissue (core and penumbra)",
    ),
    "isles2017": Layout(
        "isles2017",
        {"mr_adc": "adc", "mr_mtt": "mtt", "mr_rcbf": "rcbf", "mr_rcbv": "rcbv", "mr_tmax": "tmax", "mr_ttp": "ttp", "mr_4dpwi": "pwi", "ot": "label"},
        ("adc", "mtt", "rcbf", "rcbv", "tmax", "ttp"),
        label_of="the follow-up infarct",
    ),
    "isles2018": Layout(
        "isles2018",
        {"ct": "ct", "ct_4dpwi": "ctp", "ct_cbf": "cbf", "ct_cbv": "cbv", "ct_mtt": "mtt", "ct_tmax": "tmax", "mr_dwi": "dwi", "ot": "label"},
        ("ct", "ctp", "cbf", "cbv", "mtt", "tmax"),
        label_of="the infarct core on DWI",
    ),
    "isles2022": Layout("isles2022", {"dwi": "dwi", "adc": "adc", "flair": "flair"}, ("dwi", "adc"), own_grid=("flair",), label_of="the DWI lesion"),
    "isles2024": Layout(
        "isles2024",
        {"ncct": "ncct", "cta": "cta", "ctp": "ctp", "tmax": "tmax", "mtt": "mtt", "cbf": "cbf", "cbv": "cbv"},
        ("ncct", "ctp", "tmax", "mtt", "cbf", "cbv"),
        own_grid=("ncct", "cta"),
        label_of="the follow-up infarct",
    ),
    "apis": Layout("apis", {"ncct": "ncct", "adc": "adc"}, ("ncct", "adc"), label_of="the ADC lesion (rater 1)"),
}


def _niftis(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and is_nifti(p) and not p.name.startswith("."))


def _stem(p: Path) -> str:
    n = p.name
    return n[: -len(".nii.gz")] if n.lower().endswith(".nii.gz") else n[: -len(".nii")]


def _vsd_token(p: Path) -> str | None:
    for name in (p.name, p.parent.name):
        m = _VSD.search(name)
        if m:
            return m.group(1).lower()
    return None


def _vsd_cases(root: Path, layout: Layout) -> list[CaseFiles]:
    cases: dict[Path, CaseFiles] = {}
    for p in _niftis(root):
        token = _vsd_token(p)
        if token is None:
            continue
        key = layout.tokens.get(token) or layout.tokens.get(f"mr_{token}")
        if key is None:
            continue
        case_dir = p.parent.parent if _VSD.search(p.parent.name) else p.parent
        name = case_dir.name
        case_id = f"case_{name}" if name.isdigit() else name
        testing = any(part.lower().startswith("test") for part in case_dir.relative_to(root).parts)
        if testing:
            case_id = f"test_{case_id}" if not case_id.startswith("test") else case_id
        c = cases.setdefault(case_dir, CaseFiles(case_id, case_id, testing=testing, where=case_dir))
        (c.labels if is_label(key) else c.images).setdefault(key, p)
    return list(cases.values())


def _bids_token(p: Path) -> str:
    return _stem(p).split("_")[-1].lower()


_VESSEL_MASKS = ("lvo-msk", "cow-msk", "lvo_msk", "cow_msk")


def _bids_subject(p: Path) -> str | None:
    for part in p.parts:
        if part.startswith("sub-"):
            return part
    return None


def _bids_cases(root: Path, layout: Layout) -> list[CaseFiles]:
    cases: dict[str, CaseFiles] = {}
    for p in _niftis(root):
        sub = _bids_subject(p.relative_to(root))
        if sub is None:
            continue
        rel = p.relative_to(root).parts
        token = _bids_token(p)
        c = cases.setdefault(sub, CaseFiles(sub, sub, where=root.joinpath(*rel[: rel.index(sub) + 1])))
        if "derivatives" in rel:
            if any(v in _stem(p).lower() for v in _VESSEL_MASKS):
                continue  # ISLES 2024 vessel-occlusion and Circle-of-Willis masks are not lesion labels
            if "msk" in token or "mask" in token or "lesion" in token:
                rater = re.search(r"_rater-([A-Za-z0-9]+)", p.name)
                desc = re.search(r"_desc-([A-Za-z0-9]+)", p.name)
                key = label_key(rater.group(1), desc.group(1) if desc else "") if rater else "label"
                c.labels.setdefault(key, p)
                continue
        key = layout.tokens.get(token)
        if key is not None:
            c.images.setdefault(key, p)
    return [c for c in cases.values() if c.images or c.labels]


_APIS = re.compile(r"^((?:train|test)_\d+)_([a-z0-9]+)$", re.IGNORECASE)
_APIS_MASK = re.compile(r"^((?:train|test)_\d+)_r(\d+)_mask$", re.IGNORECASE)


def _apis_cases(root: Path, layout: Layout) -> list[CaseFiles]:
    cases: dict[str, CaseFiles] = {}
    for p in _niftis(root):
        stem = _stem(p)
        m = _APIS_MASK.match(stem)
        if m:
            c = cases.setdefault(m.group(1), CaseFiles(m.group(1), m.group(1), where=p.parent))
            c.labels.setdefault("label" if m.group(2) == "1" else label_key(f"r{m.group(2)}"), p)
            continue
        m = _APIS.match(stem)
        if m and m.group(2).lower() in layout.tokens:
            c = cases.setdefault(m.group(1), CaseFiles(m.group(1), m.group(1), where=p.parent))
            c.images.setdefault(layout.tokens[m.group(2).lower()], p)
            c.where = p.parent
    for c in cases.values():
        c.testing = c.case_id.lower().startswith("test") or "label" not in c.labels
    return list(cases.values())


_READERS = {
    "isles2015-siss": _vsd_cases,
    "isles2015-spes": _vsd_cases,
    "isles2017": _vsd_cases,
    "isles2018": _vsd_cases,
    "isles2022": _bids_cases,
    "isles2024": _bids_cases,
    "apis": _apis_cases,
}


def discover_cases(root: str | Path, layout: str) -> list[CaseFiles]:
    """All cases of ``layout`` under ``root`` (no file is opened), sorted by case id (numerically)."""
    root = Path(root)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose from {sorted(LAYOUTS)} or 'auto'")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset root is not a directory")
    cases = _READERS[layout](root, LAYOUTS[layout])
    for c in cases:
        if not c.labels:  # a rater's masks alone (the two-rater layout's training cases) make a case labelled
            c.testing = True
    return sorted(cases, key=lambda c: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", c.case_id)])


_ALL_TOKENS = {t: k for layout in LAYOUTS.values() for t, k in layout.tokens.items()}


def modality_of_token(token: str) -> str | None:
    """Datalist key of a modality token of any supported layout (``adc``, ``mr_flair``, ``ct_4dpwi``), or None."""
    return _ALL_TOKENS.get(token.lower())


def modality_of(path: Path) -> str | None:
    """Datalist key of a file of any supported layout (``label`` for masks), or None when unknown."""
    name = path.name.lower()
    token = _vsd_token(path)
    if any(v in name for v in _VESSEL_MASKS):
        return None
    if "mask" in name or "msk" in name or token == "ot":
        return "label"
    if token is not None:
        return _ALL_TOKENS.get(token) or _ALL_TOKENS.get(f"mr_{token}")
    return _ALL_TOKENS.get(_bids_token(path))


def detect_layout(root: str | Path) -> str:
    """The layout whose modality tokens cover the most files under ``root``."""
    best, best_score = None, 0
    for name, layout in LAYOUTS.items():
        cases = _READERS[name](Path(root), layout)
        score = sum(len(c.images) for c in cases) + sum(len(set(layout.required) & set(c.images)) * 10 for c in cases)
        if score > best_score:
            best, best_score = name, score
    if best is None:
        raise ValueError(f"{root}: no files of any known layout ({', '.join(LAYOUTS)}) were found")
    return best
