"""Stacked studies: the modalities of one case in a single multi-channel NIfTI, in a bundle's input order.

MONAI Label (and many PACS bridges) hand a bundle one image per request, while every strokezoo bundle reads
several modalities. A stacked study holds them all on the case's grid along the 4th axis:

* channels follow the bundle's load keys (its ``inference.json``); a 3D modality is one channel, a 4D series
  (:data:`~strokezoo.data.modalities.SERIES_KEYS`: ``ctp``, ``pwi``) keeps all its frames, so a stack holds at
  most one series and the series' frame count is whatever the other modalities leave;
* the header's ``descrip`` records the keys (``strokezoo channels: adc,ttp,tmax``), so a stack made for
  another bundle is refused by name rather than read with its channels swapped;
* voxels are stored as float32 (the dtype the bundles load every modality to), the affine is the case's.

:func:`stack_case` writes one, :func:`stack_cases` a folder's worth (``strokezoo stack``); :func:`channel_slices` says which channels of a stack
belong to which key (``strokezoo.transforms.LoadModalitiesd`` reads either form).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import InputError
from ..io.atomic import atomic_path
from ..io.nifti import same_grid
from .modalities import SERIES_KEYS, load_modality

__all__ = ["DESCRIP_PREFIX", "channel_slices", "stack_layout", "stacked_keys", "stack_case", "stack_cases"]

DESCRIP_PREFIX = "strokezoo channels: "


def channel_slices(keys: Sequence[str], n_channels: int, source: str | os.PathLike) -> dict[str, slice]:
    """Channels of each of ``keys`` in a stack of ``n_channels`` channels read from ``source``.

    Raises:
        InputError: naming ``source`` when the channel count does not fit ``keys``.
        ValueError: when ``keys`` hold more than one series (a stack cannot tell their frames apart).
    """
    series = [k for k in keys if k in SERIES_KEYS]
    if len(series) > 1:
        raise ValueError(f"a stack holds at most one series; {series} are all series")
    fixed = len(keys) - len(series)
    if series:
        frames = n_channels - fixed
        if frames < 1:
            raise InputError(source, f"has {n_channels} channels; {', '.join(keys)} need at least {fixed + 1}")
    elif n_channels != fixed:
        raise InputError(source, f"has {n_channels} channels; expected {fixed}, one per modality ({', '.join(keys)})")
    out, start = {}, 0
    for k in keys:
        n = frames if k in SERIES_KEYS else 1
        out[k] = slice(start, start + n)
        start += n
    return out


def stacked_keys(path: str | os.PathLike) -> list[str] | None:
    """The keys a stack's header records, or ``None`` for a multi-channel NIfTI that strokezoo did not write."""
    descrip = nib.load(str(path)).header["descrip"].tobytes().split(b"\0")[0].decode("ascii", "replace")
    if not descrip.startswith(DESCRIP_PREFIX):
        return None
    return [k.strip() for k in descrip[len(DESCRIP_PREFIX) :].split(",") if k.strip()]


def stack_layout(path: str | os.PathLike, needed: Sequence[str], optional: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """The keys the stack at ``path`` holds, in channel order, and which of ``needed`` + ``optional`` to take from it.

    A stack strokezoo wrote records its keys, and its channels are taken by name: it may hold more keys than
    ``needed`` (a training stack with the pseudo-DWI bundle's DWI serves inference too), never fewer. A
    multi-channel NIfTI without that record is read as ``needed`` + ``optional``, in that order.

    Raises:
        InputError: naming ``path`` when the stack's record lacks one of ``needed`` (a stack made for another bundle).
    """
    recorded = stacked_keys(path)
    if recorded is None:
        return [*needed, *optional], [*needed, *optional]
    absent = [k for k in needed if k not in recorded]
    if absent:
        raise InputError(
            path,
            f"is a stack of {', '.join(recorded)}; this bundle reads {', '.join(needed)} from it (missing: {', '.join(absent)}; run `strokezoo stack` for it)",
        )
    return recorded, [k for k in (*needed, *optional) if k in recorded]


def stack_case(images: Mapping[str, str | os.PathLike], keys: Sequence[str], out: str | os.PathLike, grid_atol_mm: float = 1e-3) -> Path:
    """Write the modalities ``images[k]`` for ``k`` in ``keys`` as one stacked study at ``out`` (atomically).

    Every modality must lie on the first one's grid (shape, and affine within ``grid_atol_mm``).

    Raises:
        InputError: naming the file: a modality missing from ``images``, unreadable or off the grid.
    """
    out = Path(out)
    missing = [k for k in keys if k not in images]
    if missing:
        raise InputError(out, f"cannot stack: no file for {', '.join(missing)} (have {', '.join(images) or 'none'})")
    channel_slices(keys, len(keys) + (1 if any(k in SERIES_KEYS for k in keys) else 0), out)  # at most one series
    volumes = [load_modality(images[k], k, min_frames=1, allow_zero=True) for k in keys]
    for v in volumes[1:]:
        diff = same_grid(v, volumes[0], grid_atol_mm)
        if diff:
            raise InputError(v.path, diff)
    inputs = {Path(v.path).resolve() for v in volumes}
    if out.resolve() in inputs:
        raise InputError(out, "is one of the modalities being stacked; refusing to write over it")
    data = np.concatenate([v.data.reshape(*v.spatial_shape, -1).astype(np.float32) for v in volumes], axis=3)
    img = nib.Nifti1Image(data, volumes[0].affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((*volumes[0].zooms, 1.0))
    descrip = DESCRIP_PREFIX + ",".join(keys)
    if len(descrip) > 79:
        raise ValueError(f"too many keys to record in the header: {descrip!r}")
    img.header["descrip"] = descrip.encode("ascii")
    with atomic_path(out) as tmp:
        nib.save(img, str(tmp))
    return out


def stack_cases(root: str | os.PathLike, keys: Sequence[str], out_dir: str | os.PathLike, layout: str = "auto") -> tuple[list[Path], list[str]]:
    """Stack every case found under ``root`` (a release folder, or one case's folder) into ``out_dir/<case_id>.nii.gz``.

    Returns the stacks written and the failures (``"<case>: <problem>"``); a failing case does not stop the others.
    """
    from .layouts import detect_layout, discover_cases

    root, out_dir = Path(root), Path(out_dir)
    if out_dir.resolve().is_relative_to(root.resolve()):
        raise InputError(out_dir, f"is inside the input folder {root}; write the stacks elsewhere")
    cases = discover_cases(root, detect_layout(root) if layout == "auto" else layout)
    if not cases:
        raise InputError(root, "no case found")
    written, failures = [], []
    for case in cases:
        try:
            written.append(stack_case(case.images, keys, out_dir / f"{case.case_id}.nii.gz"))
        except (InputError, ValueError) as e:
            failures.append(f"{case.case_id}: {e}")
    return written, failures
