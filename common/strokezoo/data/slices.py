"""Axial slices of cached volumes as 2D training samples (the slice-based methods: Gómez 2023 Sec. 5.1).

Each volume is loaded and pre-processed once (load, stack modalities, normalise, resize in-plane) and kept
in memory; every axial slice of every volume is then one sample of an epoch, with the random 2D
augmentations applied per slice. MONAI's ``GridPatchDataset`` gives the same slices but as an iterable
dataset (no global shuffle) and ``CacheDataset`` deep-copies a whole cached volume for every access, so
this small map-style dataset is written here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
from torch.utils.data import Dataset

__all__ = ["SliceDataset"]


class SliceDataset(Dataset):
    """All slices along the last spatial axis of a list of volumes, one sample per slice.

    Args:
        data: datalist entries (dicts of file paths).
        volume_transform: deterministic transform of one entry to channel-first ``(C, H, W, D)`` arrays
            under ``keys`` (run once per volume, cached).
        transform: random transform of one slice sample ``{key: (C, H, W) tensor}``.
        keys: keys to slice; other keys are dropped from the samples, except ``case_id``.
        num_workers: threads used to load and pre-process the volumes.
    """

    def __init__(
        self,
        data: Sequence[dict],
        volume_transform: Callable,
        transform: Callable | None = None,
        keys: Sequence[str] = ("image", "label"),
        num_workers: int = 0,
    ) -> None:
        self.data = list(data)
        self.transform = transform
        self.keys = tuple(keys)

        def prepare(entry: dict) -> dict:
            item = volume_transform(dict(entry))
            out = {}
            for k in self.keys:
                t = item[k]
                t = t.as_tensor() if hasattr(t, "as_tensor") else torch.as_tensor(t)
                out[k] = t.contiguous()
            out["case_id"] = entry.get("case_id", "")
            return out

        if num_workers > 0:
            with ThreadPoolExecutor(num_workers) as pool:
                self.volumes = list(pool.map(prepare, self.data))
        else:
            self.volumes = [prepare(e) for e in self.data]
        depths = []
        for v in self.volumes:
            shapes = {k: tuple(v[k].shape[1:]) for k in self.keys}
            if len(set(shapes.values())) != 1:
                raise ValueError(f"case {v['case_id']}: keys have different spatial shapes {shapes}")
            depths.append(v[self.keys[0]].shape[-1])
        self.index = [(i, z) for i, depth in enumerate(depths) for z in range(depth)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        v, z = self.index[i]
        volume = self.volumes[v]
        sample = {k: volume[k][..., z].clone() for k in self.keys}
        sample["case_id"] = volume["case_id"]
        return self.transform(sample) if self.transform is not None else sample
