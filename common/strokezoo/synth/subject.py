"""A synthetic patient (pose, lesions, physiology) and its rendering onto a voxel grid as a :class:`Scene`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import TISSUES, Grid, Pose, mni_atlas, random_pose, sample_fractions
from .lesions import Lesion, lesion_indicators, random_lesions

__all__ = ["Subject", "Scene", "random_subject", "render_scene"]


@dataclass
class Subject:
    """Everything that is true of one patient whatever the acquisition.

    ``cbf_gm``/``cbf_wm`` in mL/100 g/min, ``mtt_gm``/``mtt_wm`` in s, ``gain`` a global intensity factor,
    ``difficulty`` in [0, 1] (noise, artefact strength, lesion contrast), ``seed`` for the acquisition noise.
    """

    pose: Pose
    lesions: list[Lesion]
    cbf_gm: float
    cbf_wm: float
    mtt_gm: float
    mtt_wm: float
    gain: float
    difficulty: float
    seed: int


def random_subject(rng: np.random.Generator, difficulty: float = 0.5) -> Subject:
    return Subject(
        pose=random_pose(rng),
        lesions=random_lesions(rng, difficulty),
        cbf_gm=float(rng.uniform(52, 68)),
        cbf_wm=float(rng.uniform(21, 29)),
        mtt_gm=float(rng.uniform(3.6, 4.4)),
        mtt_wm=float(rng.uniform(4.4, 5.2)),
        gain=float(rng.uniform(0.9, 1.1)),
        difficulty=float(difficulty),
        seed=int(rng.integers(2**31)),
    )


@dataclass
class Scene:
    """Per-voxel ground truth of a subject on one grid (fractions in [0, 1], averaged over slice sub-samples).

    ``tissue`` maps names of :data:`TISSUES` to fractions; ``core``, ``penumbra`` and ``infarct`` are the
    lesion fractions; ``cbf``, ``cbv``, ``delay`` the true perfusion (mL/100 g/min, mL/100 g, s);
    ``adc_core`` the core ADC where a core is (1e-6 mm^2/s); ``mni`` the MNI coordinates of voxel centres.
    """

    grid: Grid
    tissue: dict[str, np.ndarray]
    core: np.ndarray
    penumbra: np.ndarray
    infarct: np.ndarray
    cbf: np.ndarray
    cbv: np.ndarray
    delay: np.ndarray
    adc_core: np.ndarray
    mni: np.ndarray

    @property
    def parenchyma(self) -> np.ndarray:
        return self.tissue["gm"] + self.tissue["wm"]

    @property
    def brain(self) -> np.ndarray:
        """Intracranial mask (parenchyma + CSF > 0.5)."""
        return (self.parenchyma + self.tissue["csf"]) > 0.5


def render_scene(subject: Subject, grid: Grid) -> Scene:
    """Tissue and lesion fractions and true physiology of ``subject`` on ``grid``."""
    atlas = mni_atlas()
    z_sub = grid.z_subsamples()
    world = grid.world_points(z_sub)  # (S, X, Y, Z, 3)
    mni = subject.pose.to_mni(world)
    frac = sample_fractions(atlas, mni)  # (T, S, X, Y, Z)
    parenchyma = frac[0] + frac[1]
    ind = lesion_indicators(subject.lesions, mni, parenchyma)
    tissue = {name: frac[i].mean(0) for i, name in enumerate(TISSUES)}
    core = ind["core"].mean(0, dtype=np.float32)
    pen = ind["penumbra"].mean(0, dtype=np.float32)
    infarct = ind["infarct"].mean(0, dtype=np.float32)
    owner = ind["index"].max(0)

    gm, wm = tissue["gm"], tissue["wm"]
    cbf_normal = gm * subject.cbf_gm + wm * subject.cbf_wm
    cbv_normal = gm * subject.cbf_gm * subject.mtt_gm / 60 + wm * subject.cbf_wm * subject.mtt_wm / 60
    rng = np.random.default_rng(subject.seed + 1)
    delay = np.full(grid.shape, rng.uniform(0.2, 1.2), np.float32)
    cbf_factor = np.ones(grid.shape, np.float32)
    cbv_factor = np.ones(grid.shape, np.float32)
    adc_core = np.zeros(grid.shape, np.float32)
    centre_mni = mni[z_sub // 2]
    for i, les in enumerate(subject.lesions):
        own = owner == i
        if not own.any():
            continue
        c, p = core[own], pen[own]
        cbf_factor[own] = 1 - c * (1 - les.core_cbf) - p * (1 - les.pen_cbf)
        cbv_factor[own] = 1 - c * (1 - les.core_cbv) - p * (1 - les.pen_cbv)
        delay[own] = np.maximum(delay[own], np.where(c > p, les.core_delay, les.pen_delay))
        # Heterogeneous core ADC (pseudo-normalisation at the rim, deepest restriction centrally).
        rim = np.clip(les.distance(centre_mni[own]), 0, 1)
        adc_core[own] = les.core_adc * (0.9 + 0.25 * rim**2)
    return Scene(
        grid=grid,
        tissue=tissue,
        core=core,
        penumbra=pen,
        infarct=infarct,
        cbf=(cbf_normal * cbf_factor).astype(np.float32),
        cbv=(cbv_normal * cbv_factor).astype(np.float32),
        delay=delay,
        adc_core=adc_core,
        mni=centre_mni.astype(np.float32),
    )
