"""Patient-level cross-validation folds."""

from __future__ import annotations

import numpy as np

__all__ = ["patient_folds"]


def patient_folds(patient_ids: list[str], n_folds: int = 5, seed: int = 0) -> dict[str, int]:
    """Fold (0..n_folds-1) of every patient: a seeded permutation of the sorted patients, dealt round-robin,
    so all cases (slabs, sessions, slices) of a patient share a fold and fold sizes differ by at most one."""
    if n_folds < 1:
        raise ValueError("n_folds must be at least 1")
    patients = sorted(set(patient_ids))
    order = np.random.default_rng(seed).permutation(len(patients))
    return {patients[j]: int(rank % n_folds) for rank, j in enumerate(order)}
