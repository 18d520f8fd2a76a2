"""Seconds per study of ``strokezoo segment`` from DICOM, per bundle: a synthetic study at the release's grid
(``scale=1``) written as DICOM series (one file per slice, and per time point of a CTP series), then segmented
through the bundle's own ``inference.json`` with untrained weights of the shipped (the paper's) network size. The
time covers everything the command does: finding and checking the series, reading them with ITK, the bundle's
pre-processing (e.g. the mirror registration), inference, the mask, the overlay, the report and the DICOM SEG.

Each bundle's studies run in one process, one after the other: the first also pays the bundle's first use in the
process (its modules, the network's construction); the median is over the rest (``--repeats``). DICOM reading
alone is timed on its own too. The inference configs' defaults apply (bf16 autocast where it is fast: a CPU with
AMX or AVX512-BF16, a CUDA GPU with bf16).

The residual 3D bundle runs with its ``fast.json`` (whole-volume inference): the paper's dense patch inference, its
``inference.json`` default, takes over an hour per fold on a CPU (``dense_patch_speed.py``). ``--config B=FILE``
sets another override file for bundle B (``--config B=`` none).

    python benchmarks/segment_speed.py --out /tmp/segment_speed
    python benchmarks/segment_speed.py --out /tmp/segment_speed --bundles stroke_dwi_crossdomain_unet2d --repeats 3
    python benchmarks/segment_speed.py --out /tmp/segment_speed --bundles stroke_dwi_crossdomain_unet2d --amp  # bf16 on
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from strokezoo.bundle_info import BUNDLES, bundle_folder, inference_keys
from strokezoo.data.datalist import build_datalist
from strokezoo.io.dicom import find_series, read_series
from strokezoo.segment import segment_study
from strokezoo.synth import synthesize_cohort
from strokezoo.synth.dicom import write_dicom_series


def dicom_study(bundle: str, data: Path, out: Path) -> Path:
    """The first case of ``bundle``'s synthetic layout (written once under ``data``) as a DICOM study in ``out``."""
    layout = BUNDLES[bundle].layout
    root = data / layout
    if not root.is_dir():
        synthesize_cohort(layout, root, cases=2, seed=0, scale=1.0, difficulty=0.5, test_fraction=0.0)
    entry = build_datalist(root, out / "datalist.json", layout=layout, folds=2)["training"][0]
    study = out / "study"
    if not study.is_dir():
        from pydicom.uid import generate_uid

        uids = (generate_uid(), generate_uid())
        for n, key in enumerate(inference_keys(bundle_folder(bundle))):
            img = nib.load(entry[key])
            modality = "CT" if "ctp" in entry else "MR"
            write_dicom_series(np.asarray(img.dataobj, np.float32), img.affine, study / key, f"{key.upper()} synthetic", modality, *uids, series_number=n + 1)
    return study


def untrained_weights(bundle: str, path: Path) -> Path:
    """The shipped inference network of ``bundle``, freshly initialised (seed 0), saved at ``path``."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle_folder(bundle) / "configs" / "inference.json"))
    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(parser.get_parsed_content("network_def").state_dict(), path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="work folder: cohorts, DICOM studies, outputs")
    ap.add_argument("--bundles", default=",".join(BUNDLES))
    ap.add_argument("--repeats", type=int, default=2, help="studies per bundle (the first one included)")
    ap.add_argument("--config", action="append", default=[], help="BUNDLE=FILE: an override file for BUNDLE (a path, or a file of its configs/)")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast for every bundle (strokezoo segment --amp)")
    args = ap.parse_args()
    out = Path(args.out)
    configs = {"stroke_mri_residual_unet3d": ["fast.json"]} | {b: [f] if f else [] for b, f in (c.split("=", 1) for c in args.config)}
    rows = []
    for bundle in args.bundles.split(","):
        work = out / bundle
        study = dicom_study(bundle, out / "data", work)
        weights = untrained_weights(bundle, work / "model.pt")
        t = time.perf_counter()
        series = find_series(study)
        for i, s in enumerate(series):
            read_series(s, work / "read" / f"{i}.nii.gz")
        read_s = time.perf_counter() - t
        seconds = []
        for _ in range(args.repeats):
            shutil.rmtree(work / "seg", ignore_errors=True)
            t = time.perf_counter()
            report = segment_study([bundle], [weights], work / "seg", study=study, configs=configs.get(bundle, []), amp=True if args.amp else None)
            seconds.append(time.perf_counter() - t)
        rest = seconds[1:] or seconds
        row = {
            "bundle": bundle + "".join(f", {c}" for c in configs.get(bundle, [])) + (", --amp" if args.amp else ""),
            "series": len(series),
            "reference grid": "x".join(map(str, report["inputs"][report["mask_modality"]]["shape"])),
            "dicom read s": round(read_s, 2),
            "first study s": round(seconds[0], 1),
            "median s (later studies)": round(statistics.median(rest), 1),
            "all s": [round(s, 1) for s in seconds],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, threads {torch.get_num_threads()}")
    cols = ["bundle", "series", "reference grid", "dicom read s", "first study s", "median s (later studies)"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
