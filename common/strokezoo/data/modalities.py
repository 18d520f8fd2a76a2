"""The modality registry: what each datalist key holds, and how a file of it is read.

Every part that reads a case asks this module, not a list of its own: the release layouts map their file
tokens onto these keys, ``strokezoo datalist`` and the bundles' input check open files with
:func:`load_modality`, and the load transform (:class:`strokezoo.transforms.LoadModalitiesd`) shapes tensors
with :func:`to_channels`. So one file gives one tensor whichever way it is read.

Three kinds of key:

* ``image``: one 3D volume, one channel;
* ``series``: a 4D time series (CTP, DSC-PWI), its frames as channels; a file stored 5-D ``(x, y, z, 1, t)``
  (as some exports write a series) is read as 4D;
* ``label``: a mask. ``label`` is the reference; ``label_<rater>[_<modality>]`` are further raters' masks.

A ``multi_volume`` image (DWI) may arrive as two or more volumes (b0 ... b1000); its last volume, the
highest b-value by the convention of the ISLES releases and of scanners' exports, is used.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from typing import Literal

from ..errors import InputError
from ..io.nifti import NiftiVolume, load_nifti

__all__ = ["Modality", "MODALITIES", "SERIES_KEYS", "MULTI_VOLUME_KEYS", "is_label", "kind_of", "label_key", "load_modality", "to_channels"]

logger = logging.getLogger(__name__)

Kind = Literal["image", "series", "label"]


@dataclass(frozen=True)
class Modality:
    """A datalist key: its kind, what it holds, and whether it may arrive as several volumes."""

    key: str
    kind: Kind
    description: str
    multi_volume: bool = False


MODALITIES: dict[str, Modality] = {
    m.key: m
    for m in (
        Modality("flair", "image", "FLAIR MRI"),
        Modality("t1", "image", "T1-weighted MRI"),
        Modality("t1c", "image", "contrast-enhanced T1-weighted MRI"),
        Modality("t2", "image", "T2-weighted MRI"),
        Modality("dwi", "image", "diffusion-weighted MRI (trace, b = 1000)", multi_volume=True),
        Modality("adc", "image", "apparent diffusion coefficient map"),
        Modality("ct", "image", "non-contrast CT (ISLES 2018's slabs)"),
        Modality("ncct", "image", "non-contrast CT"),
        Modality("cta", "image", "CT angiography"),
        Modality("cbf", "image", "cerebral blood flow map"),
        Modality("cbv", "image", "cerebral blood volume map"),
        Modality("rcbf", "image", "relative cerebral blood flow map"),
        Modality("rcbv", "image", "relative cerebral blood volume map"),
        Modality("mtt", "image", "mean transit time map"),
        Modality("tmax", "image", "time-to-maximum of the residue function map"),
        Modality("ttp", "image", "time-to-peak map"),
        Modality("pwi", "series", "4D dynamic-susceptibility-contrast perfusion MRI"),
        Modality("ctp", "series", "4D CT perfusion"),
        Modality("label", "label", "the reference lesion mask"),
    )
}

#: Keys holding 4D series.
SERIES_KEYS = frozenset(k for k, m in MODALITIES.items() if m.kind == "series")
#: Keys that may arrive as several volumes, of which the last is used.
MULTI_VOLUME_KEYS = frozenset(k for k, m in MODALITIES.items() if m.multi_volume)


def is_label(key: str) -> bool:
    """Whether ``key`` names a mask: ``label`` (the reference) or ``label_<rater>[_<modality>]``."""
    return key == "label" or key.startswith("label_")


def label_key(*qualifiers: str) -> str:
    """The key of a further rater's mask, e.g. ``label_key("r2", "adc") == "label_r2_adc"``; ``label`` without qualifiers."""
    return "_".join(["label", *(q.lower() for q in qualifiers if q)])


def kind_of(key: str) -> Kind:
    """The kind of ``key``.

    Raises:
        KeyError: for a key the registry does not know, naming the known ones.
    """
    if is_label(key):
        return "label"
    if key not in MODALITIES:
        raise KeyError(f"unknown modality key {key!r}; known: {', '.join(MODALITIES)} and label_<rater>")
    return MODALITIES[key].kind


def load_modality(path: str | os.PathLike, key: str, min_frames: int = 2, allow_zero: bool = False) -> NiftiVolume:
    """Open and check the file of ``key`` (:func:`~strokezoo.io.nifti.load_nifti` with the key's kind).

    A multi-volume modality stored as several volumes is accepted with a warning and returned as its last volume.
    """
    kind = kind_of(key)
    if kind == "series":
        return load_nifti(path, "series", min_frames=min_frames, allow_zero=allow_zero)
    if kind == "label":
        return load_nifti(path, "label")
    try:
        return load_nifti(path, "image", allow_zero=allow_zero)
    except InputError as e:
        if key not in MULTI_VOLUME_KEYS or "found a series" not in e.problem:
            raise
    volume = load_nifti(path, "series", min_frames=2, allow_zero=allow_zero)
    logger.warning(f"{path}: {key} stored as {volume.data.shape[3]} volumes; the last one (highest b-value) is used")
    return replace(volume, data=volume.data[..., -1])


def to_channels(image, key: str):
    """A channel-first image of ``key`` as loaded (``LoadImage(ensure_channel_first=True)``), in the key's shape:
    a series stored 5-D, ``(t, x, y, z, 1)``, becomes ``(t, x, y, z)``; a multi-volume modality keeps its last volume."""
    kind = kind_of(key)
    if kind == "series" and image.ndim == 5 and image.shape[-1] == 1:
        return image[..., 0]
    if key in MULTI_VOLUME_KEYS and image.shape[0] > 1:
        return image[-1:]
    return image
