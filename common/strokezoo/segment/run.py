"""Run one or several bundles' own ``inference.json`` on a study, combine them, and report.

Every bundle runs through MONAI's bundle workflow with its shipped inference configs (plus override files the user
names, e.g. ``smoke.json`` for weights trained at that size), so ``strokezoo segment`` writes the mask that ``python
-m monai.bundle run evaluating --config_file configs/inference.json`` writes for the same files and weights. The
bundle's working files go to a scratch folder under the output, removed at the end: nothing is written into the
bundle or beside the inputs.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from ..bundle_info import bundle_folder, inference_keys
from ..data.checks import check_entry
from ..data.plausibility import check_values
from ..errors import InputError, InputsRefused
from ..export import sha256
from ..io.atomic import atomic_path, write_text_atomic
from ..io.dicom import DicomSeries, diffusion_weighted, read_series
from ..io.nifti import save_nifti
from .dicom_seg import write_dicom_seg
from .dicom_sr import write_measurement_report
from .inputs import study_inputs
from .lesions import lesion_statistics
from .report import write_overlay, write_report

__all__ = ["StudyFailed", "segment_studies", "segment_study"]

WEIGHTS_DOC = "docs/weights.md"

#: the bundles' logging.conf prints every INFO line to stdout; segment's stdout is its result lines, so the bundles
#: run with warnings and errors only, on stderr
QUIET_LOGGING = """[loggers]
keys=root

[handlers]
keys=stderr

[formatters]
keys=plain

[logger_root]
level=WARNING
handlers=stderr

[handler_stderr]
class=StreamHandler
level=WARNING
formatter=plain
args=(sys.stderr,)

[formatter_plain]
format=%(levelname)s %(name)s: %(message)s
"""


class StudyFailed(RuntimeError):
    """A study whose segmentation failed for a reason other than its inputs; the message names the study."""

    def __init__(self, study: str, problem: str):
        self.study = study
        super().__init__(f"{study}: {problem}")


def _configs(folder: Path, configs: Sequence[str]) -> list[str]:
    """``inference.json`` and the override files named (a path, or a file of the bundle's ``configs/``)."""
    files = [folder / "configs" / "inference.json"]
    for c in configs:
        p = Path(c) if Path(c).is_file() else folder / "configs" / c
        if not p.is_file():
            raise InputError(c, f"no such config file (nor {folder / 'configs' / c})")
        files.append(p)
    return [str(p) for p in files]


def _geometry(path: str, series: DicomSeries | None = None) -> dict:
    img = nib.load(path)
    source = {"file": path} if series is None else {"dicom_series": series.uid, "series_description": series.description, "instances": len(series.files)}
    return {
        **source,
        "shape": [int(s) for s in img.shape],
        "voxel_mm": [round(float(z), 4) for z in img.header.get_zooms()[:3]],
        "orientation": "".join(nib.aff2axcodes(img.affine)),
        "affine": np.round(img.affine, 4).tolist(),
    }


def _versions() -> dict:
    import monai
    import torch

    from .. import __version__ as strokezoo_version

    return {"python": platform.python_version(), "torch": torch.__version__, "monai": monai.__version__, "strokezoo": strokezoo_version}


def _run_bundle(folder: Path, weights: Path, entry: dict, configs: Sequence[str], work: Path, amp: bool | None = None) -> tuple[Path, Path | None, str]:
    """The bundle's inference.json on ``entry`` into ``work`` (``amp``: its ``amp`` key set, else its default);
    returns its mask, its probability map (or None) and the modality key whose grid they are on."""
    import torch
    from monai.bundle import ConfigWorkflow

    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is the file's problem
        raise InputError(weights, f"does not load with torch.load(weights_only=True): {type(e).__name__}: {e}") from None
    keys = {
        "bundle_root": str(work),
        "ckpt_path": str(weights),
        "output_dir": str(work / "out"),
        "dataset_dir": str(work / "no-dataset"),
        "entries": [entry],
        **({} if amp is None else {"amp": bool(amp)}),
    }
    work.mkdir(parents=True, exist_ok=True)
    quiet = write_text_atomic(QUIET_LOGGING, work / "logging.conf")  # stdout keeps the results; warnings go to stderr
    meta = str(folder / "configs" / "metadata.json")
    announcer = logging.getLogger("monai.bundle.workflows")  # says which logging config it applied, on stdout
    level = announcer.level
    announcer.setLevel(logging.WARNING)
    try:
        wf = ConfigWorkflow(config_file=_configs(folder, configs), meta_file=meta, logging_file=str(quiet), workflow_type="inference", **keys)
    finally:
        announcer.setLevel(level)
    if "save_probabilities" in wf.parser:
        wf.parser["save_probabilities"] = True
    if "output_modalities" in wf.parser and "annotation_modality" in wf.parser:  # the mask segment reports, alone
        wf.parser["output_modalities"] = [wf.parser["annotation_modality"]]
    wf.initialize()
    try:
        wf.parser.get_parsed_content("network_def").load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
    except (RuntimeError, AttributeError, TypeError) as e:
        used = ", ".join(Path(c).name for c in _configs(folder, configs))
        raise InputError(weights, f"does not fit the network of {folder.name} (configs: {used}): {str(e)[:400]}") from None
    wf.run()
    wf.finalize()  # raises InputsRefused if the bundle's own input check refused the study
    out = work / "out"
    case = entry["case_id"]
    annotation = wf.parser.get("annotation_modality")
    for name, key in ((f"{case}.nii.gz", None), (f"{case}_{annotation}.nii.gz", annotation)):
        if (out / name).is_file():
            prob = out / name.replace(".nii.gz", "_prob.nii.gz")
            return out / name, prob if prob.is_file() else None, key or inference_keys(folder)[0]
    raise RuntimeError(f"{folder.name} wrote no mask for {case} in {out}: {sorted(p.name for p in out.rglob('*'))}")


def segment_study(
    bundles: Sequence[str | os.PathLike],
    weights: Sequence[str | os.PathLike | None],
    out: str | os.PathLike,
    files: Mapping[str, str | os.PathLike] | None = None,
    study: str | os.PathLike | None = None,
    configs: Sequence[str] = (),
    probabilities: bool = False,
    name: str | None = None,
    mapping: Mapping[str, str] | None = None,
    amp: bool | None = None,
    min_b_value: float = 500.0,
) -> dict:
    """Segment one study with each of ``bundles`` (names of the repository's bundles, or bundle folders) and its
    ``weights`` (same order), from ``files`` (``{modality: NIfTI}``) or the folder ``study``: its NIfTI files, or its
    DICOM series (matched by name, or by ``mapping``, ``{modality: SeriesInstanceUID}``; read on their own grids,
    :func:`strokezoo.io.dicom.read_series`).

    Writes into ``out/<study name>/``: each bundle's mask (``<bundle>_mask.nii.gz``; ``probabilities``: its
    probability map too) on the grid of the modality it segments, as the study gave it, and with several bundles the
    mean of their probabilities thresholded at 0.5 (``ensemble_mask.nii.gz``); ``overlay.png``, ``report.json`` and
    ``report.md`` about the ensemble's mask, else the one bundle's; for DICOM in, that mask as a DICOM SEG too
    (``segmentation.dcm``, referencing the series of the modality the mask is on) and the lesion figures as a TID 1500
    measurement report referencing it (``measurements.dcm``). ``amp``: bf16 autocast on (True) or
    off (False) for every bundle, instead of each bundle's default (``amp`` in its ``inference.json``). A DICOM DWI
    series is read at its highest b-value (at least ``min_b_value``; :func:`strokezoo.io.dicom.diffusion_weighted`),
    which report.json records. Returns the report.

    The outputs are written to a scratch folder and moved into ``out/<study name>/`` once all are complete: a study
    that fails at any step adds nothing there. Raises :class:`InputError` naming the file and the problem, and
    :class:`StudyFailed` naming the study for any other failure."""
    t0 = time.perf_counter()
    if len(weights) != len(bundles):
        raise ValueError(f"{len(bundles)} bundles but {len(weights)} weights: give one --weights per --bundle, in the same order")
    folders = [bundle_folder(b) for b in bundles]
    for folder, w in zip(folders, weights):
        if w is None:
            why = f"no weights are published for this bundle yet ({WEIGHTS_DOC}); train it, then pass its checkpoint"
            raise InputError(folder.name, f"no --weights given: {why}")
        if not Path(w).is_file():
            raise InputError(w, "no such weights file")
    if name is None:  # the study folder's name, else the first file's name without its extension
        name = Path(study).name if study is not None else Path(str(next(iter((files or {}).values()), "study"))).name.split(".")[0]
    read = sorted({k for folder in folders for k in inference_keys(folder)})
    unknown = sorted(set(mapping or {}) - set(read))
    if unknown:
        raise InputError(study or "study", f"--map names {', '.join(unknown)}, which no bundle given reads ({', '.join(read)})")
    sources = study_inputs(read, files, study, mapping)  # every bundle's modalities at once: the folder is read once
    b_values = {}
    if isinstance(sources.get("dwi"), DicomSeries):
        sources["dwi"], b_values["dwi"] = diffusion_weighted(sources["dwi"], min_b_value)
    series = {k: v for k, v in sources.items() if isinstance(v, DicomSeries)}
    out_dir = Path(out) / name
    if study is not None and out_dir.resolve().is_relative_to(Path(study).resolve()):
        raise InputError(out_dir, f"output folder is inside the study folder {study}; nothing may be written there")
    inside = [p for p in (v.files[0] if isinstance(v, DicomSeries) else v for v in sources.values()) if Path(p).resolve().is_relative_to(out_dir.resolve())]
    if inside:
        raise InputError(inside[0], f"lies inside the output folder {out_dir}, whose files segment replaces")

    work = out_dir / ".work"
    shutil.rmtree(work, ignore_errors=True)
    final_dir, out_dir = out_dir, work / "result"  # everything is written here first, and moved into place at the end
    try:
        out_dir.mkdir(parents=True)
        inputs = {k: str(read_series(v, work / "dicom" / f"{k}.nii.gz")) if k in series else v for k, v in sources.items()}
        for folder in folders:
            problems = check_entry({"case_id": name, **inputs}, inference_keys(folder))
            if problems:
                why = "; ".join(problems)
                for k, s in series.items():  # a converted series is named as the user knows it
                    why = why.replace(inputs[k], s.label)
                raise InputError(name, f"refused for {folder.name}: {why}")
        warnings = []
        for k, path in inputs.items():  # each input's values can be its modality's
            refusal, warning = check_values(k, np.asarray(nib.load(path).dataobj))
            if refusal:
                raise InputError(series[k].label if k in series else path, f"given as {k}: {refusal}")
            warnings += [warning] if warning else []
        results = []
        for folder, w in zip(folders, weights):
            mask, prob, key = _run_bundle(folder, Path(w), {"case_id": name, **inputs}, configs, work / folder.name, amp)
            results.append((folder, Path(w), mask, prob, key))
        written = {}
        for folder, _, mask, prob, _ in results:
            for src, dst in ((mask, f"{folder.name}_mask.nii.gz"), *(((prob, f"{folder.name}_prob.nii.gz"),) if probabilities and prob else ())):
                with atomic_path(out_dir / dst) as tmp:
                    shutil.copyfile(src, tmp)
                written.setdefault(folder.name, []).append(dst)
        final, final_from, key = results[0][2], results[0][0].name, results[0][4]
        ensemble = None
        if len(results) > 1:
            probs = [nib.load(r[3]) for r in results if r[3] is not None]
            same = len(probs) == len(results) and all(p.shape == probs[0].shape and np.allclose(p.affine, probs[0].affine, atol=1e-3) for p in probs)
            if same:
                mean = np.mean([np.asarray(p.dataobj, np.float32) for p in probs], axis=0)
                final = save_nifti((mean > 0.5).astype(np.uint8), probs[0].affine, out_dir / "ensemble_mask.nii.gz")
                final_from, ensemble = "ensemble", [r[0].name for r in results]
            else:
                ensemble = "not made: the bundles' probability maps are not all on one grid"
        mask_img = nib.load(str(final))
        mask = np.asarray(mask_img.dataobj) > 0
        reference = np.asarray(nib.load(inputs[key]).dataobj, np.float32)
        reference3d = reference if reference.ndim == 3 else reference.reshape(*reference.shape[:3], -1).max(axis=3)
        stats = lesion_statistics(mask, mask_img.affine, reference3d)
        title = f"{name}: {stats['total_volume_ml']:.1f} mL, {stats['lesion_count']} lesion(s) ({final_from})"
        write_overlay(reference3d, mask, mask_img.affine, key, title, out_dir / "overlay.png")
        versions = _versions()
        bundle_versions = {folder.name: json.loads((folder / "configs" / "metadata.json").read_text()).get("version") for folder, *_ in results}
        seg = sr = None
        if key in series:
            algorithm = final_from if final_from != "ensemble" else "ensemble of " + " + ".join(ensemble)
            version, software = ", ".join(f"{b} {v}" for b, v in bundle_versions.items())[:64], f"strokezoo {versions['strokezoo']}"
            write_dicom_seg(final, series[key], out_dir / "segmentation.dcm", algorithm, version, software)
            seg = {"file": "segmentation.dcm", "references_series": series[key].uid}
            write_measurement_report(out_dir / "segmentation.dcm", series[key], stats, out_dir / "measurements.dcm", algorithm, version, software)
            sr = {"file": "measurements.dcm", "template": "TID 1500", "references": "segmentation.dcm"}
        report = {
            "study": name,
            "mask": Path(final).name if final_from == "ensemble" else f"{final_from}_mask.nii.gz",
            "mask_from": final_from,
            "mask_modality": key,
            "ensemble": ensemble,
            "lesions": stats,
            "inputs": {k: {**_geometry(v, series.get(k)), **({"b_value": b_values[k]} if k in b_values else {})} for k, v in inputs.items()},
            "bundles": [
                {
                    "name": folder.name,
                    "version": bundle_versions[folder.name],
                    "weights": str(w),
                    "weights_sha256": sha256(w),
                    "configs": ["inference.json", *configs],
                    "amp": "default" if amp is None else bool(amp),
                    "files": written.get(folder.name, []),
                }
                for folder, w, *_ in results
            ],
            "overlay": "overlay.png",
            "dicom_seg": seg,
            "dicom_sr": sr,
            "warnings": warnings,
            "software": versions,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        write_report(report, out_dir)
        final_dir.mkdir(parents=True, exist_ok=True)
        for f in sorted(out_dir.iterdir(), key=lambda f: f.name == "report.json"):  # the report last: it names the others
            os.replace(f, final_dir / f.name)
        return report
    except (InputError, InputsRefused):
        raise
    except Exception as e:  # noqa: BLE001 - any other failure is reported with the study's name, and nothing is kept
        raise StudyFailed(name, f"{type(e).__name__}: {e}") from e
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if final_dir.is_dir() and not any(final_dir.iterdir()):
            final_dir.rmdir()  # a refused study leaves no folder behind


def segment_studies(
    root: str | os.PathLike, bundles: Sequence[str], weights: Sequence[str | None], out: str | os.PathLike, progress: bool = True, **kwargs
) -> list[dict]:
    """:func:`segment_study` on every folder directly below ``root`` (a study each), keeping going past the studies
    it refuses; raises :class:`InputsRefused` listing them (study, file and problem) once the others are done."""
    from tqdm import tqdm

    if not Path(root).is_dir():
        raise InputError(root, "no such folder of studies")
    if Path(out).resolve().is_relative_to(Path(root).resolve()):
        raise InputError(out, f"output folder is inside the input folder {root}; nothing may be written there")
    studies = sorted(p for p in Path(root).iterdir() if p.is_dir())
    if not studies:
        raise InputError(root, "no study folders in it")
    reports, failures = [], []
    for study in tqdm(studies, desc="segment", disable=not progress, file=sys.stderr):
        try:
            reports.append(segment_study(bundles, weights, out, study=study, **kwargs))
        except StudyFailed as e:  # its message names the study already
            failures.append(str(e))
        except (InputError, InputsRefused) as e:
            failures.append(f"{study.name}: {e}")
    if failures:
        raise InputsRefused(f"{len(failures)} of {len(studies)} studies refused:\n  " + "\n  ".join(failures))
    return reports
