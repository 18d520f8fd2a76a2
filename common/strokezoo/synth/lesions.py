"""Ischemic lesions for synthetic subjects: irregular cores and penumbrae in arterial territories.

A lesion is defined analytically in MNI coordinates (mm), so it is the same object on every grid a
subject is rendered on (two CTP slabs of one patient, the DWI and FLAIR grids of one study). Its core is a
union of 1-4 ellipsoids whose boundary is perturbed by a few random plane waves (irregular outline), kept
inside one arterial territory (:func:`territory_of`: anterior, middle, posterior cerebral artery; a coarse
geometric parcellation of MNI space after the vascular atlas of Tatu et al., Neurology 1998) and inside
parenchyma. The penumbra is the same shape grown by a factor; the follow-up infarct is the core plus part
of the penumbra. Each lesion carries its own perfusion and diffusion severity.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .anatomy import Atlas, mni_atlas

__all__ = ["Lesion", "TERRITORIES", "territory_of", "random_lesions", "lesion_indicators"]

TERRITORIES = {"ACA": 1, "MCA": 2, "PCA": 3}


def territory_of(mni: np.ndarray, hemisphere: int) -> np.ndarray:
    """Territory code (0 none, 1 ACA, 2 MCA, 3 PCA) of points ``mni`` (..., 3) in hemisphere ``+1``/``-1``."""
    x, y, z = mni[..., 0] * hemisphere, mni[..., 1], mni[..., 2]
    code = np.zeros(mni.shape[:-1], np.int8)
    side = x > 1.0
    pca = (y < -62) | ((y < -20) & (z < -2) & (x < 40)) | ((x < 18) & (y > -35) & (y < -10) & (z > -5) & (z < 15))
    aca = ~pca & (x < 18) & (z > 5) & (y > -60)
    code[side] = TERRITORIES["MCA"]
    code[side & aca] = TERRITORIES["ACA"]
    code[side & pca] = TERRITORIES["PCA"]
    return code


@dataclass
class Lesion:
    """One ischemic lesion (MNI mm) and its severity.

    ``core_cbf``/``core_cbv``/``pen_cbf``/``pen_cbv`` are fractions of normal tissue values; delays are
    bolus delays in s (= Tmax); ``core_adc`` is the mean core ADC in 1e-6 mm^2/s.
    """

    hemisphere: int
    territory: int
    centres: np.ndarray  # (B, 3)
    radii: np.ndarray  # (B, 3)
    rotations: np.ndarray  # (B, 3, 3)
    waves: np.ndarray  # (K, 3) wave vectors (rad/mm)
    phases: np.ndarray  # (K,)
    amplitudes: np.ndarray  # (K,)
    penumbra_scale: float
    growth: float
    core_cbf: float
    core_cbv: float
    core_delay: float
    pen_cbf: float
    pen_cbv: float
    pen_delay: float
    core_adc: float

    def distance(self, mni: np.ndarray) -> np.ndarray:
        """Normalised distance (< 1 inside the core) of points ``mni`` (..., 3), outline perturbed."""
        d = np.full(mni.shape[:-1], np.inf, np.float32)
        for c, r, q in zip(self.centres, self.radii, self.rotations):
            local = ((mni - c) @ q) / r
            d = np.minimum(d, np.sqrt((local**2).sum(-1)).astype(np.float32))
        wobble = np.zeros_like(d)
        for w, p, a in zip(self.waves, self.phases, self.amplitudes):
            wobble += a * np.cos(mni @ w + p).astype(np.float32)
        return d * (1.0 + wobble)

    def growth_field(self, mni: np.ndarray) -> np.ndarray:
        """A smooth field in [0, 1]; penumbra voxels below ``growth`` join the follow-up infarct."""
        f = np.zeros(mni.shape[:-1], np.float32)
        for w, p in zip(self.waves[::-1], self.phases):
            f += np.cos(0.7 * (mni @ w) + p).astype(np.float32)
        return 0.5 + 0.5 * np.tanh(f / 1.5)


@lru_cache(maxsize=1)
def _centre_candidates() -> tuple[np.ndarray, np.ndarray]:
    """Parenchymal MNI points on a 3 mm lattice, with their territory codes for each hemisphere."""
    atlas: Atlas = mni_atlas()
    parenchyma = atlas.maps[0] + atlas.maps[1]
    ijk = np.argwhere(parenchyma[::3, ::3, ::3] > 0.7) * 3
    mni = ijk @ atlas.affine[:3, :3].T + atlas.affine[:3, 3]
    return mni, np.stack([territory_of(mni, +1), territory_of(mni, -1)])


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def random_lesions(rng: np.random.Generator, difficulty: float = 0.5, p_healthy: float = 0.1) -> list[Lesion]:
    """0-3 lesions, mostly in one hemisphere; volumes log-uniform from 0.3 to 150 mL.

    ``difficulty`` in [0, 1] moves core ADC and perfusion deficits towards normal values.
    """
    if rng.random() < p_healthy:
        return []
    n = int(rng.choice([1, 2, 3], p=[0.6, 0.25, 0.15]))
    mni, codes = _centre_candidates()
    hemisphere = int(rng.choice([1, -1]))
    lesions = []
    for k in range(n):
        h = hemisphere if (k == 0 or rng.random() < 0.85) else -hemisphere
        territory = int(rng.choice([1, 2, 3], p=[0.12, 0.68, 0.2]))
        pool = mni[codes[0 if h == 1 else 1] == territory]
        centre = pool[rng.integers(len(pool))]
        volume_ml = float(np.exp(rng.uniform(np.log(0.3), np.log(150.0)))) if k == 0 else float(np.exp(rng.uniform(np.log(0.2), np.log(12.0))))
        n_blobs = int(min(4, 1 + rng.poisson(1.2)))
        shares = rng.dirichlet(np.full(n_blobs, 2.0))
        shares[0] += 0.5
        shares /= shares.sum()
        r_eq = (3 * volume_ml * 1000.0 / (4 * np.pi)) ** (1 / 3)
        centres, radii, rots = [], [], []
        for b in range(n_blobs):
            rb = r_eq * shares[b] ** (1 / 3)
            aspect = np.array([1.0, *rng.uniform(0.55, 1.45, 2)])
            aspect /= np.prod(aspect) ** (1 / 3)
            offset = np.zeros(3) if b == 0 else rng.normal(size=3) / np.sqrt(3) * r_eq * 0.8
            centres.append(centre + offset)
            radii.append(np.maximum(rb * aspect, 1.0))
            rots.append(_random_rotation(rng))
        n_waves = 6
        directions = rng.normal(size=(n_waves, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        wavelengths = rng.uniform(6.0, 30.0, n_waves)
        small = volume_ml < 2.0
        severity = 0.6 + 0.8 * difficulty  # 0.6 (easy) .. 1.4 (hard): deficits closer to normal
        lesions.append(
            Lesion(
                hemisphere=h,
                territory=territory,
                centres=np.array(centres),
                radii=np.array(radii),
                rotations=np.array(rots),
                waves=directions * (2 * np.pi / wavelengths)[:, None],
                phases=rng.uniform(0, 2 * np.pi, n_waves),
                amplitudes=rng.uniform(0.02, 0.07, n_waves),
                penumbra_scale=1.0 if (small and rng.random() < 0.5) else float(rng.uniform(1.3, 2.2)),
                growth=float(rng.uniform(0.0, 0.7)),
                core_cbf=float(np.clip(rng.uniform(0.06, 0.2) * severity, 0.03, 0.3)),
                core_cbv=float(np.clip(rng.uniform(0.35, 0.65) * severity, 0.2, 0.85)),
                core_delay=float(rng.uniform(3.0, 9.0)),
                pen_cbf=float(np.clip(rng.uniform(0.35, 0.6) * severity, 0.3, 0.85)),
                pen_cbv=float(rng.uniform(0.95, 1.25)),
                pen_delay=float(rng.uniform(6.5, 12.0)),
                core_adc=float(np.clip(rng.uniform(470.0, 600.0) * (0.85 + 0.3 * difficulty), 380.0, 640.0)),
            )
        )
    return lesions


def lesion_indicators(lesions: list[Lesion], mni: np.ndarray, parenchyma: np.ndarray) -> dict[str, np.ndarray]:
    """Per-point core / penumbra / follow-up-infarct membership and the per-point severity of the lesion.

    Args:
        mni: points (..., 3).
        parenchyma: grey + white matter fraction at those points; lesions only occupy parenchyma.

    Returns:
        ``core``, ``penumbra``, ``infarct`` (bool) and ``index`` (int, the lesion owning each point, -1
        where none) with the same leading shape as ``mni``.
    """
    shape = mni.shape[:-1]
    core = np.zeros(shape, bool)
    pen = np.zeros(shape, bool)
    infarct = np.zeros(shape, bool)
    index = np.full(shape, -1, np.int16)
    tissue = parenchyma > 0.5
    for i, les in enumerate(lesions):
        # Only points within the lesion's bounding spheres can belong to it: evaluate those alone.
        reach = les.radii.max(1) * max(les.penumbra_scale, 1.0) / max(1e-3, 1.0 - les.amplitudes.sum())
        near = np.zeros(shape, bool)
        for c, r in zip(les.centres, reach):
            lo, hi = c - r, c + r
            near |= np.all((mni >= lo) & (mni <= hi), axis=-1)
        if not near.any():
            continue
        pts = mni[near]
        territory = territory_of(pts, les.hemisphere) == les.territory
        d = les.distance(pts)
        c = (d < 1.0) & territory & tissue[near]
        p = (d < les.penumbra_scale) & territory & tissue[near] & ~c
        grown = p & (les.growth_field(pts) < les.growth)
        sub = index[near]
        sub[(c | p) & (sub < 0)] = i
        index[near] = sub
        core[near] |= c
        pen[near] |= p
        infarct[near] |= c | grown
    pen &= ~core
    return {"core": core, "penumbra": pen, "infarct": infarct, "index": index}
