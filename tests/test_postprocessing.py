"""Threshold + minimum lesion size and its grid search (Clèrigues et al. 2020, Sec. 3.5, Eq. 2)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from strokezoo.errors import InputError
from strokezoo.metrics.grid_search import eq2_score, grid_search
from strokezoo.transforms import LesionFilterd, filter_lesions

from conftest import strokezoo_cli


def test_filter_lesions_by_hand():
    p = np.zeros((10, 10, 10), np.float32)
    p[1:4, 1:4, 1:4] = 0.8  # 27 voxels
    p[6, 6, 6:8] = 0.9  # 2 voxels
    p[8, 1, 1] = 0.4  # below the threshold
    p[4, 4, 4] = 0.8  # touches the cube at a corner only
    p[1, 1, 4] = 0.8  # touches the cube at a face
    # default: face neighbours (6-connected, the authors' scipy.ndimage.label): the corner voxel is a lesion of its own
    m = filter_lesions(p, 0.5, 10)
    assert m.dtype == np.uint8 and m.sum() == 28 and m[1, 1, 4] == 1 and m[4, 4, 4] == 0 and m[6, 6, 6] == 0
    # full connectivity (26-connected): the corner voxel joins the cube
    m26 = filter_lesions(p, 0.5, 10, connectivity=3)
    assert m26.sum() == 29 and m26[4, 4, 4] == 1
    assert filter_lesions(p, 0.5, 29, connectivity=2).sum() == 0 and filter_lesions(p, 0.5, 29, connectivity=3).sum() == 29  # 18: edges, not corners
    assert filter_lesions(p, 0.5, 0).sum() == 31 and filter_lesions(p, 0.3, 32).sum() == 0
    with pytest.raises(ValueError, match="connectivity"):
        filter_lesions(p, 0.5, 10, connectivity=4)


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


def test_grid_search_finds_the_pair_that_removes_the_false_positives_and_writes_an_override(cv_maps, tmp_path):
    probs, ref = cv_maps
    override = tmp_path / "postprocessing.json"
    r = grid_search(probs, ref, tmp_path / "grid", override=override)
    assert r["threshold"] <= 0.6 and 50 <= r["min_size"] <= 1000  # keeps the lesion, drops the 27-voxel blobs
    assert r["dice"] == pytest.approx(1.0) and r["hd"] == 0.0 and r["score"] == pytest.approx(0.5)
    assert r["precision"] == pytest.approx(1.0) and r["recall"] == pytest.approx(1.0)
    worst = next(x for x in r["table"] if x["threshold"] == 0.7 and x["min_size"] == 10)  # only the false positives
    assert worst["dice"] == 0.0 and worst["score"] == 0.0 and worst["precision"] == 0.0 and worst["recall"] == 0.0
    assert json.loads(override.read_text()) == {"threshold": r["threshold"], "min_size": r["min_size"]}
    lines = (tmp_path / "grid" / "grid_search.csv").read_text().splitlines()
    assert lines[0] == "threshold,min_size,dice,precision,recall,hd,score" and len(lines) == 1 + 9 * 8
    grid_search(probs, ref, tmp_path / "grid2", override=override)  # an override file is replaced


def test_grid_search_never_overwrites_a_bundle_config(cv_maps, tmp_path):
    probs, ref = cv_maps
    config = tmp_path / "inference.json"
    text = json.dumps({"threshold": 0.5, "min_size": 0, "other": [1, 2]}, indent=4)
    config.write_text(text)
    with pytest.raises(InputError, match="not overwritten"):
        grid_search(probs, ref, tmp_path / "grid", override=config)
    assert config.read_text() == text


def test_pooled_table1_row_at_the_chosen_pair(cv_maps, tmp_path):
    """Table 1 of Clèrigues et al.: DSC, PPV, sensitivity and HD in voxels, mean ± SD over every case of every fold's
    cross-validation map at the grid-searched pair; PPV 0 for an empty prediction (the authors' code)."""
    from scipy.spatial.distance import cdist

    probs, ref = cv_maps
    entries = json.loads(ref.read_text())["training"]
    r = grid_search(probs, ref, tmp_path / "grid", thresholds=[0.5, 0.95], min_sizes=[10])
    assert (r["threshold"], r["min_size"]) == (0.5, 10)  # the three 27-voxel blobs stay: PPV and HD suffer
    dsc, ppv, sen, hd = [], [], [], []
    for e in entries:
        label = np.asarray(nib.load(e["label"]).dataobj) > 0
        mask = np.asarray(nib.load(probs / f"{e['case_id']}_prob.nii.gz").dataobj) > 0.5
        inter = (mask & label).sum()
        dsc.append(2 * inter / (mask.sum() + label.sum()))
        ppv.append(inter / mask.sum())
        sen.append(inter / label.sum())
        d = cdist(np.argwhere(mask), np.argwhere(label))  # HD on all voxels = HD on the surfaces, in voxels
        hd.append(max(d.min(0).max(), d.min(1).max()))
    for k, v in zip(("dice", "precision", "recall", "hd"), (dsc, ppv, sen, hd)):
        assert r["table1"][k]["mean"] == pytest.approx(np.mean(v), rel=1e-5) and r["table1"][k]["n"] == 3
        assert r["table1"][k]["sd"] == pytest.approx(np.std(v, ddof=1), rel=1e-4, abs=1e-9)
    assert len((tmp_path / "grid" / "table1.csv").read_text().splitlines()) == 4
    md = (tmp_path / "grid" / "table1.md").read_text()
    assert f"{np.mean(dsc):.2f} ± {np.std(dsc, ddof=1):.2f}" in md and "| 3 / 3 / 3 / 3 |" in md and "precision 0" in md
    # nothing predicted at T_h 0.95: PPV counts 0 (not skipped), HD has no value
    empty = grid_search(probs, ref, None, thresholds=[0.95], min_sizes=[10])
    assert empty["table1"]["precision"]["mean"] == 0.0 and empty["table1"]["precision"]["n"] == 3
    assert empty["table1"]["hd"]["n"] == 0 and empty["hd"] == 200.0  # Eq. 2 counts it as HD_max


def test_cli_reports_a_missing_map_and_still_searches(cv_maps, tmp_path):
    probs, ref = cv_maps
    (probs / "c2_prob.nii.gz").unlink()
    r = strokezoo_cli("grid-search", "--probs", probs, "--ref", ref, "--out", tmp_path / "g")
    assert r.returncode == 1 and "c2_prob.nii.gz: no probability map" in r.stderr and "over 2 cases" in r.stdout
