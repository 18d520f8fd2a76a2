"""Balanced 3D training patches of cached volumes (Clèrigues et al., CMPB 2020, Sec. 3.3–3.4, Fig. 3).

Every case is loaded and pre-processed once; its patch centres are drawn once, when the dataset is built
(:func:`~strokezoo.data.balanced_patches.balanced_patch_centres`: half on lesion with a bounded random offset,
half on healthy brain at regular steps), so an epoch is the paper's fixed training set of patches. A sample is
the patch of every key centred on its voxel (zero outside the volume, centred as in
:class:`~strokezoo.inferers.DensePatchInferer`); lesion-centred samples then go through ``lesion_transform``
(the paper's five anatomically feasible augmentations, identical for image and label). Where a method draws its
patches anew every epoch (de Vries et al., MIDL 2021), :meth:`BalancedPatchDataset.set_epoch` redraws the centres
on the cached volumes (:class:`strokezoo.engines.RedrawPatches` calls it as each epoch starts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from torch.nn import functional as F
from torch.utils.data import Dataset

from .balanced_patches import balanced_patch_centres
from .cached_volumes import apply_untracked, cache_volumes

__all__ = ["BalancedPatchDataset"]


class BalancedPatchDataset(Dataset):
    """Patches of ``patch_size`` from every case, ``num_patches`` per case, half of them on the lesion.

    Args:
        data: datalist entries.
        volume_transform: deterministic transform of an entry to channel-first ``(C, X, Y, Z)`` ``keys`` (run
            once per case, cached): loading, symmetric modalities, normalisation.
        patch_size: patch in voxels (paper: 24×24×16).
        num_patches: patches per case (paper: 10,000).
        lesion_transform: random transform of lesion-centred samples (``{key: (C, px, py, pz)}``).
        transform: random transform of every sample, after ``lesion_transform``; both run without metadata
            tracking (:func:`~strokezoo.data.cached_volumes.apply_untracked`).
        keys: the image key and the label key, in that order; the label's first channel > 0 is the lesion.
        brain_key: key of a brain mask ``(1, X, Y, Z)`` made by ``volume_transform`` (values > 0 are brain: healthy
            centres are drawn there; :class:`strokezoo.transforms.BrainMaskd`); None draws them from the whole volume.
        lesion_offset: largest random offset of lesion-centred patches per axis (default: half the patch).
        healthy_sampling: ``"regular"`` or ``"random"`` healthy centres (:func:`balanced_patch_centres`).
        lesion_fraction: share of lesion-centred patches of a case with lesion (both papers: half).
        seed: seed of the centre draw (epoch ``e`` > 1 of :meth:`set_epoch`: the seed ``[seed, e]``).
        num_workers: threads loading the volumes.
    """

    def __init__(
        self,
        data: Sequence[dict],
        volume_transform: Callable,
        patch_size: Sequence[int] = (24, 24, 16),
        num_patches: int = 10000,
        lesion_transform: Callable | None = None,
        transform: Callable | None = None,
        keys: Sequence[str] = ("image", "label"),
        brain_key: str | None = None,
        lesion_offset: Sequence[int] | None = None,
        healthy_sampling: str = "regular",
        lesion_fraction: float = 0.5,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        self.patch_size = tuple(int(p) for p in patch_size)
        self.keys = tuple(keys)
        self.lesion_transform = lesion_transform
        self.transform = transform
        label_key = self.keys[1]
        volumes = cache_volumes(list(data), volume_transform, self.keys + ((brain_key,) if brain_key else ()), num_workers)
        pad = [n for p in reversed(self.patch_size) for n in (p // 2, p - p // 2 - 1)]
        self.num_patches, self.lesion_offset, self.healthy_sampling, self.seed = num_patches, lesion_offset, healthy_sampling, seed
        self.lesion_fraction = lesion_fraction
        self.volumes, self.masks, self.epoch = [], [], 1
        for volume in volumes:
            label = volume[label_key][0].numpy() > 0
            self.masks.append((label, volume[brain_key][0].numpy() > 0 if brain_key else np.ones_like(label)))
            # zero-padded once, so that a patch centred on voxel c starts at c
            self.volumes.append({k: F.pad(volume[k], pad) for k in self.keys} | {"case_id": volume["case_id"]})
        self._draw(np.random.default_rng(seed))

    def _draw(self, rng: np.random.Generator) -> None:
        self.index, self.lesion_counts = [], []
        for v, (label, brain) in enumerate(self.masks):
            lesion, healthy = balanced_patch_centres(
                label, brain, self.num_patches, self.patch_size, rng, self.lesion_fraction, self.lesion_offset, self.healthy_sampling
            )
            self.index += [(v, tuple(c), True) for c in lesion.tolist()] + [(v, tuple(c), False) for c in healthy.tolist()]
            self.lesion_counts.append(len(lesion))

    def set_epoch(self, epoch: int) -> None:
        """Draw the centres of ``epoch`` (1-based): epoch 1 keeps the draw made at construction; a later one draws
        with the seed ``[seed, epoch]``, so a resumed run sees the same patches. The number of samples never changes."""
        if epoch != self.epoch:
            self._draw(np.random.default_rng(self.seed if epoch <= 1 else [self.seed, epoch]))
            self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        v, (x, y, z), on_lesion = self.index[i]
        volume = self.volumes[v]
        px, py, pz = self.patch_size
        sample = {k: volume[k][:, x : x + px, y : y + py, z : z + pz].clone() for k in self.keys}
        sample["case_id"] = volume["case_id"]
        if on_lesion and self.lesion_transform is not None:
            sample = apply_untracked(self.lesion_transform, sample)
        return apply_untracked(self.transform, sample) if self.transform is not None else sample
