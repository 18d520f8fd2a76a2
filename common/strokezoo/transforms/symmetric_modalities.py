"""Symmetric modality augmentation (Clèrigues et al., CMPB 2020, Sec. 3.1, Fig. 1).

Each modality gets a mirrored copy in which the two hemispheres swap places, so that a small patch also sees
the tissue of the opposite hemisphere. One modality is flipped along the left–right axis and registered onto
its unflipped self with a rigid transform by default, or an affine one (12 degrees of freedom, FSL FLIRT's
default) on request (the paper uses FLIRT; here ITK's registration through SimpleITK, which loads in 0.2 s where
ITK's Python modules take 13 s: Mattes mutual information, regular-step gradient descent, two resolution levels,
centred by image moments); the same transform then maps every flipped modality onto the original grid. The flip alone would only mirror about the centre of the
matrix; the registration moves the mirror plane to the head's own mid-sagittal plane.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from ..errors import InputError
from ..io.content_cache import cached_by_content
from ..io.nifti import save_nifti

__all__ = ["left_right_axis", "mirror_transform", "symmetric_modalities", "SymmetricModalitiesd"]


def left_right_axis(affine: np.ndarray) -> int:
    """The array axis that runs most nearly along the world's left–right (x) direction."""
    return int(np.argmax(np.abs(np.asarray(affine, dtype=np.float64)[0, :3])))


def _sitk_image(array: np.ndarray, spacing: Sequence[float]):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array, np.float32).transpose(2, 1, 0)))
    image.SetSpacing([float(s) for s in spacing])
    return image


REGISTRATIONS = ("rigid", "affine")


def mirror_transform(
    image: np.ndarray, spacing: Sequence[float], axis: int, iterations: int = 200, sampling: float | None = None, seed: int = 1, registration: str = "rigid"
):
    """The ITK transform (SimpleITK) that maps ``image`` flipped along ``axis`` onto ``image``: rigid
    (``VersorRigid3DTransform``, 6 degrees of freedom) or ``registration="affine"`` (``AffineTransform``, 12, FLIRT's
    default); the same image always gives the same transform (a fixed sampling seed, ITK on one thread).

    Coordinates are the voxel grid scaled by ``spacing`` (origin 0, axes aligned), the same for both images.
    ``sampling`` is the fraction of voxels the metric is computed on (default: 400,000 voxels, kept within 5–20 %),
    drawn with ``seed`` (a positive integer: SimpleITK reads 0 as "seed from the wall clock").
    """
    import SimpleITK as sitk

    if seed < 1:
        raise ValueError(f"seed must be a positive integer (0 seeds from the clock), got {seed}")
    if np.asarray(image).ndim != 3:
        raise ValueError(f"a 3D volume is needed, got shape {np.asarray(image).shape}")
    if registration not in REGISTRATIONS:
        raise ValueError(f"registration must be one of {REGISTRATIONS}, got {registration!r}")
    with _one_itk_thread():
        fixed = _sitk_image(image, spacing)
        moving = _sitk_image(np.flip(image, axis), spacing)
        transform = sitk.CenteredTransformInitializer(fixed, moving, sitk.VersorRigid3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS)
        if registration == "affine":  # the moments initialiser is for rigid transforms: start from its centre and shift
            rigid = sitk.VersorRigid3DTransform(transform)
            transform = sitk.AffineTransform(3)
            transform.SetCenter(rigid.GetCenter())
            transform.SetTranslation(rigid.GetTranslation())
        method = sitk.ImageRegistrationMethod()
        method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
        method.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-3, numberOfIterations=iterations, relaxationFactor=0.5)
        method.SetOptimizerScalesFromPhysicalShift()
        method.SetInterpolator(sitk.sitkLinear)
        method.SetInitialTransform(transform, inPlace=True)
        if min(np.asarray(image).shape) >= 8:
            method.SetShrinkFactorsPerLevel([2, 1])
            method.SetSmoothingSigmasPerLevel([1.0, 0.0])
        else:  # a thin slab (ISLES 2018 CTP: 2 to 22 slices) cannot be halved or Gaussian-smoothed along z
            method.SetMetricUseFixedImageGradientFilter(False)
            method.SetMetricUseMovingImageGradientFilter(False)
            method.SetShrinkFactorsPerLevel([1])
            method.SetSmoothingSigmasPerLevel([0.0])
        # the metric on a fixed random subset of the voxels: 400,000 of them, but no more than 20 % (the thin slabs of
        # ISLES 2018: with 5 % the optimiser drifted off a synthetic slab) and no fewer than 5 % (a SISS volume: 8 M voxels).
        # Against 20 % on a synthetic SISS FLAIR, 5 % gave the same rotation to 1e-4 and translations within 0.004 mm,
        # in 5.9 s instead of 14.5 s (2-core CPU; benchmarks/pass_speed.py)
        if sampling is None:
            sampling = float(np.clip(400_000 / np.asarray(image).size, 0.05, 0.2))
        method.SetMetricSamplingStrategy(method.RANDOM)
        method.SetMetricSamplingPercentage(sampling, seed)
        return method.Execute(fixed, moving)


@contextmanager
def _one_itk_thread():
    """ITK on one thread: its filters' per-thread partial sums otherwise meet in a varying order, so the same image
    gave mirror transforms that differed in the 14th digit from run to run (enough to move a voxel that sits at a
    threshold; ``tests/test_symmetric_modalities.py`` checks that two runs agree)."""
    import SimpleITK as sitk

    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)


def symmetric_modalities(
    images: Mapping[str, np.ndarray],
    spacing: Sequence[float],
    affine: np.ndarray,
    reference: str | None = None,
    reference_channel: int = 0,
    registration: str = "rigid",
) -> dict[str, np.ndarray]:
    """The mirrored, re-registered copy of every image in ``images`` (all on one grid), under the same keys.

    Images are 3D ``(X, Y, Z)`` or channel-first 4D ``(C, X, Y, Z)`` (e.g. the frames of a perfusion series). The
    transform (``registration``: :func:`mirror_transform`) is estimated once, on ``images[reference]`` (default: the
    first key; its channel ``reference_channel`` when 4D), and applied to every channel of every image.
    """
    import SimpleITK as sitk

    keys = list(images)
    if not keys:
        raise ValueError("no image to mirror")
    reference = reference or keys[0]
    arrays = {k: np.asarray(images[k], dtype=np.float32) for k in keys}
    shape = arrays[reference].shape[-3:]
    for k in keys:
        if arrays[k].ndim not in (3, 4) or arrays[k].shape[-3:] != shape:
            raise ValueError(
                f"'{k}' has shape {arrays[k].shape}, '{reference}' {arrays[reference].shape}: all images must share one grid (3D, or channel-first 4D)"
            )
    ref = arrays[reference] if arrays[reference].ndim == 3 else arrays[reference][reference_channel]
    axis = left_right_axis(affine)
    transform = mirror_transform(ref, spacing, axis, registration=registration)
    fixed = _sitk_image(ref, spacing)

    def mirror(volume: np.ndarray) -> np.ndarray:
        moving = _sitk_image(np.flip(volume, axis), spacing)
        resampled = sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0)
        return sitk.GetArrayFromImage(resampled).transpose(2, 1, 0).astype(np.float32)

    return {k: mirror(v) if v.ndim == 3 else np.stack([mirror(c) for c in v]) for k, v in arrays.items()}


class SymmetricModalitiesd(MapTransform):
    """Add ``<key><postfix>``, the mirrored and re-registered copy of every modality ``key`` (channel-first,
    loaded with its affine; every channel is mirrored, e.g. all frames of a series), estimating the mirror transform
    once on channel ``reference_channel`` of ``reference_key`` (name it: the SPES release lists CBF first, whose
    asymmetry is the lesion itself).

    Registration takes seconds to a minute per case, so with ``cache_dir`` the copies are written there once
    (``<cache_dir>/<case>-<digest>/<key>.nii.gz``, atomically) and read back on later runs. The digest covers what
    the copies are computed from, each modality's voxels, shape and affine: a changed input is registered again,
    and the same case read from another path (a copy of the dataset) is not. The cache must lie outside the
    dataset: inputs are never written.

    Args:
        keys: modality keys, all on one grid.
        reference_key: the modality the transform is estimated on (default: the first key; the paper
            registers one modality and applies the transform to the rest).
        reference_channel: the channel (frame) of ``reference_key`` the transform is estimated on.
        registration: ``"rigid"`` (default) or ``"affine"`` (:func:`mirror_transform`).
        cache_dir: folder of the cached copies, or None to compute every time.
        enabled: ``False`` passes the data through unchanged (no copies): a config's switch for the augmentation.
        postfix: appended to each key for its copy.
        name_key: key of the case id (names the cache folder).
    """

    def __init__(
        self,
        keys: KeysCollection,
        reference_key: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        postfix: str = "_sym",
        name_key: str = "case_id",
        reference_channel: int = 0,
        registration: str = "rigid",
        allow_missing_keys: bool = False,
        enabled: bool = True,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.enabled = bool(enabled)
        if registration not in REGISTRATIONS:
            raise ValueError(f"registration must be one of {REGISTRATIONS}, got {registration!r}")
        if reference_key is not None and reference_key not in self.keys:
            raise ValueError(f"reference_key {reference_key!r} is not one of the keys {self.keys}")
        self.reference_key = reference_key
        self.reference_channel = reference_channel
        self.registration = registration
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.postfix = postfix
        self.name_key = name_key

    def _cache_folder(self, d: Mapping, keys: list[str]) -> Path | None:
        if self.cache_dir is None:
            return None
        h = hashlib.sha256(b"channel-last v6")  # cache format (v6: SimpleITK; v5: keyed by the reference and registration too; v4: by content)
        h.update(f"{self.reference_key or keys[0]}|{self.reference_channel}|{self.registration}|".encode())
        for k in keys:
            source = Path(str(d[k].meta.get("filename_or_obj", ""))) if hasattr(d[k], "meta") else Path()
            if source.is_file() and self.cache_dir.resolve().is_relative_to(source.resolve().parent):
                raise InputError(self.cache_dir, f"cache folder lies inside the folder of the input {source}; put it outside the dataset")
            voxels = np.ascontiguousarray(np.asarray(d[k].detach().cpu() if isinstance(d[k], torch.Tensor) else d[k], dtype=np.float32))
            affine = np.asarray(d[k].affine if hasattr(d[k], "affine") else np.eye(4), dtype=np.float64)
            h.update(f"{k}|{voxels.shape}|".encode())
            h.update(affine.tobytes())
            h.update(voxels.tobytes())
        return self.cache_dir / f"{d.get(self.name_key, 'case')}-{h.hexdigest()[:12]}"

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        if not self.enabled:
            return d
        keys = list(self.key_iterator(d))
        folder = self._cache_folder(d, keys)
        if folder is not None:
            folder = cached_by_content(folder, lambda f: all((f / f"{k}.nii.gz").is_file() for k in keys))
        if folder is not None and all((folder / f"{k}.nii.gz").is_file() for k in keys):
            # cached channel-last (X, Y, Z, C), as NIfTI stores series
            mirrored = {k: np.moveaxis(np.asarray(nib.load(folder / f"{k}.nii.gz").dataobj, dtype=np.float32), -1, 0) for k in keys}
        else:
            affine = np.asarray(d[keys[0]].affine, dtype=np.float64)
            spacing = np.sqrt((affine[:3, :3] ** 2).sum(0))
            arrays = {k: np.asarray(d[k].detach().cpu() if isinstance(d[k], torch.Tensor) else d[k], dtype=np.float32) for k in keys}
            mirrored = symmetric_modalities(arrays, spacing, affine, self.reference_key, self.reference_channel, self.registration)
            if folder is not None:
                for k, v in mirrored.items():
                    save_nifti(np.moveaxis(v, 0, -1), affine, folder / f"{k}.nii.gz", dtype=np.float32)
        for k in keys:
            out = torch.as_tensor(mirrored[k])
            d[f"{k}{self.postfix}"] = MetaTensor(out, meta=dict(d[k].meta)) if isinstance(d[k], MetaTensor) else out  # affine from meta
        return d
