"""Part B's input volume (de Vries et al., MIDL 2021, Sec. 2, Fig. 1): every axial slice of the pre-processed
CTP series replaced by ``[TFA, CT, MI]``, the transformer-generated attention map, the first frame and the
maximum-intensity frame (:func:`strokezoo.networks.unet_inputs`). Used to train the U-Net on the maps of a
trained, frozen transformer; at inference :class:`strokezoo.networks.TFAUNet` does the same slice by slice.
"""

from __future__ import annotations

import os

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from ..errors import InputError
from ..networks.tfa_map import tfa_map
from ..networks.tfa_transformer import TFATransformer
from ..networks.tfa_unet import unet_inputs

__all__ = ["TFAInputsd"]


class TFAInputsd(MapTransform):
    """Add ``name``: the ``(3, X, Y, Z)`` volume ``[TFA, CT, MI]`` of the series ``(C·T, X, Y, Z)`` under ``keys``.

    Args:
        keys: the pre-processed series (channel ``c·T + t`` = frame ``t`` of channel ``c``; channel group 0 the series).
        transformer: the part-A network (its architecture).
        checkpoint: its trained weights (a state dict, loaded with ``weights_only=True``); None keeps ``transformer`` as given.
        name: key of the output volume.
        step, batch_size: of :func:`strokezoo.networks.tfa_map`.
        device: where the transformer runs (default: CPU).
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
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.device = torch.device(device or "cpu")
        if checkpoint is not None:
            if not os.path.isfile(checkpoint):
                raise InputError(checkpoint, "transformer checkpoint not found: train part A first (configs/train_transformer.json, same fold)")
            transformer.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
        self.transformer = transformer.to(self.device).eval()
        self.name, self.step, self.batch_size = name, step, batch_size

    def __call__(self, data):
        d = dict(data)
        for k in self.key_iterator(d):
            series = d[k]
            plain = series.as_tensor() if isinstance(series, MetaTensor) else torch.as_tensor(series)
            slices = plain.to(self.device, torch.float32).permute(3, 0, 1, 2)  # (Z, C·T, X, Y)
            tfa = tfa_map(self.transformer, slices, self.step, self.batch_size)
            out = unet_inputs(slices, tfa, self.transformer.frames).permute(1, 2, 3, 0).cpu().contiguous()
            d[self.name] = MetaTensor(out, meta=dict(series.meta)) if isinstance(series, MetaTensor) else out
        return d
