"""The one load transform of every bundle: a case's modalities from their own files or from one stacked study.

Training, validation, inference and evaluation all read files with :class:`LoadModalitiesd`, so one file gives
one tensor whichever config reads it (the shapes are those of :mod:`strokezoo.data.modalities`; stacks:
:mod:`strokezoo.data.stacked`)."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Hashable, Mapping

from monai.config import KeysCollection
from monai.transforms import LoadImage, MapTransform

from ..data.modalities import to_channels
from ..data.stacked import channel_slices, stack_layout
from ..errors import InputError

__all__ = ["LoadModalitiesd"]


def _stem(path: str | os.PathLike) -> str:
    name = os.path.basename(os.fspath(path))
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _quiet_load_image(**kwargs) -> LoadImage:
    """MONAI's ``LoadImage(**kwargs)``, built without the warnings of its NvImgCodecPydicomReader: with pydicom
    installed (``strokezoo segment`` reads DICOM headers with it), LoadImage builds that reader too, which warns on
    every construction that its GPU decoder is missing. The inputs here are NIfTI files, read by NibabelReader."""
    plugin_log = logging.getLogger("monai.data.nvimgcodec_pydicom_plugin")
    level = plugin_log.level
    plugin_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="NvImgCodecPydicomReader")
            return LoadImage(**kwargs)
    finally:
        plugin_log.setLevel(level)


class LoadModalitiesd(MapTransform):
    """Fill ``keys`` with channel-first images, from per-modality files or from one stacked study.

    * Per-modality input (a datalist entry): every key holds a path; each is loaded as
      ``LoadImaged(keys, image_only=True, ensure_channel_first=True)`` would, so the two paths are
      interchangeable for 3D files. A series stored 5-D ``(x, y, z, 1, t)`` becomes ``(t, x, y, z)``; a DWI stored as
      several volumes keeps its last (:func:`strokezoo.data.modalities.to_channels`). Labels load like any 3D file.
    * Stacked input (MONAI Label's single image, or ``{"image": "study.nii.gz"}``): ``stacked_key`` holds the
      path of a multi-channel NIfTI; each key without a file of its own gets its channels (a 3D modality one, a
      series its frames) as a view of the loaded stack, with the stack's affine. A stack strokezoo wrote is read
      by the names its header records (:func:`~strokezoo.data.stacked.stack_layout`): it may hold more keys than
      these, and one that lacks a key is refused by name; another multi-channel NIfTI is read in ``keys``' order.
      ``name_key`` (the case id the bundles name their outputs by) defaults to the file name without ``.nii.gz``.
    * Both (MONAI Label's training items, ``{"image": stack, "label": label file}``): the keys with a file of their
      own are loaded from it, the others from the stack. With ``allow_missing_keys``, a key neither has is left out.

    This is not a ``LoadImaged`` subclass on purpose: MONAI Label wraps those to read ``keys`` directly.

    Args:
        keys: the modality keys, in the bundle's channel order.
        stacked_key: key of a stacked study's path.
        name_key: key of the case id.
        dtype: voxel dtype after loading.
        allow_missing_keys: leave out a key that has neither a file nor a channel of the stack.
    """

    def __init__(self, keys: KeysCollection, stacked_key: str = "image", name_key: str = "case_id", dtype=None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.stacked_key = stacked_key
        self.name_key = name_key
        kwargs = {} if dtype is None else {"dtype": dtype}
        self.loader = _quiet_load_image(image_only=True, ensure_channel_first=True, **kwargs)

    def _one(self, key: str, path: str | os.PathLike):
        return to_channels(self.loader(path), key)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        own = [k for k in self.keys if k in d]
        rest = [k for k in self.keys if k not in d]
        path = d.get(self.stacked_key)
        for k in own:
            d[k] = self._one(k, d[k])
        if not rest or (self.allow_missing_keys and own and not isinstance(path, (str, os.PathLike))):
            return d
        if not isinstance(path, (str, os.PathLike)):
            raise KeyError(
                f"{d.get(self.name_key, 'case')}: needs a file for each of {', '.join(self.keys)} "
                f"(missing: {', '.join(rest)}) or one stacked NIfTI under '{self.stacked_key}'"
            )
        if self.allow_missing_keys:
            recorded, wanted = stack_layout(path, [], rest)
        else:
            recorded, wanted = stack_layout(path, rest)
        stack = self.loader(path)
        if stack.ndim != 4:
            raise InputError(path, f"expected a stacked study (x, y, z, channel), loaded shape {tuple(stack.shape[1:])}")
        channels = channel_slices(recorded, stack.shape[0], path)
        for k in wanted:
            d[k] = stack[channels[k]]
        d.setdefault(self.name_key, _stem(path))
        return d
