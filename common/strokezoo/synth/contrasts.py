"""Image formation: MR contrasts, diffusion, DSC-MR and CT perfusion series, NCCT and CTA from a Scene.

Each image is a partial-volume mixture of per-tissue signals, lesion effects, a smooth multiplicative
bias field (MR) and acquisition noise (Rician for MR magnitude, Gaussian for CT). Perfusion maps are not
copied from the ground truth: the 4D series is simulated with the indicator-dilution model and the maps
are computed back from it by block-circulant SVD deconvolution (:mod:`strokezoo.perfusion`).
Values (ADC 800/700/3000e-6 mm^2/s in GM/WM/CSF, CBF 60/25 mL/100 g/min, HU 38/28/8) follow textbook
ranges; see docs/synthetic.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from ..perfusion import block_circulant_svd, gamma_variate, time_to_peak, tissue_concentration
from .subject import Scene, Subject

__all__ = ["weighted_mr", "diffusion", "perfusion_series", "noncontrast_ct", "ct_angiography", "PerfusionStudy"]

# Relative signal per tissue (gm, wm, csf, skull, scalp) and the core's multiplicative change (acute, subacute).
_MR = {
    "t1": ((0.50, 0.75, 0.12, 0.05, 0.60), (0.97, 0.80)),
    "t1c": ((0.52, 0.76, 0.14, 0.05, 0.65), (0.98, 0.85)),
    "t2": ((0.62, 0.48, 1.00, 0.05, 0.40), (1.08, 1.50)),
    "flair": ((0.58, 0.45, 0.08, 0.05, 0.50), (1.10, 1.60)),
}
_B0 = (0.62, 0.52, 1.00, 0.03, 0.30)
_ADC = (820.0, 740.0, 3000.0, 500.0, 1000.0)  # 1e-6 mm^2/s
_HU = (38.0, 28.0, 8.0, 1100.0, 10.0)
_AIR_HU = -1000.0


def _mix(scene: Scene, values) -> np.ndarray:
    t = scene.tissue
    return sum(t[k] * v for k, v in zip(("gm", "wm", "csf", "skull", "scalp"), values)).astype(np.float32)


def _smooth_noise(shape, rng: np.random.Generator, sigma_vox: float) -> np.ndarray:
    n = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma_vox)
    return n / (n.std() + 1e-8)


def _bias_field(scene: Scene, rng: np.random.Generator, strength: float) -> np.ndarray:
    """exp of a random quadratic polynomial of the MNI coordinates: +-``strength`` across the head.

    Evaluated on a 4x-coarser grid and interpolated (the field is smooth; this keeps 1 mm grids cheap).
    """
    x = scene.mni[::4, ::4, ::2] / 80.0
    terms = [x[..., 0], x[..., 1], x[..., 2], x[..., 0] * x[..., 1], x[..., 1] * x[..., 2], x[..., 2] ** 2]
    coarse = sum(c * t for c, t in zip(rng.normal(0, 1, len(terms)).astype(np.float32), terms))
    field = torch.nn.functional.interpolate(
        torch.from_numpy(np.ascontiguousarray(coarse))[None, None], size=scene.grid.shape, mode="trilinear", align_corners=True
    )[0, 0].numpy()
    return np.exp(np.float32(strength / 2.0) * field)


def _rician(signal: np.ndarray, sigma: float, rng: np.random.Generator, mask: np.ndarray | None = None) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise; with ``mask``, zero outside it (skull-stripped)."""
    if mask is not None:
        out = np.zeros(signal.shape, np.float32)
        out[mask] = _rician(signal[mask], sigma, rng)
        return out
    re = signal + sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    im = sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    return np.sqrt(re * re + im * im)


def _noise_sigma(subject: Subject) -> float:
    """MR noise sd relative to a white-matter b0 of about 0.5 (SNR about 60 at difficulty 0.5)."""
    return 0.004 + 0.009 * subject.difficulty


def weighted_mr(scene: Scene, subject: Subject, contrast: str, phase: str, rng: np.random.Generator, skull_stripped: bool = False) -> np.ndarray:
    """T1, T1c, T2 or FLAIR magnitude image (arbitrary units, brain WM about 0.5); zero outside the
    intracranial volume when ``skull_stripped`` (as ISLES 2015 distributes its images)."""
    values, (acute, subacute) = _MR[contrast]
    factor = acute if phase == "acute" else subacute
    base = _mix(scene, values)
    par = scene.parenchyma
    normal = scene.tissue["gm"] * values[0] + scene.tissue["wm"] * values[1]
    lesioned = base + scene.core * (factor - 1.0) * normal * (par > 0)
    img = lesioned * _bias_field(scene, rng, 0.1 + 0.3 * subject.difficulty) * subject.gain
    return _rician(img, _noise_sigma(subject) * 0.6, rng, scene.brain if skull_stripped else None)


def diffusion(scene: Scene, subject: Subject, phase: str, rng: np.random.Generator, b: float = 1000.0, skull_stripped: bool = False):
    """b0, DWI (b = ``b`` s/mm^2) and ADC (1e-6 mm^2/s, 0 outside the head) from two noisy acquisitions;
    images are zero outside the intracranial volume when ``skull_stripped``.

    The ADC is computed from the two noisy images as ``-ln(S_b / S_0) / b``, so its noise and its
    insensitivity to the bias field follow from the physics rather than being added to it.
    """
    t = scene.tissue
    names = ("gm", "wm", "csf", "skull", "scalp")
    t2_factor = 1.08 if phase == "acute" else 1.4
    core = scene.core * (scene.parenchyma > 0)
    wobble = 1.0 + 0.06 * _smooth_noise(scene.grid.shape, rng, 1.5)
    s0 = np.zeros(scene.grid.shape, np.float32)
    sb = np.zeros(scene.grid.shape, np.float32)
    for name, s0_t, adc_t in zip(names, _B0, _ADC):
        frac = t[name] * (1 - core) if name in ("gm", "wm") else t[name]
        s0 += frac * s0_t
        sb += frac * s0_t * np.exp(-b * adc_t * 1e-6)
    core_s0 = (t["gm"] * _B0[0] + t["wm"] * _B0[1]) * t2_factor
    core_adc = np.where(core > 0, scene.adc_core * wobble, 0.0)
    s0 += core * core_s0
    sb += core * core_s0 * np.exp(-b * core_adc * 1e-6)
    bias = _bias_field(scene, rng, 0.1 + 0.3 * subject.difficulty) * subject.gain
    sigma = _noise_sigma(subject)
    mask = scene.brain if skull_stripped else None
    s0_n = _rician(s0 * bias, sigma, rng, mask)
    sb_n = _rician(sb * bias, sigma, rng, mask)
    head = ndimage.binary_opening(s0 * bias > 0.15, iterations=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        adc = -np.log(np.maximum(sb_n, 1e-4) / np.maximum(s0_n, 1e-4)) / b * 1e6
    adc = np.where(head, np.clip(adc, 0.0, 4000.0), 0.0).astype(np.float32)
    return s0_n, sb_n, adc


@dataclass
class PerfusionStudy:
    """A simulated perfusion acquisition: the 4D ``series`` (X, Y, Z, T), frame interval ``dt`` (s),
    maps computed from it by deconvolution (``cbf``, ``cbv``, ``mtt``, ``tmax``, ``ttp``; 0 outside the
    brain) and the measured arterial input function ``aif``."""

    series: np.ndarray
    dt: float
    aif: np.ndarray
    cbf: np.ndarray
    cbv: np.ndarray
    mtt: np.ndarray
    tmax: np.ndarray
    ttp: np.ndarray


def perfusion_series(scene: Scene, subject: Subject, rng: np.random.Generator, modality: str, n_frames: int, dt: float) -> PerfusionStudy:
    """CT perfusion (HU) or DSC-MR (signal, a.u.) series and the maps computed back from it.

    CT: HU(t) = NCCT + C(t) with a gamma-variate AIF of 250-450 HU peak, noise 4-10 HU per frame.
    DSC-MR: S(t) = S_0 exp(-kappa C(t)), with C converted back as -ln(S / S_0) / kappa before deconvolution.
    """
    times = np.arange(n_frames) * dt
    t0 = rng.uniform(4.0, 9.0)
    alpha, beta = rng.uniform(2.5, 3.8), rng.uniform(1.0, 1.8)
    peak = rng.uniform(250.0, 450.0) if modality == "ct" else 400.0
    aif = lambda t: gamma_variate(t, t0, alpha, beta, peak)  # noqa: E731
    brain = scene.brain
    perfused = brain & (scene.cbf > 0.5)
    conc = np.zeros((*scene.grid.shape, n_frames), np.float32)
    cbf = scene.cbf[perfused]
    mtt = 60.0 * scene.cbv[perfused] / np.maximum(cbf, 1e-3)
    conc[perfused] = tissue_concentration(times, aif, cbf, mtt, scene.delay[perfused])
    aif_measured = (aif(times) * (1 + rng.normal(0, 0.02, n_frames))).astype(np.float32)
    n_base = max(2, int(t0 // dt))
    # Maps are computed within the brain's bounding box (padded for the smoothing below).
    smooth = (*(2.5 / scene.grid.spacing[:2]), 0.0, 0.5)
    box = ndimage.find_objects(brain.astype(np.uint8))[0] if brain.any() else tuple(slice(0, 0) for _ in range(3))
    box = tuple(slice(max(0, b.start - int(np.ceil(2.5 * sg))), b.stop + int(np.ceil(2.5 * sg))) for b, sg in zip(box, smooth))
    if modality == "ct":
        base = noncontrast_ct(scene, subject, rng, noise=0.0)
        sigma = 4.0 + 6.0 * subject.difficulty
        series = rng.standard_normal(conc.shape, dtype=np.float32)  # built in place: 4D arrays are large
        series *= np.float32(sigma)
        series += conc
        series += base[..., None]
        del conc
        measured = series[box] - series[box][..., :n_base].mean(-1, keepdims=True)
    else:
        kappa = 0.025
        s0 = _mix(scene, _B0) * subject.gain
        sigma = 0.004 + 0.01 * subject.difficulty
        series = s0[..., None] * np.exp(-kappa * conc) + np.float32(sigma) * rng.standard_normal(conc.shape, dtype=np.float32)
        baseline = np.maximum(series[box][..., :n_base].mean(-1, keepdims=True), 1e-3)
        measured = -np.log(np.clip(series[box], 1e-3, None) / baseline) / kappa
    # As perfusion software does before deconvolution: in-plane Gaussian smoothing (sd 2.5 mm) and a
    # light temporal one; the SVD cut-off is the usual 0.2 for noisy CT and 0.1 for DSC-MR.
    measured = ndimage.gaussian_filter(measured.astype(np.float32, copy=False), sigma=smooth, truncate=2.5)
    maps = block_circulant_svd(measured[brain[box]], aif_measured - aif_measured[:n_base].mean(), dt, threshold=0.2 if modality == "ct" else 0.1)
    out = {}
    for name in ("cbf", "cbv", "mtt", "tmax"):
        m = np.zeros(scene.grid.shape, np.float32)
        m[brain] = getattr(maps, name)
        out[name] = m
    ttp = np.zeros(scene.grid.shape, np.float32)
    ttp[brain] = time_to_peak(measured[brain[box]], dt)
    return PerfusionStudy(series.astype(np.float32, copy=False), dt, aif_measured, ttp=ttp, **out)


def noncontrast_ct(scene: Scene, subject: Subject, rng: np.random.Generator, noise: float | None = None) -> np.ndarray:
    """Non-contrast CT in HU: air -1000, tissue mixture, a few HU of hypoattenuation in the core."""
    hu = _mix(scene, _HU)
    outside = 1.0 - sum(scene.tissue.values())
    hu = hu + np.clip(outside, 0, 1) * _AIR_HU
    drop = 2.0 + 3.0 * (1.0 - subject.difficulty)
    hu = hu - drop * scene.core * (scene.parenchyma > 0)
    if noise is None:
        noise = 3.0 + 3.0 * subject.difficulty
    if noise:
        hu = hu + np.float32(noise) * rng.standard_normal(hu.shape, dtype=np.float32)
    return hu.astype(np.float32)


def ct_angiography(scene: Scene, subject: Subject, rng: np.random.Generator) -> np.ndarray:
    """CTA in HU: NCCT plus blood-volume-weighted parenchymal enhancement (about 8 HU in GM)."""
    return noncontrast_ct(scene, subject, rng) + 2.0 * scene.cbv
