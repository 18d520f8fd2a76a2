"""evaluate_raters: per-modality predictions against two raters, kappa, Bland–Altman, failures."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from strokezoo.data.datalist import build_datalist
from strokezoo.metrics.agreement import kappa_level
from strokezoo.metrics.rater_study import bland_altman, evaluate_raters

from conftest import strokezoo_cli, tree_digest


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
    r = strokezoo_cli("evaluate-raters", "--pred", pred, "--ref", dl, "--out", tmp_path / "cli")
    assert r.returncode == 1 and "no dwi prediction" in r.stderr
    assert (tmp_path / "cli" / "report.md").exists()


def _t_by_hand(a, b) -> tuple[float, float]:
    """Paired t statistic and two-sided p from the formula: t = mean(d) / (sd(d, ddof 1) / sqrt(n)), df = n - 1."""
    from scipy.stats import t as student

    d = np.asarray(a) - np.asarray(b)
    t = d.mean() / (d.std(ddof=1) / np.sqrt(d.size))
    return float(t), float(2 * student.sf(abs(t), d.size - 1))


def test_paired_t_tests_against_the_raters_and_another_model(two_raters, tmp_path):
    """The paper's t-tests: the model's Dice against the inter-rater Dice, and against another model, paired by case."""
    data, dl, entries, pred = two_raters
    other = tmp_path / "other"
    other.mkdir()
    for e in entries:  # another model: R2's ADC mask for ADC, R1's DWI mask for DWI
        shutil.copy(e["label_r2_adc"], other / f"{e['case_id']}_adc.nii.gz")
        shutil.copy(e["label_r1_dwi"], other / f"{e['case_id']}_dwi.nii.gz")
    s = evaluate_raters(pred, dl, tmp_path / "out", compare={"other": str(other)})
    tests = {(t["modality"], t["rater"], t["against"]): t for t in s["t_tests"]}
    inter = [dice(mask(e["label_r1_dwi"]), mask(e["label_r2_dwi"])) for e in entries]
    model = [dice(mask(e["label_r2_dwi"]), mask(e["label_r1_dwi"])) for e in entries]  # the DWI output is R2's mask
    mine_r2 = [dice(mask(e["label_r2_dwi"]), mask(e["label_r2_dwi"])) for e in entries]
    theirs_r2 = [dice(mask(e["label_r1_dwi"]), mask(e["label_r2_dwi"])) for e in entries]
    t, p = _t_by_hand(mine_r2, theirs_r2)
    got = tests["dwi", "R2", "other"]
    assert got["n"] == len(entries) and got["t"] == pytest.approx(t) and got["p"] == pytest.approx(p)
    assert got["mean_difference"] == pytest.approx(np.mean(np.subtract(mine_r2, theirs_r2)), abs=1e-6)
    # the DWI output is R2's mask, so against R1 its Dice equals the inter-rater Dice case by case: no variation
    same = tests["dwi", "R1", "inter-rater Dice"]
    assert model == pytest.approx(inter) and same["mean_difference"] == pytest.approx(0.0) and same["t"] is None
    assert np.ptp(inter) > 0.001  # against R2 the DWI output (R2's mask) scores 1 while the raters' Dice varies
    t, p = _t_by_hand(mine_r2, inter)
    assert tests["dwi", "R2", "inter-rater Dice"]["t"] == pytest.approx(t) and tests["dwi", "R2", "inter-rater Dice"]["p"] == pytest.approx(p)
    assert "## Paired t-tests" in (tmp_path / "out" / "report.md").read_text()
    assert len((tmp_path / "out" / "t_tests.csv").read_text().splitlines()) == 1 + len(s["t_tests"]) == 1 + 2 * 2 * 2


def test_cases_annotated_by_rater_1_only_are_scored_against_it(two_raters, tmp_path):
    """The paper's design: training cases carry R1 alone, test cases both raters. A case without R2 is scored against
    R1 and left out of the inter-rater analysis, not refused."""
    data, dl, entries, pred = two_raters
    d = json.loads(dl.read_text())
    for key in ("label_r2_adc", "label_r2_dwi"):
        del d["training"][0][key]
    dl2 = tmp_path / "r1_only.json"
    dl2.write_text(json.dumps(d))
    s = evaluate_raters(pred, dl2, tmp_path / "out")
    assert not s["failures"] and s["cases"] == len(entries)
    assert s["metrics"]["adc"]["R1"]["dice"]["n"] == len(entries) and s["metrics"]["adc"]["R2"]["dice"]["n"] == len(entries) - 1
    assert s["agreement"]["kappa_adc_R1_R2"]["n"] == len(entries) - 1 and s["bland_altman"]["adc"]["R1"]["n"] == len(entries) - 1
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"| {len(entries)} / {len(entries)} / " in report and "sd ddof: 1" in report
    for key in ("label_r1_adc", "label_r1_dwi"):
        del d["training"][0][key]
    dl2.write_text(json.dumps(d))
    s = evaluate_raters(pred, dl2, tmp_path / "none", raters={"R1": "label_r1_{modality}"})
    assert [f["case_id"] for f in s["failures"]] == [entries[0]["case_id"]] and "no rater's masks" in s["failures"][0]["error"]
