"""Part B's input volume (de Vries et al., MIDL 2021, Sec. 2, Fig. 1): every axial slice of the pre-processed
CTP series replaced by ``[TFA, CT, MI]``, the transformer-generated attention map, the first frame and the
maximum-intensity frame (:func:`strokezoo.networks.unet_inputs`). Used to train the U-Net on the maps of a
trained, frozen transformer; at inference :class:`strokezoo.networks.TFAUNet` does the same slice by slice.

A TFA map costs minutes per study on a CPU, so with ``cache_dir`` each volume is computed once and kept on disk,
under a key of everything that changes it: the series' voxels (which carry every earlier step: resampling, HU
window, the mirror registration), the transformer's weights and settings, and the map's step. A second run, or
another rank, with the same key reads the file; a changed setting or new part-A weights compute a new one.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from ..errors import InputError
from ..io.atomic import atomic_path
from ..io.content_cache import cached_by_content
from ..networks.tfa_map import tfa_map
from ..networks.tfa_transformer import TFATransformer
from ..networks.tfa_unet import unet_inputs

__all__ = ["TFAInputsd", "module_fingerprint"]

logger = logging.getLogger(__name__)


def module_fingerprint(module: torch.nn.Module) -> str:
    """A hash of ``module``'s weights and of the settings its submodules keep (their numbers, flags and names), so
    that new weights or another architecture give another key."""
    h = hashlib.sha256()
    for name, sub in module.named_modules():
        simple = {k: v for k, v in vars(sub).items() if not k.startswith("_") and isinstance(v, (int, float, bool, str, tuple))}
        h.update(f"{name}|{type(sub).__name__}|{sorted(simple.items())!r}|".encode())
    for name, tensor in module.state_dict().items():
        h.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return h.hexdigest()


class TFAInputsd(MapTransform):
    """Add ``name``: the ``(3, X, Y, Z)`` volume ``[TFA, CT, MI]`` of the series ``(C·T, X, Y, Z)`` under ``keys``.

    Args:
        keys: the pre-processed series (channel ``c·T + t`` = frame ``t`` of channel ``c``; channel group 0 the series).
        transformer: the part-A network (its architecture).
        checkpoint: its trained weights (a state dict, loaded with ``weights_only=True``); None keeps ``transformer`` as given.
        name: key of the output volume.
        step, batch_size: of :func:`strokezoo.networks.tfa_map`.
        device: where the transformer runs (default: CPU).
        cache_dir: folder of the computed volumes (module docstring), or None to compute every time.
        name_key: key of the case id (names the cached file).
    """

    def __init__(
        self,
        keys: KeysCollection,
        transformer: TFATransformer,
        checkpoint: str | os.PathLike | None = None,
        name: str = "image",
        step: int = 2,
        batch_size: int = 4096,
        device: str | torch.device | None = None,
        allow_missing_keys: bool = False,
        cache_dir: str | os.PathLike | None = None,
        name_key: str = "case_id",
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.device = torch.device(device or "cpu")
        if checkpoint is not None:
            if not os.path.isfile(checkpoint):
                raise InputError(checkpoint, "transformer checkpoint not found: train part A first (configs/train_transformer.json, same fold)")
            transformer.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
        self.transformer = transformer.to(self.device).eval()
        self.name, self.step, self.batch_size = name, step, batch_size
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.name_key = name_key
        self._network_key = module_fingerprint(self.transformer) if cache_dir is not None else ""

    def _cache_file(self, d, plain: torch.Tensor) -> Path | None:
        if self.cache_dir is None:
            return None
        h = hashlib.sha256(f"tfa v1|{self._network_key}|step={self.step}|{tuple(plain.shape)}|".encode())
        h.update(np.ascontiguousarray(plain.detach().cpu().numpy(), dtype=np.float32).tobytes())
        return self.cache_dir / f"{d.get(self.name_key, 'case')}-{h.hexdigest()[:16]}.pt"

    def __call__(self, data):
        d = dict(data)
        for k in self.key_iterator(d):
            series = d[k]
            plain = series.as_tensor() if isinstance(series, MetaTensor) else torch.as_tensor(series)
            cached = self._cache_file(d, plain)
            if cached is not None:
                cached = cached_by_content(cached, Path.is_file)
            if cached is not None and cached.is_file():
                out = torch.load(cached, map_location="cpu", weights_only=True)
            else:
                slices = plain.to(self.device, torch.float32).permute(3, 0, 1, 2)  # (Z, C·T, X, Y)
                tfa = tfa_map(self.transformer, slices, self.step, self.batch_size)
                out = unet_inputs(slices, tfa, self.transformer.frames).permute(1, 2, 3, 0).cpu().contiguous()
                if cached is not None:
                    with atomic_path(cached) as tmp:
                        torch.save(out, tmp)
                    logger.info(f"{d.get(self.name_key, 'case')}: TFA map computed, kept in {cached}")
            d[self.name] = MetaTensor(out, meta=dict(series.meta)) if isinstance(series, MetaTensor) else out
        return d
