"""The synthetic cohort: determinism, release dtypes and shapes, and the physiology it promises."""

from __future__ import annotations

import hashlib
import json

import nibabel as nib
import numpy as np
import pytest

from strokezoo.synth import synthesize_cohort
from strokezoo.synth.anatomy import Grid
from strokezoo.synth.contrasts import diffusion, perfusion_series
from strokezoo.synth.lesions import territory_of
from strokezoo.synth.subject import random_subject, render_scene


def _digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.nii*"))}


def test_deterministic_whatever_the_workers(tmp_path):
    a = synthesize_cohort("apis", tmp_path / "a", cases=2, seed=5, scale=0.25, workers=1)
    b = synthesize_cohort("apis", tmp_path / "b", cases=2, seed=5, scale=0.25, workers=2)
    synthesize_cohort("apis", tmp_path / "c", cases=2, seed=6, scale=0.25, workers=1)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert a["rows"] == b["rows"]


def test_isles2018_release_dtypes_and_frames(cohort):
    root, _ = cohort("isles2018")
    case = sorted((root / "TRAINING").iterdir())[0]
    dtypes = {p.name.split(".")[4]: nib.load(str(p)).get_data_dtype() for p in case.rglob("*.nii")}
    assert dtypes == {
        "CT": np.int32,
        "CT_4DPWI": np.int16,
        "CT_CBF": np.uint16,
        "CT_CBV": np.uint16,
        "CT_MTT": np.float64,
        "CT_Tmax": np.float64,
        "MR_DWI": np.int16,
        "OT": np.uint8,
    }
    ctp = nib.load(str(next(case.rglob("*CT_4DPWI*.nii"))))
    assert ctp.ndim == 4 and 28 <= ctp.shape[3] <= 64 and 1.0 <= ctp.header.get_zooms()[3] <= 2.0
    assert 2 <= ctp.shape[2] <= 22 and ctp.shape[0] == ctp.shape[1]
    assert not any((root / "TESTING").rglob("*.OT.*")) and not any((root / "TESTING").rglob("*.MR_DWI.*"))
    dwi = nib.load(str(next(case.rglob("*MR_DWI*.nii"))))
    assert dwi.shape == ctp.shape[:3] and np.allclose(dwi.affine, ctp.affine)


def test_isles2017_some_4dpwi_are_5d(cohort):
    root, _ = cohort("isles2017")
    ndims = {nib.load(str(p)).ndim for p in root.rglob("*4DPWI*.nii")}
    assert ndims == {4, 5}


@pytest.fixture(scope="module")
def scene_and_subject():
    """A subject with a sizeable lesion on a 2 mm grid."""
    for seed in range(50):
        subject = random_subject(np.random.default_rng(seed))
        if subject.lesions and subject.lesions[0].radii.prod() ** (1 / 3) > 15:
            scene = render_scene(subject, Grid.centred((90, 108, 40), (2.0, 2.0, 4.0), (0.0, 10.0, 15.0)))
            if (scene.core > 0.5).sum() > 200 and (scene.penumbra > 0.5).sum() > 200:
                return scene, subject
    raise AssertionError("no subject with a large lesion in 50 seeds")


def test_true_physiology_ranges(scene_and_subject):
    scene, subject = scene_and_subject
    pure_gm = scene.tissue["gm"] > 0.9
    pure_wm = scene.tissue["wm"] > 0.9
    normal = (scene.core == 0) & (scene.penumbra == 0)
    assert 50 <= np.median(scene.cbf[pure_gm & normal]) <= 70
    assert 20 <= np.median(scene.cbf[pure_wm & normal]) <= 30
    core = scene.core > 0.99
    contra = np.median(scene.cbf[pure_gm & normal])
    assert np.median(scene.cbf[core & pure_gm]) < 0.3 * contra
    assert np.median(scene.cbv[core & pure_gm]) < np.median(scene.cbv[pure_gm & normal])
    pen = (scene.penumbra > 0.99) & pure_gm
    assert np.median(scene.cbv[pen]) >= 0.9 * np.median(scene.cbv[pure_gm & normal])
    assert np.all(scene.delay[pen] > 6.0)


def test_measured_maps_and_adc(scene_and_subject):
    """Maps computed back from the simulated 4D CTP by deconvolution, and the ADC from two noisy images."""
    scene, subject = scene_and_subject
    rng = np.random.default_rng(0)
    study = perfusion_series(scene, subject, rng, "ct", 40, 1.5)
    gm = (scene.tissue["gm"] > 0.8) & (scene.core == 0) & (scene.penumbra == 0)
    core = (scene.core > 0.99) & (scene.parenchyma > 0.9)
    pen = (scene.penumbra > 0.99) & (scene.parenchyma > 0.9)
    # Noise puts a floor under SVD flow, so the measured core/normal ratio exceeds the true one (< 0.3).
    assert np.median(study.cbf[core]) < 0.7 * np.median(study.cbf[gm])
    assert np.median(study.cbv[core]) < 0.8 * np.median(study.cbv[gm])
    assert np.median(study.tmax[pen]) > 6.0 > np.median(study.tmax[gm])
    np.testing.assert_allclose(study.mtt[gm], 60 * study.cbv[gm] / study.cbf[gm], rtol=1e-4)
    assert study.series.shape == (*scene.grid.shape, 40)
    _, dwi, adc = diffusion(scene, subject, "acute", rng)
    assert 740 <= np.median(adc[(scene.tissue["gm"] > 0.9) & (scene.core == 0)]) <= 880
    assert np.median(adc[core]) < 620
    assert np.median(dwi[core]) > 1.2 * np.median(dwi[gm])


def test_lesions_in_one_territory_and_hemisphere(scene_and_subject):
    scene, subject = scene_and_subject
    les = subject.lesions[0]
    pts = scene.mni[(scene.core > 0.99)]
    codes = territory_of(pts, les.hemisphere)
    assert np.mean(codes > 0) > 0.9  # lesion voxels lie in the affected hemisphere's territories


def test_lesion_model_statistics():
    """0-3 lesions, about 10 % of cases healthy, planned volumes from < 1 mL to > 100 mL, one hemisphere mostly."""
    from strokezoo.synth.lesions import random_lesions

    rng = np.random.default_rng(0)
    draws = [random_lesions(rng) for _ in range(400)]
    counts = np.array([len(d) for d in draws])
    assert set(counts) == {0, 1, 2, 3}
    assert 0.05 < np.mean(counts == 0) < 0.15
    volumes = np.array([4 / 3 * np.pi * np.prod(les.radii, 1).sum() / 1000 for d in draws for les in d])
    assert volumes.min() < 1.0 and volumes.max() > 100.0
    multi = [d for d in draws if len(d) > 1]
    same_side = np.mean([len({les.hemisphere for les in d}) == 1 for d in multi])
    assert same_side > 0.6


def test_cohort_statistics(tmp_path):
    """Rendered volumes span small to large lesions and raters agree like real radiologists (kappa 0.65-0.70)."""
    s = synthesize_cohort("isles2022", tmp_path, cases=12, seed=11, scale=0.6, workers=2)
    vols = [r["lesion_ml"] for r in s["rows"]]
    assert min(vols) < 2.0 and max(vols) > 10.0
    kappas = [r[k] for r in s["rows"] for k in ("kappa_adc", "kappa_dwi") if r["lesion_ml"] > 0]
    assert 0.5 < np.mean(kappas) < 0.85
    assert json.loads((tmp_path / "synth_summary.json").read_text())["rows"] == s["rows"]


def test_difficulty_lowers_the_threshold_rule(tmp_path):
    """The difficulty knob works: the ADC rule scores better on an easy cohort than on a hard one."""
    from strokezoo.baselines import predict_datalist
    from strokezoo.data.datalist import build_datalist
    from strokezoo.metrics.evaluate import evaluate

    dice = {}
    for d in (0.0, 1.0):
        root = tmp_path / f"d{d}"
        synthesize_cohort("isles2022", root / "data", cases=4, seed=2, scale=0.6, difficulty=d, workers=2)
        build_datalist(root / "data", root / "dl.json", folds=2)
        predict_datalist(str(root / "dl.json"), "adc", str(root / "pred"))
        dice[d] = evaluate(root / "pred", root / "dl.json", root / "eval")["metrics"]["dice"]["mean"]
    assert dice[0.0] > dice[1.0] + 0.1
