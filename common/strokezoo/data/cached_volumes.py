"""Volumes loaded and pre-processed once and kept in memory, the source of slice and patch datasets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
from monai.data import get_track_meta, set_track_meta

__all__ = ["cache_volumes", "apply_untracked"]


def cache_volumes(data: Sequence[dict], volume_transform: Callable, keys: Sequence[str], num_workers: int = 0) -> list[dict]:
    """``volume_transform`` applied once to every entry, keeping ``keys`` as contiguous channel-first tensors of
    one spatial shape, and ``case_id``; ``num_workers`` threads load in parallel."""
    keys = tuple(keys)

    def prepare(entry: dict) -> dict:
        item = volume_transform(dict(entry))
        out = {}
        for k in keys:
            t = item[k]
            out[k] = (t.as_tensor() if hasattr(t, "as_tensor") else torch.as_tensor(t)).contiguous()
        out["case_id"] = entry.get("case_id", "")
        shapes = {k: tuple(out[k].shape[1:]) for k in keys}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"case {out['case_id']}: keys have different spatial shapes {shapes}")
        return out

    if num_workers > 0:
        with ThreadPoolExecutor(num_workers) as pool:
            return list(pool.map(prepare, data))
    return [prepare(e) for e in data]


def apply_untracked(transform: Callable, sample: dict) -> dict:
    """``transform(sample)`` with MONAI's metadata tracking off, then restored.

    Training samples cut from cached volumes are never inverted, and on small samples the ``MetaTensor``
    bookkeeping costs several times the transforms' own work (a 64×32×32 TFA patch through its six transforms:
    1.14 ms tracked, 0.27 ms untracked, 2-core CPU; ``benchmarks/pass_speed.py``), which a GPU step would wait for.
    """
    previous = get_track_meta()
    set_track_meta(False)
    try:
        return transform(sample)
    finally:
        set_track_meta(previous)
