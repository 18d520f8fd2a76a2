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


def _components_26(mask: np.ndarray) -> list[set]:
    """26-connected components of ``mask`` as sets of voxel tuples, by breadth-first search (no scipy)."""
    left = {tuple(int(i) for i in v) for v in np.argwhere(mask)}
    steps = [(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1) if (a, b, c) != (0, 0, 0)]
    comps = []
    while left:
        seed = left.pop()
        comp, todo = {seed}, [seed]
        while todo:
            x, y, z = todo.pop()
            for a, b, c in steps:
                v = (x + a, y + b, z + c)
                if v in left:
                    left.remove(v)
                    comp.add(v)
                    todo.append(v)
        comps.append(comp)
    return comps


def _isles22_f1(pred: np.ndarray, ref: np.ndarray) -> tuple[int, int, int, float]:
    """The challenge's stated definition, written out: a reference component overlapped by any predicted voxel is a
    TP, one not overlapped a FN, a predicted component overlapping no reference voxel a FP; F1 = TP/(TP+(FP+FN)/2)."""
    ref_voxels = {tuple(int(i) for i in v) for v in np.argwhere(ref)}
    pred_voxels = {tuple(int(i) for i in v) for v in np.argwhere(pred)}
    tp = sum(bool(c & pred_voxels) for c in _components_26(ref))
    fn = len(_components_26(ref)) - tp
    fp = sum(not (c & ref_voxels) for c in _components_26(pred))
    return tp, fp, fn, (1.0 if tp + fp + fn == 0 else tp / (tp + (fp + fn) / 2))


def _lesion_cases() -> dict[str, tuple[np.ndarray, np.ndarray, tuple[int, int, int]]]:
    """Named (pred, ref, expected (TP, FP, FN)) cases of the ISLES'22 definition's corners."""
    cases = {}
    ref = np.zeros((24, 24, 12), bool)
    ref[4:8, 4:8, 3:6] = True
    pred = np.zeros_like(ref)
    pred[5:12, 5:7, 4] = True  # found the lesion and spills past it: still one TP, no FP
    cases["spill past a hit lesion"] = (pred, ref, (1, 0, 0))
    ref = np.zeros((24, 24, 12), bool)
    ref[2:5, 2:5, 2:5] = ref[10:13, 2:5, 2:5] = True
    pred = np.zeros_like(ref)
    pred[3:12, 3, 3] = True  # one component bridging both lesions: two TPs
    cases["one prediction bridging two lesions"] = (pred, ref, (2, 0, 0))
    ref = np.zeros((24, 24, 12), bool)
    ref[2:14, 2:14, 2:8] = True
    pred = np.zeros_like(ref)
    pred[3:5, 3:5, 3:5] = pred[10:12, 10:12, 5:7] = True  # two predictions inside one lesion: one TP
    cases["two predictions inside one lesion"] = (pred, ref, (1, 0, 0))
    ref = np.zeros((24, 24, 12), bool)
    ref[2:5, 2:5, 2:5] = True
    ref[5:8, 5:8, 5:8] = True  # touches the first only at a corner: one lesion under 26-connectivity
    ref[15:18, 15:18, 2:4] = True  # missed
    pred = np.zeros_like(ref)
    pred[6, 6, 6] = True
    pred[20:23, 2:4, 8:10] = True  # overlaps nothing: FP
    pred[10, 10, 10] = pred[11, 11, 11] = True  # corner-touching pair: one FP component
    cases["lesions touching only at a corner"] = (pred, ref, (1, 2, 1))
    ref = np.zeros((24, 24, 12), bool)
    ref[2:5, 2:5, 2:5] = True  # hit, with a spill
    ref[10:13, 10:13, 6:9] = True  # hit
    ref[18:21, 18:21, 2:5] = True  # missed
    pred = np.zeros_like(ref)
    pred[3, 3, 3] = True
    pred[11:16, 11, 7] = True
    pred[20:23, 2:4, 8:10] = True  # FP
    cases["the former test's case (official code: F1 2/3)"] = (pred, ref, (2, 1, 1))
    return cases


@pytest.mark.parametrize("name", list(_lesion_cases()))
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.9, 0.9, 6.5)], ids=["isotropic", "anisotropic"])
def test_lesion_wise_f1_follows_the_isles22_definition(name, spacing):
    """ISLES'22's official evaluation (and ISLES'24's, which keeps its definitions): FP = a predicted component that
    overlaps no reference voxel, so spilling past a found lesion costs nothing. Components are counted on the voxel
    grid, so spacing changes nothing."""
    pred, ref, expected = _lesion_cases()[name]
    tp, fp, fn, f1 = _isles22_f1(pred, ref)
    assert (tp, fp, fn) == expected
    got = lesion_wise_counts(pred, ref)
    assert got[:3] == expected
    assert got[3:] == (len(_components_26(ref)), len(_components_26(pred)))
    m = segmentation_metrics(pred, ref, spacing)
    assert m["lesion_f1"] == pytest.approx(f1)
    assert m["lesion_count_diff"] == abs(len(_components_26(pred)) - len(_components_26(ref)))


def test_lesion_wise_f1_of_a_dilated_self_is_one():
    """A lesion map scored against itself grown by one voxel: every lesion found, nothing else predicted."""
    rng = np.random.default_rng(5)
    ref = ndimage.gaussian_filter(rng.normal(size=(30, 30, 14)), 1.5) > 0.35
    pred = ndimage.binary_dilation(ref, structure=np.ones((3, 3, 3), bool))
    assert ndimage.label(ref, np.ones((3, 3, 3)))[1] > 3
    assert segmentation_metrics(pred, ref, (1.0, 1.0, 3.0))["lesion_f1"] == pytest.approx(_isles22_f1(pred, ref)[3]) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_lesion_wise_counts_match_the_definition_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    ref = ndimage.gaussian_filter(rng.normal(size=(20, 20, 10)), 1.2) > 0.4
    pred = ndimage.gaussian_filter(rng.normal(size=(20, 20, 10)), 1.2) > 0.4
    tp, fp, fn, f1 = _isles22_f1(pred, ref)
    assert lesion_wise_counts(pred, ref)[:3] == (tp, fp, fn)
    assert segmentation_metrics(pred, ref, (1, 1, 1))["lesion_f1"] == pytest.approx(f1)


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


def test_empty_precision_is_a_declared_convention():
    """0/0 precision (nothing predicted, a lesion in the reference): NaN and skipped by default, 0 when the paper's
    code counts it so (Clèrigues et al.); every other metric is the same under both."""
    e = np.zeros((8, 8, 8), bool)
    ref = e.copy()
    ref[2:5, 2:5, 2:5] = True
    nan, zero = segmentation_metrics(e, ref, (1, 1, 1)), segmentation_metrics(e, ref, (1, 1, 1), empty_precision="zero")
    assert np.isnan(nan["precision"]) and zero["precision"] == 0.0
    assert {k: v for k, v in nan.items() if k != "precision"} == pytest.approx({k: v for k, v in zero.items() if k != "precision"}, nan_ok=True)
    both_empty = segmentation_metrics(e, e, (1, 1, 1), empty_precision="zero")
    assert both_empty["precision"] == 1.0  # both empty: a perfect answer, under either convention
    with pytest.raises(ValueError, match="empty_precision"):
        segmentation_metrics(e, ref, (1, 1, 1), empty_precision="one")


def test_hd_in_voxels_and_absolute_rve():
    ref = np.zeros((20, 20, 10), bool)
    ref[5:11, 5:11, 2:6] = True
    pred = np.roll(ref, 3, axis=0)
    pred[5:11, 5:11, 6] = True  # one more slice of 36 voxels at 3 mm
    m = segmentation_metrics(pred, ref, (2.0, 1.0, 3.0), hd_voxels=True)
    bf_mm, bf_vox = _brute_force(pred, ref, (2.0, 1.0, 3.0)), _brute_force(pred, ref, (1.0, 1.0, 1.0))
    assert m["hd"] == pytest.approx(bf_mm["hd"]) and m["hd_voxels"] == pytest.approx(bf_vox["hd"])
    assert m["hd_voxels"] != pytest.approx(m["hd"])
    assert m["rve"] == pytest.approx(36 / 144) and m["abs_rve"] == pytest.approx(36 / 144)
    under = segmentation_metrics(ref & ~pred, ref, (1, 1, 1))
    assert under["rve"] < 0 and under["abs_rve"] == pytest.approx(-under["rve"])
    assert "hd_voxels" not in segmentation_metrics(pred, ref, (1, 1, 1))


def _ssim_2d_by_hand(x: np.ndarray, y: np.ndarray, data_range: float, win: int = 7, sigma: float = 1.5) -> float:
    """Wang et al. 2004's SSIM on one 2D image pair, Gaussian window, 'valid' positions only, written out."""
    from scipy.signal import correlate2d

    g = np.exp(-((np.arange(win) - (win - 1) / 2) ** 2) / (2 * sigma**2))
    k = np.outer(g / g.sum(), g / g.sum())
    f = lambda a: correlate2d(a, k, mode="valid")  # noqa: E731
    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return float(np.mean((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))))


def test_ssim_is_2d_per_axial_slice_and_psnr_uses_the_fixed_range():
    """Wang et al. (MedIA 2020) work on 2D slices of 2-22-slice slabs: SSIM is 2D per axial slice (7x7 window),
    averaged; PSNR and SSIM use the scaled image's fixed range (1), not the unclipped reference's max - min."""
    rng = np.random.default_rng(6)
    ref = ndimage.gaussian_filter(rng.random((32, 30, 2)), (2, 2, 0)).astype(np.float64)
    ref = (ref - ref.min()) / (np.percentile(ref, 99) - ref.min())  # scaled to (0, 1) by min and p99, unclipped
    ref[3, 3, 0] = 4.0  # one bright voxel far above the 99th percentile
    pred = ref + rng.normal(0, 0.05, ref.shape)
    lesion = np.zeros(ref.shape, bool)
    lesion[14:18, 14:18, 1] = True
    q = image_quality(pred.astype(np.float32), ref.astype(np.float32), lesion, (1, 1, 9), margin_mm=4, data_range=1.0)
    by_hand = np.mean([_ssim_2d_by_hand(pred[..., z], ref[..., z], 1.0) for z in range(2)])
    assert q["ssim"] == pytest.approx(by_hand, abs=1e-4)
    assert q["psnr"] == pytest.approx(10 * np.log10(1.0 / np.mean((pred - ref) ** 2)), abs=1e-3)
    box = (slice(10, 22), slice(10, 22), slice(0, 2))  # 4 mm in-plane, the 9 mm slab spacing keeps both slices
    by_hand = np.mean([_ssim_2d_by_hand(pred[box][..., z], ref[box][..., z], 1.0) for z in range(2)])
    assert q["ssim_lesion"] == pytest.approx(by_hand, abs=1e-4)
    assert q["psnr_lesion"] == pytest.approx(10 * np.log10(1.0 / np.mean((pred[box] - ref[box]) ** 2)), abs=1e-3)
    # the former PSNR took the unclipped reference's max - min as its range: inflated by 20 log10(range)
    unscaled = image_quality(pred.astype(np.float32), ref.astype(np.float32), lesion, (1, 1, 9), margin_mm=4)
    assert unscaled["psnr"] - q["psnr"] == pytest.approx(20 * np.log10(ref.max() - ref.min()), abs=1e-3)


def test_evaluate_states_its_conventions_and_every_n(tmp_path):
    """summary.json and report.md carry n for every mean, the SD's ddof and the empty-prediction convention; a
    missed lesion lowers the mean precision under "zero" and is left out of it (n smaller) under "nan"."""
    import json

    from strokezoo.io.nifti import save_nifti
    from strokezoo.metrics.evaluate import evaluate

    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    entries = []
    for i in range(3):
        ref = np.zeros((12, 12, 6), np.uint8)
        ref[3:7, 3:7, 1:4] = 1
        pred = np.roll(ref, i, axis=0) if i < 2 else np.zeros_like(ref)  # case 2: the lesion is missed
        save_nifti(ref, affine, tmp_path / "ref" / f"c{i}.nii.gz")
        save_nifti(pred, affine, tmp_path / "pred" / f"c{i}.nii.gz")
        entries.append({"case_id": f"c{i}", "fold": 0, "label": str(tmp_path / "ref" / f"c{i}.nii.gz")})
    (tmp_path / "dl.json").write_text(json.dumps({"training": entries, "testing": []}))
    nan = evaluate(tmp_path / "pred", tmp_path / "dl.json", tmp_path / "nan")
    zero = evaluate(tmp_path / "pred", tmp_path / "dl.json", tmp_path / "zero", empty_precision="zero", hd_voxels=True)
    assert nan["metrics"]["precision"]["n"] == 2 and zero["metrics"]["precision"]["n"] == 3
    assert nan["metrics"]["precision"]["mean"] == pytest.approx((1.0 + 0.75) / 2)
    assert zero["metrics"]["precision"]["mean"] == pytest.approx((1.0 + 0.75 + 0.0) / 3)
    assert zero["metrics"]["precision"]["sd"] == pytest.approx(np.std([1.0, 0.75, 0.0], ddof=1))
    assert zero["metrics"]["hd_voxels"]["mean"] == pytest.approx(0.5) and zero["metrics"]["hd_voxels"]["n"] == 2
    assert nan["conventions"]["sd_ddof"] == 1 and "NaN" in nan["conventions"]["empty_precision"]
    assert "precision 0" in zero["conventions"]["empty_precision"] and "hd_voxels" in zero["conventions"]["distances"]
    report = (tmp_path / "zero" / "report.md").read_text()
    assert "sd ddof: 1" in report and "precision 0" in report
    assert "| precision | 0.583 | 0.520 | 0.750 | 3 |" in report
    assert json.loads((tmp_path / "zero" / "summary.json").read_text())["conventions"] == zero["conventions"]
