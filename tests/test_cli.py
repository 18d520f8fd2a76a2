"""The ``strokezoo`` command: help texts, baseline -> evaluate against MONAI's DiceMetric, show, demo."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric, HausdorffDistanceMetric

from strokezoo.data.datalist import build_datalist
from strokezoo.errors import InputError
from strokezoo.io.nifti import load_nifti

from conftest import strokezoo_cli, tree_digest

CLI = [sys.executable, "-m", "strokezoo.cli"]

run = strokezoo_cli


def test_the_installed_command_runs_as_a_process(tmp_path):
    """The other tests call the CLI in-process; this runs the installed ``strokezoo`` executable: its help, and a
    refused input named on stderr with exit status 2."""
    exe = Path(sys.executable).with_name("strokezoo")
    r = subprocess.run([str(exe), "datalist", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "strokezoo datalist" in r.stdout + r.stderr
    r = subprocess.run(
        [str(exe), "datalist", "--root", str(tmp_path / "missing"), "--out", str(tmp_path / "x.json")], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and str(tmp_path / "missing") in r.stderr and not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("command", ["synth", "datalist", "evaluate", "evaluate-raters", "grid-search", "baseline", "show", "demo"])
def test_help_has_an_example(command):
    r = run(command, "--help")
    text = r.stdout + r.stderr
    assert "Example" in text and f"strokezoo {command}" in text


def test_baseline_then_evaluate_matches_monai(cohort, tmp_path):
    root, _ = cohort("isles2022")
    before = tree_digest(root)
    dl = tmp_path / "dl.json"
    assert run("datalist", "--root", root, "--out", dl).returncode == 0
    assert run("baseline", "--datalist", dl, "--rule", "adc", "--out", tmp_path / "pred").returncode == 0
    r = run("evaluate", "--pred", tmp_path / "pred", "--ref", dl, "--out", tmp_path / "eval")
    assert r.returncode == 0, r.stderr
    rows = {row["case_id"]: row for row in csv.DictReader((tmp_path / "eval" / "metrics.csv").open())}
    entries = json.loads(dl.read_text())["training"]
    assert set(rows) == {e["case_id"] for e in entries}
    dice_metric = DiceMetric(include_background=True, ignore_empty=False)
    for e in entries:
        ref = load_nifti(e["label"], "label")
        pred = load_nifti(tmp_path / "pred" / f"{e['case_id']}.nii.gz", "label")
        # The rule itself, recomputed independently from the ADC file.
        adc = load_nifti(e["adc"]).data
        np.testing.assert_array_equal(pred.data, ((adc > 0) & (adc < 620)).astype(np.uint8))
        p, t = torch.from_numpy(pred.data[None, None].astype(np.float32)), torch.from_numpy(ref.data[None, None].astype(np.float32))
        assert float(rows[e["case_id"]]["dice"]) == pytest.approx(float(dice_metric(p, t)), abs=1e-5)
        if pred.data.any() and ref.data.any():
            expected = float(HausdorffDistanceMetric(include_background=True, percentile=95)(p, t, spacing=ref.zooms))
            assert float(rows[e["case_id"]]["hd95"]) == pytest.approx(expected, rel=1e-4)
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    dices = [float(r["dice"]) for r in rows.values()]
    assert summary["metrics"]["dice"]["mean"] == pytest.approx(np.mean(dices), abs=1e-5)
    assert summary["metrics"]["dice"]["n"] == len(dices)
    assert (tmp_path / "eval" / "report.md").read_text().startswith("# Evaluation")
    assert tree_digest(root) == before


def test_evaluate_keeps_going_and_exits_nonzero(cohort, tmp_path):
    root, _ = cohort("apis")
    dl = tmp_path / "dl.json"
    build_datalist(root, dl)
    run("baseline", "--datalist", dl, "--rule", "adc", "--out", tmp_path / "pred")
    preds = sorted((tmp_path / "pred").iterdir())
    preds[0].unlink()  # missing prediction
    preds[1].write_bytes(b"")  # zero-byte prediction
    r = run("evaluate", "--pred", tmp_path / "pred", "--ref", dl, "--out", tmp_path / "eval")
    assert r.returncode == 1
    assert "no prediction for this case" in r.stderr and "empty file (0 bytes)" in r.stderr
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["cases"] == 1 and len(summary["failures"]) == 2


def test_evaluate_refuses_prediction_off_grid(cohort, tmp_path):
    import nibabel as nib

    root, _ = cohort("apis")
    dl = tmp_path / "dl.json"
    build_datalist(root, dl)
    run("baseline", "--datalist", dl, "--rule", "adc", "--out", tmp_path / "pred")
    p = sorted((tmp_path / "pred").iterdir())[0]
    img = nib.load(str(p))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[::2], img.affine), str(p))
    r = run("evaluate", "--pred", tmp_path / "pred", "--ref", dl, "--out", tmp_path / "eval")
    assert r.returncode == 1 and "not on the reference grid" in r.stderr


def test_show_writes_png(cohort, tmp_path):
    root, _ = cohort("isles2018")
    case = sorted((root / "TRAINING").iterdir())[0]
    r = run("show", case, "--out", tmp_path / "case.png")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "case.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_error_is_clear(tmp_path):
    r = run("datalist", "--root", tmp_path / "missing", "--out", tmp_path / "x.json")
    assert r.returncode == 2 and "missing" in r.stderr and "Traceback" not in r.stderr


def test_demo_writes_report(tmp_path):
    from strokezoo.demo import run_demo

    report = run_demo(str(tmp_path / "demo"), cases=2, scale=0.3, epochs=1)
    text = Path(report).read_text()
    assert "isles2022" in text and "isles2018" in text
    assert "| stroke_mri_crossattention_unet2d | isles2017 |" in text and "| stroke_ct_boundary_attention_unet2d | isles2018 |" in text
    assert "| stroke_dwi_crossdomain_unet2d (ADC vs R1) | isles2022 |" in text and "| stroke_dwi_crossdomain_unet2d (DWI vs R2) | isles2022 |" in text
    assert "| stroke_mri_residual_unet3d | isles2015-siss |" in text
    assert (
        "| stroke_ctp_transformer_unet2d | isles2018 |" in text and "| stroke_ctp_transformer_unet2d (Threshold: TFA ≥ 0.5, our choice) | isles2018 |" in text
    )
    assert "| stroke_ctp_pseudodwi_slnet2d | isles2018 |" in text
    assert len(list((tmp_path / "demo").glob("*.png"))) == 8  # two cohorts, six bundles
    assert (tmp_path / "demo" / "bundles" / "stroke_mri_crossattention_unet2d" / "models" / "model.pt").is_file()
    # every bundle is scored on a held-out fold: fold 0, out of the datalist its training read (fold 1 picked the
    # checkpoint), and its summary counts exactly fold 0's studies
    assert "Held-out test fold" in text
    from strokezoo.bundle_info import BUNDLES

    for bundle in BUNDLES:
        run_dir = tmp_path / "demo" / "bundles" / bundle
        full = json.loads((tmp_path / "demo" / f"{bundle}_datalist.json").read_text())["training"]
        test = {e["case_id"] for e in full if e["fold"] == 0}
        trained_on = {e["case_id"] for e in json.loads((run_dir / "train_datalist.json").read_text())["training"]}
        assert test and not test & trained_on and trained_on == {e["case_id"] for e in full} - test, bundle
        assert json.loads((run_dir / "eval" / "metrics" / "summary.json").read_text())["cases"] == len(test), bundle


def test_show_finds_bids_derivative_mask(cohort, tmp_path):
    from strokezoo.visualize import _bids_derivative_masks

    root, _ = cohort("isles2022")
    sub = sorted((root / "rawdata").iterdir())[0]
    masks = _bids_derivative_masks(sub)
    assert [m.name for m in masks] == [f"{sub.name}_ses-0001_msk.nii.gz"]
    assert run("show", sub, "--out", tmp_path / "s.png").returncode == 0


def test_evaluate_synthesized_images(cohort, tmp_path):
    """SSIM/PSNR of a 'synthesized' DWI (the acquired one plus noise) through the evaluate command."""
    from strokezoo.io.nifti import save_nifti

    root, _ = cohort("isles2022")
    dl = tmp_path / "dl.json"
    build_datalist(root, dl)
    entries = json.loads(dl.read_text())["training"]
    rng = np.random.default_rng(0)
    for e in entries:
        ref = load_nifti(e["label"], "label")
        save_nifti(ref.data, ref.affine, tmp_path / "pred" / f"{e['case_id']}.nii.gz")
        dwi = load_nifti(e["dwi"])
        noisy = dwi.data + rng.normal(0, 5.0, dwi.data.shape).astype(np.float32)
        save_nifti(noisy, dwi.affine, tmp_path / "img" / f"{e['case_id']}_pseudo_dwi.nii.gz")
    r = run("evaluate", "--pred", tmp_path / "pred", "--ref", dl, "--out", tmp_path / "eval", "--image_pred", tmp_path / "img", "--image_key", "dwi")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((tmp_path / "eval" / "metrics.csv").open()))
    for row, e in zip(rows, entries):
        assert float(row["dice"]) == 1.0  # the reference scored against itself
        dwi = load_nifti(e["dwi"]).data
        assert 0.0 < float(row["ssim"]) < 1.0
        assert float(row["psnr"]) > 10 * np.log10((dwi.max() - dwi.min()) ** 2 / 25.0) - 0.5


def test_show_draws_a_mask_per_modality(cohort, tmp_path):
    """A per-modality method's masks go on their own panels: ADC mask on ADC, DWI mask on DWI."""
    from strokezoo.visualize import show_case

    root, _ = cohort("isles2022")
    dl = tmp_path / "dl.json"
    build_datalist(root, dl, layout="isles2022", folds=2)
    e = json.loads(dl.read_text())["training"][0]
    masks = {"adc": e["label_r1_adc"], "dwi": e["label_r2_dwi"]}
    case = Path(e["adc"]).parents[2]
    out = show_case(case, tmp_path / "m.png", label=masks, pred=masks)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError):
        show_case(case, tmp_path / "bad.png", label=masks, pred={"dwi": str(tmp_path / "missing.nii.gz")})
    assert not (tmp_path / "bad.png").exists()
