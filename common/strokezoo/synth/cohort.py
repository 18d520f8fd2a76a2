"""``strokezoo synth``: a synthetic cohort written in the exact layout, names and dtypes of a release.

Every case is an independent :class:`~.subject.Subject` drawn from ``SeedSequence(seed).spawn``, so a
cohort is deterministic whatever the number of worker processes. ISLES 2018 patients may have two
adjacent CTP slabs, written as consecutive cases, as in the release.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..data.layouts import LAYOUTS
from ..io.atomic import write_json_atomic
from ..io.nifti import save_nifti
from ..metrics.agreement import cohen_kappa
from .anatomy import Grid, mni_atlas
from .contrasts import ct_angiography, diffusion, noncontrast_ct, perfusion_series, weighted_mr
from .lesions import _centre_candidates, territory_of
from .raters import rater_mask
from .subject import Scene, Subject, random_subject, render_scene

__all__ = ["synthesize_cohort", "GRIDS"]

#: Matrix and voxel size (mm) of each release at ``scale=1`` (typical values of the real data).
GRIDS = {
    "isles2015-siss": ((230, 230, 153), (1.0, 1.0, 1.0)),
    "isles2015-spes": ((96, 110, 72), (2.0, 2.0, 2.0)),
    "isles2017": ((192, 192, 19), (1.2, 1.2, 6.5)),
    "isles2018": ((256, 256, None), (0.86, 0.86, None)),
    "isles2022": ((112, 112, 73), (2.0, 2.0, 2.0)),
    "isles2022-flair": ((224, 224, 30), (1.0, 1.0, 5.0)),
    "isles2024": ((192, 192, 24), (1.15, 1.15, 6.0)),
    "apis": ((256, 256, 24), (0.9, 0.9, 6.0)),
}


def _grid(key: str, scale: float, centre=(0.0, 10.0, 15.0), n_slices: int | None = None, thickness: float | None = None) -> Grid:
    shape, spacing = GRIDS[key]
    shape = list(shape)
    spacing = list(spacing)
    if n_slices is not None:
        shape[2], spacing[2] = n_slices, thickness
        dims = (0, 1)
    else:
        dims = (0, 1, 2)
    for d in dims:
        n = max(8 if d < 2 else 4, int(round(shape[d] * scale)))
        spacing[d] = spacing[d] * shape[d] / n
        shape[d] = n
    return Grid.centred(tuple(shape), tuple(spacing), centre)


def _binary(frac: np.ndarray) -> np.ndarray:
    return (frac >= 0.5).astype(np.uint8)


def _frames(rng: np.random.Generator) -> tuple[int, float]:
    """Frame interval 1-2 s and 28-64 frames covering 50-80 s."""
    dt = float(rng.uniform(1.0, 2.0))
    return int(np.clip(round(rng.uniform(50, 80) / dt), 28, 64)), dt


def _vsd(case_dir: Path, prefix: str, token: str, uid: int, data, affine, dtype, **kw) -> None:
    name = f"{prefix}.XX.O.{token}.{uid}"
    save_nifti(data, affine, case_dir / name / f"{name}.nii", dtype, **kw)


def _write_siss(subject: Subject, rng, out: Path, n: int, scale: float, uid: int, **_) -> dict:
    grid = _grid("isles2015-siss", scale)
    scene = render_scene(subject, grid)
    case = out / str(n)
    for i, (token, contrast) in enumerate((("MR_Flair", "flair"), ("MR_T1", "t1"), ("MR_T2", "t2"))):
        img = weighted_mr(scene, subject, contrast, "subacute", rng, skull_stripped=True)
        _vsd(case, "VSD.Brain", token, uid + i, img * 1000, grid.affine, np.int16)
    _, dwi, _ = diffusion(scene, subject, "subacute", rng, skull_stripped=True)
    _vsd(case, "VSD.Brain", "MR_DWI", uid + 3, dwi * 1000, grid.affine, np.int16)
    prefix = "VSD.Brain_3more" if n % 3 == 0 else "VSD.Brain"
    _vsd(case, prefix, "OT", uid + 4, _binary(scene.core), grid.affine, np.uint8)
    return _summary(f"case_{n}", f"case_{n}", scene, scene.core)


def _write_spes(subject: Subject, rng, out: Path, n: int, scale: float, uid: int, **_) -> dict:
    grid = _grid("isles2015-spes", scale)
    scene = render_scene(subject, grid)
    case = out / str(n)
    frames, dt = _frames(rng)
    pwi = perfusion_series(scene, subject, rng, "mr", frames, dt)
    _, dwi, _ = diffusion(scene, subject, "acute", rng, skull_stripped=True)
    images = {
        "MR_CBF": pwi.cbf,
        "MR_CBV": pwi.cbv,
        "MR_DWI": dwi * 1000,
        "MR_T1c": weighted_mr(scene, subject, "t1c", "acute", rng, skull_stripped=True) * 1000,
        "MR_T2": weighted_mr(scene, subject, "t2", "acute", rng, skull_stripped=True) * 1000,
        "MR_Tmax": pwi.tmax,
        "MR_TTP": pwi.ttp,
    }
    for i, (token, img) in enumerate(images.items()):
        _vsd(case, "VSD.Brain", token, uid + i, img, grid.affine, np.float32)
    target = np.clip(scene.core + scene.penumbra, 0, 1)
    _vsd(case, "VSD.Brain", "OT", uid + 9, _binary(target), grid.affine, np.uint8)
    return _summary(f"case_{n}", f"case_{n}", scene, target)


def _write_isles2017(subject: Subject, rng, out: Path, n: int, scale: float, uid: int, **_) -> dict:
    grid = _grid("isles2017", scale)
    scene = render_scene(subject, grid)
    case = out / f"training_{n}"
    prefix = "SMIR.Brain" if n % 2 else "VSD.Brain"
    frames, dt = _frames(rng)
    pwi = perfusion_series(scene, subject, rng, "mr", frames, dt)
    _, _, adc = diffusion(scene, subject, "acute", rng)
    maps = {"MR_ADC": adc, "MR_MTT": pwi.mtt, "MR_rCBF": pwi.cbf, "MR_rCBV": pwi.cbv, "MR_Tmax": pwi.tmax, "MR_TTP": pwi.ttp}
    for i, (token, img) in enumerate(maps.items()):
        _vsd(case, prefix, token, uid + i, img, grid.affine, np.float32)
    series = pwi.series * 1000
    if n % 2 == 0:  # some 4DPWI files of the release are stored 5-D (x, y, z, 1, t)
        series = series[:, :, :, None, :]
    zooms = (*grid.spacing, 1.0, dt) if series.ndim == 5 else (*grid.spacing, dt)
    _vsd(case, prefix, "MR_4DPWI", uid + 7, series, grid.affine, np.int16, zooms=zooms)
    _vsd(case, prefix, "OT", uid + 8, _binary(scene.infarct), grid.affine, np.uint8)
    return _summary(f"training_{n}", f"training_{n}", scene, scene.infarct)


def _slab(subject: Subject, rng, scale: float, slab: int | None, n_slices: int, thickness: float) -> Grid:
    """An axial CTP slab centred on the largest lesion (or the basal ganglia). For a two-slab patient,
    ``slab`` 0 and 1 lie just below and just above that centre."""
    if subject.lesions:
        centre_mni = subject.lesions[0].centres[0]
    else:
        centre_mni = np.array([0.0, 0.0, 10.0])
    centre = subject.pose.to_world(centre_mni)
    extent = n_slices * thickness
    centre[2] += rng.uniform(-0.25, 0.25) * extent + (0.0 if slab is None else (slab - 0.5) * extent)
    return _grid("isles2018", scale, centre=(0.0, 10.0, centre[2]), n_slices=n_slices, thickness=thickness)


def _write_isles2018(
    subject: Subject, rng, out: Path, n: int, scale: float, uid: int, testing: bool = False, slab: int | None = None, slab_rng=None, **_
) -> dict:
    slab_rng = slab_rng or rng
    choices = [2, 4, 6, 8] if slab is not None else [2, 4, 6, 8, 8, 8, 10, 12, 16, 18, 22]
    n_slices = int(slab_rng.choice(choices))
    thickness = 5.0 if n_slices >= 8 else float(slab_rng.choice([8.0, 10.0]))
    grid = _slab(subject, slab_rng, scale, slab, n_slices, thickness)
    scene = render_scene(subject, grid)
    case = out / ("TESTING" if testing else "TRAINING") / f"case_{n}"
    frames, dt = _frames(rng)
    ctp = perfusion_series(scene, subject, rng, "ct", frames, dt)
    p = "SMIR.Brain"
    _vsd(case, p, "CT", uid, noncontrast_ct(scene, subject, rng), grid.affine, np.int32)
    _vsd(case, p, "CT_4DPWI", uid + 1, ctp.series, grid.affine, np.int16, zooms=(*grid.spacing, dt))
    _vsd(case, p, "CT_CBF", uid + 2, ctp.cbf, grid.affine, np.uint16)
    _vsd(case, p, "CT_CBV", uid + 3, ctp.cbv, grid.affine, np.uint16, scale_slope=0.01)
    _vsd(case, p, "CT_MTT", uid + 4, ctp.mtt, grid.affine, np.float64)
    _vsd(case, p, "CT_Tmax", uid + 5, ctp.tmax, grid.affine, np.float64)
    if not testing:
        _vsd(case, p, "OT", uid + 6, _binary(scene.core), grid.affine, np.uint8)
        # the follow-up DWI, registered onto the CTP slab (training cases only, as in the release); its noise comes
        # from a child of the case's seed sequence, so that the CTP images of this and the next slab do not change
        dwi_rng = np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0])
        _, dwi, _ = diffusion(scene, subject, "acute", dwi_rng, skull_stripped=True)
        _vsd(case, p, "MR_DWI", uid + 7, dwi * 1000, grid.affine, np.int16)
    return _summary(f"test_case_{n}" if testing else f"case_{n}", None, scene, scene.core, testing=testing)


def _bids(root: Path, sub: str, ses: str, folder: str, suffix: str) -> Path:
    return root / sub / ses / folder / f"{sub}_{ses}_{suffix}.nii.gz"


def _write_isles2022(subject: Subject, rng, out: Path, n: int, scale: float, uid: int, **_) -> dict:
    grid = _grid("isles2022", scale)
    scene = render_scene(subject, grid)
    sub, ses = f"sub-strokecase{n:04d}", "ses-0001"
    raw, der = out / "rawdata", out / "derivatives"
    _, dwi, adc = diffusion(scene, subject, "acute", rng)
    save_nifti(dwi * 1000, grid.affine, _bids(raw, sub, ses, "dwi", "dwi"), np.float32)
    save_nifti(adc, grid.affine, _bids(raw, sub, ses, "dwi", "adc"), np.float32)
    fgrid = _grid("isles2022-flair", scale)
    fscene = render_scene(subject, fgrid)
    save_nifti(weighted_mr(fscene, subject, "flair", "acute", rng) * 1000, fgrid.affine, _bids(raw, sub, ses, "anat", "FLAIR"), np.float32)
    label = _binary(scene.core)
    save_nifti(label, grid.affine, der / sub / ses / f"{sub}_{ses}_msk.nii.gz", np.uint8)
    raters = _write_raters(label.astype(bool), grid, rng, lambda r, m: der / sub / ses / f"{sub}_{ses}_rater-{r}_desc-{m}_msk.nii.gz")
    return _summary(sub, sub, scene, scene.core, raters=raters)


def _write_raters(lesion: np.ndarray, grid: Grid, rng, path_of) -> dict:
    masks = {}
    for rater in ("R1", "R2"):
        habit = float(rng.normal(0, 0.8))
        for modality in ("adc", "dwi"):
            m = rater_mask(lesion, grid.spacing, rng, modality, habit)
            if path_of is not None:
                save_nifti(m, grid.affine, path_of(rater, modality), np.uint8)
            masks[f"{rater}_{modality}"] = m
    return masks


def _write_isles2024(subject: Subject, rng, out: Path, n: int, scale: float, uid: int, **_) -> dict:
    grid = _grid("isles2024", scale)
    scene = render_scene(subject, grid)
    sub = f"sub-stroke{n:04d}"
    raw = out / ("raw_data" if n % 2 else "rawdata") / sub / "ses-01"
    der = out / "derivatives" / sub
    frames, dt = _frames(rng)
    ctp = perfusion_series(scene, subject, rng, "ct", frames, dt)
    save_nifti(noncontrast_ct(scene, subject, rng), grid.affine, raw / f"{sub}_ses-01_ncct.nii.gz", np.int16)
    save_nifti(ct_angiography(scene, subject, rng), grid.affine, raw / f"{sub}_ses-01_cta.nii.gz", np.int16)
    save_nifti(ctp.series, grid.affine, raw / f"{sub}_ses-01_ctp.nii.gz", np.int16, zooms=(*grid.spacing, dt))
    for name in ("tmax", "mtt", "cbf", "cbv"):
        save_nifti(getattr(ctp, name), grid.affine, der / "ses-01" / "perfusion-maps" / f"{sub}_ses-01_{name}.nii.gz", np.float32)
    label = _binary(scene.infarct)
    # A multi-label Circle-of-Willis-like mask beside the lesion mask (the reader must not take it).
    cow = territory_of(scene.mni, 1) * (scene.brain & (scene.mni[..., 0] > 0))
    save_nifti(cow, grid.affine, der / "ses-01" / f"{sub}_ses-01_space-ncct_cow-msk.nii.gz", np.uint8)
    mask_path = der / "ses-02" / f"{sub}_ses-02_space-ncct_lesion-msk.nii.gz"
    if n % 3 == 0:  # a scaled-integer mask: 0/255 stored with scl_slope 1/255
        save_nifti(label.astype(np.float32), grid.affine, mask_path, np.uint8, scale_slope=1 / 255)
    else:
        save_nifti(label, grid.affine, mask_path, np.uint8)
    return _summary(sub, sub, scene, scene.infarct)


def _write_apis(subject: Subject, rng, out: Path, n: int, scale: float, uid: int, **_) -> dict:
    grid = _grid("apis", scale)
    scene = render_scene(subject, grid)
    cid = f"train_{n:03d}"
    case = out / "train" / cid
    _, _, adc = diffusion(scene, subject, "acute", rng)
    save_nifti(noncontrast_ct(scene, subject, rng), grid.affine, case / f"{cid}_ncct.nii.gz", np.int16)
    save_nifti(adc, grid.affine, case / f"{cid}_adc.nii.gz", np.float32)
    lesion = _binary(scene.core).astype(bool)
    raters = _write_raters(lesion, grid, rng, None)
    save_nifti(raters["R1_adc"], grid.affine, out / "train" / "masks" / f"{cid}_r1_mask.nii.gz", np.uint8)
    save_nifti(raters["R2_adc"], grid.affine, out / "train" / "masks" / f"{cid}_r2_mask.nii.gz", np.uint8)
    return _summary(cid, cid, scene, scene.core, raters={k: v for k, v in raters.items() if k.endswith("adc")})


WRITERS = {
    "isles2015-siss": _write_siss,
    "isles2015-spes": _write_spes,
    "isles2017": _write_isles2017,
    "isles2018": _write_isles2018,
    "isles2022": _write_isles2022,
    "isles2024": _write_isles2024,
    "apis": _write_apis,
}
assert set(WRITERS) == set(LAYOUTS), "every release layout needs a synthetic writer"


def _summary(case_id: str, patient_id: str | None, scene: Scene, target: np.ndarray, testing: bool = False, raters: dict | None = None) -> dict:
    voxel_ml = float(np.prod(scene.grid.spacing)) / 1000.0
    out = {
        "case_id": case_id,
        "patient_id": patient_id or case_id,
        "testing": testing,
        "lesion_ml": round(float((target >= 0.5).sum() * voxel_ml), 3),
        "core_ml": round(float((scene.core >= 0.5).sum() * voxel_ml), 3),
        "penumbra_ml": round(float((scene.penumbra >= 0.5).sum() * voxel_ml), 3),
    }
    if raters:
        for m in sorted({k.split("_")[1] for k in raters}):
            out[f"kappa_{m}"] = cohen_kappa(raters[f"R1_{m}"], raters[f"R2_{m}"])
    return out


def _synth_case(args: tuple) -> list[dict]:
    layout, seed_seq, index, out, scale, difficulty, testing, number = args
    rng = np.random.default_rng(seed_seq)
    subject = random_subject(rng, difficulty)
    writer = WRITERS[layout]
    uid = 100000 + 100 * index
    if layout != "isles2018":
        return [writer(subject, rng, out, number, scale, uid)]
    # ISLES 2018: about a third of patients have a second, adjacent slab (the next case number).
    two = rng.random() < 0.33
    slab_rng = np.random.default_rng(rng.integers(2**31))
    rows = [writer(subject, rng, out, number, scale, uid, testing=testing, slab=0 if two else None, slab_rng=slab_rng)]
    if two:
        slab_rng = np.random.default_rng(slab_rng.bit_generator.seed_seq)  # same slab geometry
        rows.append(writer(subject, rng, out, number + 1, scale, uid + 50, testing=testing, slab=1, slab_rng=slab_rng))
    pid = f"patient_{index + 1:03d}"
    for r in rows:
        r["patient_id"] = pid
    return rows


def _init_worker(threads: int | None = None) -> None:
    """Load the atlas (once per process); in a worker, one compute thread, so workers do not oversubscribe."""
    if threads is not None:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(threads)
        threadpool_limits(threads)  # BLAS/OpenMP pools of numpy and scipy
    mni_atlas()
    _centre_candidates()


def synthesize_cohort(
    layout: str,
    out: str | os.PathLike,
    cases: int = 10,
    seed: int = 0,
    scale: float = 1.0,
    difficulty: float = 0.5,
    workers: int | None = None,
    test_fraction: float = 0.2,
) -> dict:
    """Write ``cases`` synthetic cases (patients, for ISLES 2018) in ``layout`` under ``out``.

    Args:
        layout: one of :data:`strokezoo.data.layouts.LAYOUTS`.
        scale: matrix-size factor (1 = the release's typical grid; the field of view is kept).
        difficulty: 0 (easy) to 1 (hard): noise, bias field, lesion contrast.
        workers: processes (default: up to 2).
        test_fraction: ISLES 2018 only, fraction of patients written under TESTING without OT.

    Returns:
        the cohort summary, also written to ``<out>/synth_summary.json``: per-case lesion volumes and,
        for two-rater cohorts, inter-rater kappa.
    """
    if layout not in WRITERS:
        raise ValueError(f"unknown layout {layout!r}; choose from {sorted(WRITERS)}")
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError("difficulty must lie in [0, 1]")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    seqs = np.random.SeedSequence(seed).spawn(cases)
    n_test = int(round(test_fraction * cases)) if layout == "isles2018" else 0
    jobs = []
    for i, s in enumerate(seqs):
        # Case numbers with gaps (ISLES 2017) or room for a second slab (ISLES 2018).
        number = {"isles2017": 1 + i + i // 4, "isles2018": 1 + 2 * i}.get(layout, i + 1)
        jobs.append((layout, s, i, out, scale, difficulty, i >= cases - n_test, number))
    workers = workers or min(2, os.cpu_count() or 1, cases)
    _init_worker()  # load the atlas once; forked workers inherit it
    if workers > 1:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(1,)) as pool:
            results = list(pool.map(_synth_case, jobs))
    else:
        results = [_synth_case(j) for j in jobs]
    rows = [r for group in results for r in group]
    summary = {
        "layout": layout,
        "cases": len(rows),
        "patients": cases,
        "seed": seed,
        "scale": scale,
        "difficulty": difficulty,
        "seconds": round(time.perf_counter() - start, 2),
        "rows": rows,
    }
    write_json_atomic(summary, out / "synth_summary.json")
    return summary
