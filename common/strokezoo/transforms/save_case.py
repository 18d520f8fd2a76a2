"""Write a per-case output volume as NIfTI, atomically, named after the case and never over an input.

MONAI's ``SaveImaged`` names files after the first input file and writes in place; bundle outputs here are
named ``<case_id><postfix>.nii.gz`` so that ``strokezoo evaluate`` finds them, and go through
:func:`strokezoo.io.nifti.save_nifti` (temporary file, then rename).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..errors import InputError
from ..io.nifti import save_nifti

__all__ = ["SaveCased"]


class SaveCased(MapTransform):
    """Save ``d[key]`` (channel-first, one channel; a MetaTensor carrying its affine) to ``output_dir``.

    Args:
        keys: keys to save (one file per key and case).
        output_dir: folder of the outputs; created if missing.
        postfix: appended to the case id (e.g. ``"_prob"``); with several keys, one postfix per key
            (``<case>_adc.nii.gz``, ``<case>_dwi.nii.gz``), so that no key's file overwrites another's.
        dtype: on-disk dtype (``uint8`` for masks, ``float32`` for probabilities).
        name_key: key of the case id in the data dictionary.
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str | os.PathLike,
        postfix: str | Sequence[str] = "",
        dtype: str = "uint8",
        name_key: str = "case_id",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        postfixes = [postfix] if isinstance(postfix, str) else list(postfix)
        if len(postfixes) == 1 and len(self.keys) > 1:
            raise ValueError(f"{len(self.keys)} keys {list(self.keys)} would all be saved as <case>{postfixes[0]}.nii.gz; give one postfix per key")
        if len(postfixes) != len(self.keys):
            raise ValueError(f"{len(postfixes)} postfixes for {len(self.keys)} keys {list(self.keys)}")
        self.postfixes = dict(zip(self.keys, postfixes))
        self.dtype = np.dtype(dtype)
        self.name_key = name_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        case_id = str(d.get(self.name_key) or "")
        if not case_id:
            raise KeyError(f"no '{self.name_key}' in the data: cannot name the output")
        inputs = {Path(v).resolve() for v in d.values() if isinstance(v, (str, os.PathLike)) and str(v).endswith((".nii", ".nii.gz"))}
        for key in self.key_iterator(d):
            x = d[key]
            affine = np.asarray(x.affine.cpu() if hasattr(x, "affine") else np.eye(4), dtype=np.float64)
            arr = x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
            if arr.ndim == 4:
                if arr.shape[0] != 1:
                    raise ValueError(f"{case_id}: '{key}' has {arr.shape[0]} channels; save one channel per file")
                arr = arr[0]
            path = self.output_dir / f"{case_id}{self.postfixes[key]}.nii.gz"
            if path.resolve() in inputs:
                raise InputError(path, "is an input of this case; refusing to write over it")
            save_nifti(arr, affine, path, dtype=self.dtype)
        return d
