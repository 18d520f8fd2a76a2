"""Metrics against hand-computed cases and independent brute-force computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist
from sklearn.metrics import cohen_kappa_score

from strokezoo.metrics.agreement import cohen_kappa
from strokezoo.metrics.image_quality import image_quality
from strokezoo.metrics.segmentation import lesion_wise_counts, segmentation_metrics


def _surface_points(mask, spacing):
    border = mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1))
    return np.argwhere(border) * np.asarray(spacing)


def _brute_force(pred, ref, spacing):
    d = cdist(_surface_points(pred, spacing), _surface_points(ref, spacing))
    a, b = d.min(1), d.min(0)
    return {
        "hd": max(a.max(), b.max()),
        "hd95": max(np.percentile(a, 95), np.percentile(b, 95)),
        "assd": (a.sum() + b.sum()) / (len(a) + len(b)),
    }


def test_shifted_cubes_anisotropic():
    ref = np.zeros((20, 20, 10), bool)
    ref[5:11, 5:11, 2:6] = True
    pred = np.roll(ref, 3, axis=0)
    m = segmentation_metrics(pred, ref, (2.0, 1.0, 3.0))
    assert m["dice"] == pytest.approx(2 * 3 * 6 * 4 / (2 * 6 * 6 * 4))
    assert m["hd"] == pytest.approx(6.0)  # 3 voxels x 2 mm
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5)
    assert m["volume_ref_ml"] == pytest.approx(144 * 6 / 1000)
    assert m["rve"] == pytest.approx(0.0) and m["abs_volume_diff_ml"] == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_surface_distances_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    spacing = (1.0, 1.5, 2.5)
    ref = ndimage.gaussian_filter(rng.normal(size=(24, 22, 12)), 2.0) > 0.15
    pred = ndimage.gaussian_filter(rng.normal(size=(24, 22, 12)), 2.0) > 0.1
    m = segmentation_metrics(pred, ref, spacing)
    bf = _brute_force(pred, ref, spacing)
    assert m["hd"] == pytest.approx(bf["hd"], rel=1e-5)
    assert m["hd95"] == pytest.approx(bf["hd95"], rel=0.02)
    assert m["assd"] == pytest.approx(bf["assd"], rel=1e-4)
    inter = (pred & ref).sum()
    assert m["dice"] == pytest.approx(2 * inter / (pred.sum() + ref.sum()))
    assert m["precision"] == pytest.approx(inter / pred.sum())
    assert m["recall"] == pytest.approx(inter / ref.sum())


def test_lesion_wise_f1_isles22_definition():
    ref = np.zeros((30, 30, 30), bool)
    ref[2:5, 2:5, 2:5] = True  # lesion A: hit
    ref[10:13, 10:13, 10:13] = True  # lesion B: hit, prediction spills outside it
    ref[20:23, 20:23, 20:23] = True  # lesion C: missed
    pred = np.zeros_like(ref)
    pred[3, 3, 3] = True
    pred[11:16, 11, 11] = True  # touches B and continues beyond: the remainder counts as a false positive
    pred[25:28, 2:4, 2:4] = True  # pure false positive
    tp, fp, fn, n_ref, n_pred = lesion_wise_counts(pred, ref)
    assert (tp, fp, fn, n_ref, n_pred) == (2, 2, 1, 3, 3)
    m = segmentation_metrics(pred, ref, (1, 1, 1))
    assert m["lesion_f1"] == pytest.approx(2 / (2 + (2 + 1) / 2))
    assert m["lesion_count_diff"] == 0.0


def test_26_connectivity_joins_diagonal_voxels():
    ref = np.zeros((5, 5, 5), bool)
    ref[1, 1, 1] = ref[2, 2, 2] = True  # corner-touching: one lesion under 26-connectivity
    assert lesion_wise_counts(ref, ref)[3] == 1


def test_empty_conventions():
    e = np.zeros((6, 6, 6), bool)
    full = e.copy()
    full[2:4, 2:4, 2:4] = True
    m = segmentation_metrics(e, e, (1, 1, 1))
    assert m["dice"] == 1.0 and m["lesion_f1"] == 1.0 and m["hd95"] == 0.0 and np.isnan(m["rve"])
    m = segmentation_metrics(e, full, (1, 1, 1))
    assert m["dice"] == 0.0 and np.isnan(m["precision"]) and m["recall"] == 0.0 and np.isnan(m["hd"])
    assert m["lesion_f1"] == 0.0 and m["rve"] == -1.0
    m = segmentation_metrics(full, e, (1, 1, 1))
    assert m["dice"] == 0.0 and np.isnan(m["recall"]) and m["precision"] == 0.0


def test_kappa_matches_sklearn():
    rng = np.random.default_rng(3)
    a = rng.random((10, 10, 10)) > 0.7
    b = a ^ (rng.random((10, 10, 10)) > 0.9)
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a.ravel(), b.ravel()))
    assert cohen_kappa(a, a) == 1.0


def test_image_quality_against_direct_formula():
    rng = np.random.default_rng(4)
    ref = ndimage.gaussian_filter(rng.random((24, 24, 16)), 2).astype(np.float32)
    pred = ref + rng.normal(0, 0.01, ref.shape).astype(np.float32)
    lesion = np.zeros(ref.shape, bool)
    lesion[10:13, 10:13, 7:9] = True
    q = image_quality(pred, ref, lesion, (1, 1, 1), margin_mm=3)
    rng_ = ref.max() - ref.min()
    assert q["psnr"] == pytest.approx(10 * np.log10(rng_**2 / np.mean((pred - ref) ** 2)), rel=1e-4)
    box = (slice(7, 16), slice(7, 16), slice(4, 12))
    assert q["psnr_lesion"] == pytest.approx(10 * np.log10(rng_**2 / np.mean((pred[box] - ref[box]) ** 2)), rel=1e-4)
    assert 0.0 < q["ssim"] < 1.0
    same = image_quality(ref, ref, lesion, (1, 1, 1))
    assert same["ssim"] == pytest.approx(1.0, abs=1e-5) and same["ssim_lesion"] == pytest.approx(1.0, abs=1e-5)
    assert np.isnan(image_quality(pred, ref, np.zeros_like(lesion), (1, 1, 1))["ssim_lesion"])
