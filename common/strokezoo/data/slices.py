"""Axial slices of cached volumes as 2D training samples (the slice-based methods: Gómez 2023 Sec. 5.1).

Each volume is loaded and pre-processed once (load, stack modalities, normalise, resize in-plane) and kept
in memory; every axial slice of every volume is then one sample of an epoch, with the random 2D
augmentations applied per slice. MONAI's ``GridPatchDataset`` gives the same slices but as an iterable
dataset (no global shuffle) and ``CacheDataset`` deep-copies a whole cached volume for every access, so
this small map-style dataset is written here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch.utils.data import Dataset

from .cached_volumes import apply_untracked, cache_volumes

__all__ = ["SliceDataset"]


class SliceDataset(Dataset):
    """All slices along the last spatial axis of a list of volumes, one sample per slice.

    Args:
        data: datalist entries (dicts of file paths).
        volume_transform: deterministic transform of one entry to channel-first ``(C, H, W, D)`` arrays
            under ``keys`` (run once per volume, cached).
        transform: random transform of one slice sample ``{key: (C, H, W) tensor}``, run without metadata
            tracking (:func:`~strokezoo.data.cached_volumes.apply_untracked`).
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

        self.volumes = cache_volumes(self.data, volume_transform, self.keys, num_workers)
        depths = [v[self.keys[0]].shape[-1] for v in self.volumes]
        self.index = [(i, z) for i, depth in enumerate(depths) for z in range(depth)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        v, z = self.index[i]
        volume = self.volumes[v]
        sample = {k: volume[k][..., z].clone() for k in self.keys}
        sample["case_id"] = volume["case_id"]
        return apply_untracked(self.transform, sample) if self.transform is not None else sample
