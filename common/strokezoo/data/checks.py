"""Check a batch of cases before a bundle runs on it: usable cases go on, the others are listed at the end.

Every bundle's inference (and evaluation) reads its cases through :class:`InputCheck`. Each file is opened
with :func:`~strokezoo.io.nifti.load_nifti`, so a zero-byte, truncated or non-NIfTI file, NaN/Inf or
all-zero voxels, a 2D image, a header that claims an absurd shape, a series with too few frames, or a label
that is not a mask is caught with the file's name and the problem, before any network runs. The
modalities of a case must share its grid: a difference within ``grid_atol_mm`` (a rounding error in a header)
is accepted with a warning, a larger one (a real shift, another spacing or shape) refuses the case.

Handled rather than refused (and said so in the log), as :mod:`strokezoo.data.modalities` reads every file: a
series stored 5-D ``(x, y, z, 1, t)`` is read as 4D; a DWI stored as two or more volumes (b0 and b1000) is read
as its last volume.

:func:`check_entry` is the one case checker: ``strokezoo datalist`` runs it on every case it lists, and
:class:`InputCheck` on every case a bundle runs on.

One bad case does not stop the batch: :attr:`InputCheck.usable` holds the rest, and :meth:`InputCheck.report`
(a bundle's ``finalize``) raises after the run, listing every refused case, so the run exits non-zero.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError, InputsRefused
from ..io.nifti import load_nifti, same_grid
from .modalities import SERIES_KEYS, load_modality
from .stacked import channel_slices, stack_layout

__all__ = ["InputCheck", "check_entry"]

logger = logging.getLogger(__name__)

#: Affine differences (mm) below this are float rounding, not worth a warning.
_ROUNDING_MM = 1e-5


def check_entry(
    entry: dict,
    keys: Sequence[str],
    stacked_key: str = "image",
    min_frames: int = 2,
    grid_atol_mm: float = 1e-3,
    own_grid: Sequence[str] = (),
    name: str | None = None,
) -> list[str]:
    """Problems of one case (empty when usable): every file of ``keys`` opened and checked
    (:func:`~strokezoo.data.modalities.load_modality`), and all of them on one grid. Keys without a file of their own
    come from the stacked study under ``stacked_key`` (MONAI Label's ``{"image": stack, "label": file}``), whose
    record must name them (:func:`~strokezoo.data.stacked.stack_layout`) and whose grid counts as theirs.

    The grid of reference is the label's when ``keys`` hold one, else the first key's; ``own_grid`` keys (a
    release's FLAIR or NCCT on a grid of their own) are exempt. Warnings (rounding differences, multi-volume DWI)
    are logged. ``name`` says whose files are missing (default: the entry's ``case_id``).
    """
    own = [k for k in keys if k in entry]
    rest = [k for k in keys if k not in entry]
    problems, volumes = [], {}
    if rest:
        if not isinstance(entry.get(stacked_key), (str, os.PathLike)):
            return [f"{name or entry.get('case_id', 'case')}: no file for {', '.join(rest)}"]
        path = str(entry[stacked_key])
        try:
            recorded, _ = stack_layout(path, rest)
            series = [k for k in recorded if k in SERIES_KEYS]
            stack = load_nifti(path, "series" if (len(recorded) > 1 or series) else "image", min_frames=1)
            n = stack.data.shape[3] if stack.data.ndim == 4 else 1
            slices = channel_slices(recorded, n, path)
            if series and series[0] in rest and slices[series[0]].stop - slices[series[0]].start < min_frames:
                raise InputError(
                    path, f"the {series[0]} series has {slices[series[0]].stop - slices[series[0]].start} frames, at least {min_frames} are needed"
                )
        except (InputError, ValueError) as e:
            return [str(e)]
        volumes[stacked_key] = stack
    for k in own:
        try:
            volumes[k] = load_modality(str(entry[k]), k, min_frames)
        except InputError as e:
            problems.append(str(e))
    if not volumes:
        return problems
    ref_key = "label" if "label" in volumes else next((k for k in volumes if k not in own_grid), next(iter(volumes)))
    ref = volumes[ref_key]
    for k, v in volumes.items():
        if k == ref_key or k in own_grid:
            continue
        diff = same_grid(v, ref, grid_atol_mm)
        if diff:
            problems.append(f"{v.path}: {diff}")
        elif (d := float(np.abs(v.affine - ref.affine).max())) > _ROUNDING_MM:
            logger.warning(f"{v.path}: affine differs from that of {ref.path} by {d:.2g} mm (within {grid_atol_mm} mm: read on its grid)")
    return problems


class InputCheck:
    """The cases of a run, checked (:func:`check_entry`) before it starts.

    Args:
        entries: datalist entries (per-modality paths) or ``{"image": stacked study}`` items.
        keys: the modality (and, for evaluation, label) keys the bundle loads.
        output_dir: where the run writes; refused when it lies inside ``input_root``.
        input_root: the dataset folder, which nothing may be written into.
        min_frames: fewest frames a series may have.
        grid_atol_mm: affine tolerance between a case's files.
    """

    def __init__(
        self,
        entries: Sequence[dict],
        keys: Sequence[str],
        output_dir: str | os.PathLike | None = None,
        input_root: str | os.PathLike | None = None,
        stacked_key: str = "image",
        min_frames: int = 2,
        grid_atol_mm: float = 1e-3,
    ) -> None:
        if output_dir is not None and input_root is not None:
            out, root = Path(output_dir).resolve(), Path(input_root).resolve()
            if root.is_dir() and out.is_relative_to(root):
                raise InputError(out, f"output folder is inside the input folder {root}; nothing may be written there")
        self.usable: list[dict] = []
        self.failures: list[str] = []
        for entry in entries:
            problems = check_entry(entry, list(keys), stacked_key, min_frames, grid_atol_mm)
            if problems:
                self.failures.append(f"{entry.get('case_id') or entry.get(stacked_key)}: " + "; ".join(problems))
                logger.error(f"refused {self.failures[-1]}")
            else:
                self.usable.append(entry)
        if self.failures:
            logger.error(f"{len(self.failures)} of {len(entries)} cases refused; the other {len(self.usable)} go on")

    def report(self) -> None:
        """Raise :class:`InputsRefused` listing the refused cases, if any (call it when the run is over)."""
        if self.failures:
            raise InputsRefused(f"{len(self.failures)} case(s) refused:\n  " + "\n  ".join(self.failures))
