"""evaluate_raters: per-modality predictions against two raters, kappa, Bland–Altman, failures."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from strokezoo.data.datalist import build_datalist
from strokezoo.metrics.agreement import kappa_level
from strokezoo.metrics.rater_study import bland_altman, evaluate_raters

from conftest import tree_digest


def dice(a, b) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return 1.0 if not (a.any() or b.any()) else 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def mask(path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj) > 0


@pytest.fixture
def two_raters(tmp_path, cohort):
    """A 3-case two-rater cohort; predictions: the ADC output is rater 1's ADC mask, the DWI output rater 2's."""
    data, _ = cohort("isles2022")
    dl = tmp_path / "datalist.json"
    build_datalist(data, dl, layout="isles2022", folds=2)
    entries = json.loads(dl.read_text())["training"]
    pred = tmp_path / "pred"
    pred.mkdir()
    for e in entries:
        shutil.copy(e["label_r1_adc"], pred / f"{e['case_id']}_adc.nii.gz")
        shutil.copy(e["label_r2_dwi"], pred / f"{e['case_id']}_dwi.nii.gz")
    return data, dl, entries, pred


def test_scores_kappa_and_bland_altman_against_independent_computations(two_raters, tmp_path):
    data, dl, entries, pred = two_raters
    digest = tree_digest(data)
    s = evaluate_raters(pred, dl, tmp_path / "out")
    assert tree_digest(data) == digest and s["cases"] == len(entries) and not s["failures"]
    adc_r1 = [dice(mask(e["label_r1_adc"]), mask(e["label_r1_adc"])) for e in entries]
    adc_r2 = [dice(mask(e["label_r1_adc"]), mask(e["label_r2_adc"])) for e in entries]
    dwi_r1 = [dice(mask(e["label_r2_dwi"]), mask(e["label_r1_dwi"])) for e in entries]
    assert s["metrics"]["adc"]["R1"]["dice"]["mean"] == pytest.approx(np.mean(adc_r1)) == pytest.approx(1.0)
    assert s["metrics"]["adc"]["R2"]["dice"]["mean"] == pytest.approx(np.mean(adc_r2), abs=1e-6)
    assert s["metrics"]["dwi"]["R1"]["dice"]["mean"] == pytest.approx(np.mean(dwi_r1), abs=1e-6)
    assert s["metrics"]["dwi"]["R2"]["precision"]["mean"] == pytest.approx(1.0)

    kappa_dwi = [cohen_kappa_score(mask(e["label_r1_dwi"]).ravel(), mask(e["label_r2_dwi"]).ravel()) for e in entries]
    kappa_r2 = [cohen_kappa_score(mask(e["label_r2_adc"]).ravel(), mask(e["label_r2_dwi"]).ravel()) for e in entries]
    assert s["agreement"]["kappa_dwi_R1_R2"]["mean"] == pytest.approx(np.mean(kappa_dwi), abs=1e-6)
    assert s["agreement"]["kappa_R2_adc_dwi"]["mean"] == pytest.approx(np.mean(kappa_r2), abs=1e-6)
    levels = s["kappa_levels"]["kappa_dwi_R1_R2"]
    assert sum(levels.values()) == len(entries) and levels[kappa_level(kappa_dwi[0])] >= 1

    # Bland–Altman of the ADC output against R1: the model is R1 itself, so each difference is 1 - Dice(R1, R2)
    ba = s["bland_altman"]["adc"]["R1"]
    diffs = [1.0 - d for d in adc_r2]
    assert ba["bias"] == pytest.approx(np.mean(diffs), abs=1e-6)
    assert ba["loa_high"] - ba["loa_low"] == pytest.approx(2 * 1.96 * np.std(diffs, ddof=1), abs=1e-6)
    out = tmp_path / "out"
    rows = (out / "bland_altman.csv").read_text().splitlines()
    assert rows[0] == "case_id,modality,rater,dice_model,dice_raters,mean,difference" and len(rows) == 1 + 4 * len(entries)
    assert (out / "bland_altman.png").stat().st_size > 1000
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 4 * len(entries)
    assert "| ADC | R2 |" in (out / "report.md").read_text()


def test_bland_altman_by_hand():
    s = bland_altman([0.5, 0.7, float("nan"), 0.9], [0.4, 0.8, 0.5, 0.6])
    d = np.array([0.1, -0.1, 0.3])
    assert s["n"] == 3 and s["bias"] == pytest.approx(d.mean())
    assert s["loa_low"] == pytest.approx(d.mean() - 1.96 * d.std(ddof=1))


def test_one_mask_per_case_and_a_missing_prediction_is_reported_after_the_others(two_raters, tmp_path):
    data, dl, entries, pred = two_raters
    (pred / f"{entries[0]['case_id']}_dwi.nii.gz").unlink()
    s = evaluate_raters(pred, dl, tmp_path / "one", raters={"R1": "label"})
    assert s["cases"] == len(entries) - 1 and len(s["failures"]) == 1
    assert s["failures"][0]["case_id"] == entries[0]["case_id"]
    assert "_dwi.nii.gz" in s["failures"][0]["error"]
    assert not (tmp_path / "one" / "agreement.csv").exists() and not s["bland_altman"]
    r = subprocess.run([sys.executable, "-m", "strokezoo.cli", "evaluate-raters", "--pred", str(pred), "--ref", str(dl),
                        "--out", str(tmp_path / "cli")], capture_output=True, text=True)
    assert r.returncode == 1 and "no dwi prediction" in r.stderr
    assert (tmp_path / "cli" / "report.md").exists()
