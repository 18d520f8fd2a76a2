"""Threshold + minimum lesion size and its grid search (Clèrigues et al. 2020, Sec. 3.5, Eq. 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from strokezoo.metrics.grid_search import eq2_score, grid_search
from strokezoo.transforms import LesionFilterd, filter_lesions


def test_filter_lesions_by_hand():
    p = np.zeros((10, 10, 10), np.float32)
    p[1:4, 1:4, 1:4] = 0.8  # 27 voxels
    p[6, 6, 6:8] = 0.9  # 2 voxels
    p[8, 1, 1] = 0.4  # below the threshold
    p[4, 4, 4] = 0.8  # touches the cube at a corner: 26-connected, so part of it
    m = filter_lesions(p, 0.5, 10)
    assert m.dtype == np.uint8 and m.sum() == 28 and m[4, 4, 4] == 1 and m[6, 6, 6] == 0
    assert filter_lesions(p, 0.5, 0).sum() == 30 and filter_lesions(p, 0.3, 29).sum() == 0


def test_lesion_filter_transform_keeps_the_grid():
    prob = torch.zeros(2, 6, 6, 6)
    prob[1, :3, :3, :3] = 0.9
    prob[1, 5, 5, 5] = 0.9
    prob[0] = 1 - prob[1]
    x = MetaTensor(prob, affine=torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0])))
    out = LesionFilterd("pred", threshold=0.5, min_size=2)({"pred": x})["pred"]
    assert out.shape == (1, 6, 6, 6) and int(out.sum()) == 27 and torch.equal(out.affine, x.affine)


def test_eq2_score_by_hand():
    assert eq2_score(0.8, 50.0) == pytest.approx(0.8 * 0.75 / (0.8 + 0.75))
    assert eq2_score(1.0, 0.0) == 0.5 and eq2_score(0.5, 400.0) == 0.0 and eq2_score(0.0, 300.0) == 0.0


@pytest.fixture
def cv_maps(tmp_path):
    """Three cases: a 1000-voxel lesion at probability 0.65 and three 27-voxel false positives at 0.9."""
    rng = np.random.default_rng(0)
    data, probs = tmp_path / "data", tmp_path / "probs"
    data.mkdir()
    probs.mkdir()
    entries = []
    for i in range(3):
        label = np.zeros((40, 40, 30), np.uint8)
        x = 5 + i
        label[x : x + 10, 10:20, 10:20] = 1
        prob = np.where(label > 0, 0.65, 0.05).astype(np.float32) + rng.uniform(0, 0.01, label.shape).astype(np.float32)
        for c in ((30, 30, 5), (30, 5, 25), (5, 32, 25)):
            prob[c[0] : c[0] + 3, c[1] : c[1] + 3, c[2] : c[2] + 3] = 0.9
        nib.save(nib.Nifti1Image(label, np.eye(4)), data / f"c{i}_msk.nii.gz")
        nib.save(nib.Nifti1Image(prob, np.eye(4)), probs / f"c{i}_prob.nii.gz")
        entries.append({"case_id": f"c{i}", "patient_id": f"c{i}", "label": str(data / f"c{i}_msk.nii.gz"), "fold": i})
    ref = tmp_path / "datalist.json"
    ref.write_text(json.dumps({"training": entries, "testing": []}))
    return probs, ref


def test_grid_search_finds_the_pair_that_removes_the_false_positives_and_writes_the_config(cv_maps, tmp_path):
    probs, ref = cv_maps
    config = tmp_path / "inference.json"
    config.write_text(json.dumps({"threshold": 0.5, "min_size": 0, "other": [1, 2]}, indent=4))
    r = grid_search(probs, ref, tmp_path / "grid", config=config)
    assert r["threshold"] <= 0.6 and 50 <= r["min_size"] <= 1000  # keeps the lesion, drops the 27-voxel blobs
    assert r["dice"] == pytest.approx(1.0) and r["hd"] == 0.0 and r["score"] == pytest.approx(0.5)
    worst = next(x for x in r["table"] if x["threshold"] == 0.7 and x["min_size"] == 10)  # only the false positives
    assert worst["dice"] == 0.0 and worst["score"] == 0.0
    cfg = json.loads(config.read_text())
    assert (cfg["threshold"], cfg["min_size"], cfg["other"]) == (r["threshold"], r["min_size"], [1, 2])
    assert len((tmp_path / "grid" / "grid_search.csv").read_text().splitlines()) == 1 + 9 * 8


def test_cli_reports_a_missing_map_and_still_searches(cv_maps, tmp_path):
    probs, ref = cv_maps
    (probs / "c2_prob.nii.gz").unlink()
    r = subprocess.run([sys.executable, "-m", "strokezoo.cli", "grid-search", "--probs", str(probs), "--ref", str(ref), "--out", str(tmp_path / "g")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "c2_prob.nii.gz: no probability map" in r.stderr and "over 2 cases" in r.stdout
