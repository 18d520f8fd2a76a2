"""synth -> datalist round trip for every release layout; patient folds; bad cases; the root stays untouched."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from strokezoo.data.datalist import build_datalist
from strokezoo.data.layouts import LAYOUTS, detect_layout
from strokezoo.errors import InputError

from conftest import ALL_LAYOUTS, tree_digest


@pytest.mark.parametrize("layout", ALL_LAYOUTS)
def test_round_trip(cohort, tmp_path, layout):
    root, summary = cohort(layout)
    before = tree_digest(root)
    assert detect_layout(root) == layout
    d = build_datalist(root, tmp_path / "dl.json", layout="auto", folds=2)
    assert d["layout"] == layout and d["failures"] == []
    entries = d["training"] + d["testing"]
    assert sorted(e["case_id"] for e in entries) == sorted(r["case_id"] for r in summary["rows"])
    for e in entries:
        for key in LAYOUTS[layout].required:
            assert Path(e[key]).is_file(), (key, e)
    for e in d["training"]:
        assert Path(e["label"]).is_file() and e["fold"] in (0, 1)
    assert all("label" not in e for e in d["testing"])
    on_disk = json.loads((tmp_path / "dl.json").read_text())
    assert on_disk == d
    assert tree_digest(root) == before


def test_folds_are_patient_level_and_slabs_grouped(tmp_path):
    from strokezoo.synth import synthesize_cohort

    s = synthesize_cohort("isles2018", tmp_path / "d", cases=6, seed=3, scale=0.2, workers=1, test_fraction=0.0)
    truth = {r["case_id"]: r["patient_id"] for r in s["rows"]}
    assert len(truth) > 6, "seed 3 should give at least one two-slab patient"
    d = build_datalist(tmp_path / "d", tmp_path / "dl.json", layout="isles2018", folds=3)
    found = {e["case_id"]: e["patient_id"] for e in d["training"]}
    # The datalist's grouping (from geometry alone) equals the generator's truth.
    groups_truth = sorted(sorted(c for c in truth if truth[c] == p) for p in set(truth.values()))
    groups_found = sorted(sorted(c for c in found if found[c] == p) for p in set(found.values()))
    assert groups_found == groups_truth
    fold = {}
    for e in d["training"]:
        assert fold.setdefault(e["patient_id"], e["fold"]) == e["fold"]
    sizes = np.bincount(list(fold.values()), minlength=3)
    assert sizes.max() - sizes.min() <= 1


def test_isles2022_without_rawdata_level(cohort, tmp_path):
    root, _ = cohort("isles2022")
    flat = tmp_path / "flat"
    shutil.copytree(root / "rawdata", flat)
    shutil.copytree(root / "derivatives", flat / "derivatives")
    d = build_datalist(flat, tmp_path / "dl.json")
    assert d["layout"] == "isles2022" and len(d["training"]) == 3
    assert {"label_r1_adc", "label_r2_dwi"} <= set(d["training"][0])


def test_isles2024_scaled_mask_and_apis_second_rater(cohort, tmp_path):
    d = build_datalist(cohort("isles2024")[0], tmp_path / "a.json")
    assert len(d["training"]) == 3 and not d["failures"]
    d = build_datalist(cohort("apis")[0], tmp_path / "b.json")
    assert all("label_r2" in e for e in d["training"])


def _copy(root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(root, dst)
    return dst


def test_bad_cases_reported_good_ones_kept(cohort, tmp_path):
    root = _copy(cohort("isles2018")[0], tmp_path)
    cases = sorted((root / "TRAINING").iterdir())
    # case A: truncated CBF; case B: Tmax map removed.
    cbf = next(cases[0].rglob("*CT_CBF*.nii"))
    cbf.write_bytes(cbf.read_bytes()[:400])
    shutil.rmtree(next(p for p in cases[1].iterdir() if "CT_Tmax" in p.name))
    before = tree_digest(root)
    out = tmp_path / "dl.json"
    d = build_datalist(root, out, layout="isles2018")
    errors = {f["case_id"]: f["error"] for f in d["failures"]}
    assert str(cbf) in errors[f"case_{cases[0].name.split('_')[1]}"]
    assert "modality 'tmax' is missing" in errors[f"case_{cases[1].name.split('_')[1]}"]
    assert len(d["training"]) + len(d["testing"]) == len(list((root / "TRAINING").iterdir())) + len(list((root / "TESTING").iterdir())) - 2
    assert tree_digest(root) == before
    # The command line exits non-zero and names the files.
    r = subprocess.run(
        [sys.executable, "-m", "strokezoo.cli", "datalist", "--root", str(root), "--out", str(tmp_path / "c.json")], capture_output=True, text=True
    )
    assert r.returncode == 1 and str(cbf) in r.stderr


def test_mismatched_grid_and_nan(cohort, tmp_path):
    root = _copy(cohort("apis")[0], tmp_path)
    adc = next(root.rglob("train_001_adc.nii.gz"))
    img = nib.load(str(adc))
    shifted = img.affine.copy()
    shifted[0, 3] += 5.0
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), shifted), str(adc))
    ncct = next(root.rglob("train_002_ncct.nii.gz"))
    data = np.asarray(nib.load(str(ncct)).dataobj).astype(np.float32)
    data[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data, nib.load(str(ncct)).affine), str(ncct))
    d = build_datalist(root, tmp_path / "dl.json")
    errors = {f["case_id"]: f["error"] for f in d["failures"]}
    assert "affine differs" in errors["train_001"] and str(adc) in errors["train_001"]
    assert "NaN or Inf" in errors["train_002"]
    assert [e["case_id"] for e in d["training"]] == ["train_003"]


def test_output_inside_root_refused(cohort):
    root, _ = cohort("isles2017")
    before = tree_digest(root)
    with pytest.raises(InputError, match="inside the dataset root"):
        build_datalist(root, root / "datalist.json")
    assert tree_digest(root) == before


def test_relative_paths_resolve_with_monai(cohort, tmp_path):
    from monai.data import load_decathlon_datalist

    root, _ = cohort("isles2015-siss")
    build_datalist(root, tmp_path / "dl.json", relative=True)
    items = load_decathlon_datalist(tmp_path / "dl.json", data_list_key="training", base_dir=root)
    assert all(Path(i["flair"]).is_file() and Path(i["label"]).is_file() for i in items)


def test_patients_override_and_listing_without_checks(cohort, tmp_path):
    root, summary = cohort("apis")
    ids = [r["case_id"] for r in summary["rows"]]
    csv = tmp_path / "patients.csv"
    csv.write_text(f"{ids[0]},P1\n{ids[1]},P1\n")
    d = build_datalist(root, tmp_path / "dl.json", folds=2, patients=csv, check=False)
    by_case = {e["case_id"]: e for e in d["training"]}
    assert by_case[ids[0]]["patient_id"] == by_case[ids[1]]["patient_id"] == "P1"
    assert by_case[ids[0]]["fold"] == by_case[ids[1]]["fold"]
    assert by_case[ids[2]]["patient_id"] == ids[2]


def test_modality_of_every_layout(cohort):
    from strokezoo.data.layouts import modality_of

    root, _ = cohort("isles2024")
    kinds = {p.name: modality_of(p) for p in root.rglob("*.nii.gz")}
    assert all(v is None for k, v in kinds.items() if "cow-msk" in k)
    assert {v for k, v in kinds.items() if "lesion-msk" in k} == {"label"}
    assert {"ncct", "cta", "ctp", "tmax", "mtt", "cbf", "cbv"} <= set(kinds.values())


def test_select_entries_and_ensure_datalist(cohort, tmp_path):
    from strokezoo.data.datalist import ensure_datalist, select_entries

    root, _ = cohort("isles2017")
    dl = tmp_path / "dl.json"
    assert ensure_datalist(root, dl, "isles2017", 2) == str(dl) and dl.is_file()  # built on first use
    entries = json.loads(dl.read_text())["training"]
    val = select_entries(dl, "training", folds=[0])
    train = select_entries(dl, "training", exclude_folds=[0])
    assert sorted(e["case_id"] for e in val + train) == sorted(e["case_id"] for e in entries)
    assert all(e["fold"] == 0 for e in val) and all(e["fold"] != 0 for e in train)
    assert all(Path(e["label"]).is_absolute() for e in val)
    with pytest.raises(InputError, match="no 'training' entry is left"):
        select_entries(dl, "training", folds=[7])
    other, _ = cohort("isles2022")
    before = dl.read_bytes()
    with pytest.raises(InputError, match="was built for dataset root"):
        ensure_datalist(other, dl, "isles2022")
    assert dl.read_bytes() == before  # refused, not overwritten


def test_hold_out_patients_keeps_a_patient_whole_and_on_one_side():
    from strokezoo.data.datalist import hold_out_patients

    entries = [{"case_id": f"c{i}", "patient_id": f"p{i // 2}"} for i in range(10)]  # 5 patients, two slabs each
    kept, held = hold_out_patients(entries, 0.2, seed=3)
    assert len(held) == 2 and len(kept) == 8
    assert {e["patient_id"] for e in held}.isdisjoint({e["patient_id"] for e in kept})
    assert hold_out_patients(entries, 0.2, seed=3) == (kept, held)  # reproducible
    assert len(hold_out_patients(entries, 0.0)[1]) == 2 and len(hold_out_patients(entries, 1.0)[0]) == 2
    with pytest.raises(ValueError, match="cannot hold any out"):
        hold_out_patients(entries[:2], 0.5)


def test_a_case_with_rater_masks_only_is_labelled(cohort, tmp_path):
    """Gómez et al.'s design (MICCAI 2023): training studies annotated by R1 alone, no consensus mask. A case with a
    rater's masks but no ``_msk`` is a labelled training case; a case without any mask is a testing case."""
    root, _ = cohort("isles2022")
    data = tmp_path / "data"
    shutil.copytree(root, data)
    subjects = sorted((data / "derivatives").iterdir())
    for p in subjects[0].rglob("*_msk.nii.gz"):
        if "_rater-" not in p.name or "_rater-R2" in p.name:
            p.unlink()  # case 0: R1's ADC and DWI masks only
    for p in subjects[1].rglob("*.nii.gz"):
        p.unlink()  # case 1: no mask at all
    d = build_datalist(data, tmp_path / "dl.json", layout="isles2022", folds=2)
    training = {e["case_id"]: e for e in d["training"]}
    assert len(training) == 2 and len(d["testing"]) == 1 and not d["failures"]
    r1_only = next(e for e in training.values() if "label" not in e)
    assert {k for k in r1_only if k.startswith("label")} == {"label_r1_adc", "label_r1_dwi"} and "fold" in r1_only
    assert all(not k.startswith("label") for k in d["testing"][0])
