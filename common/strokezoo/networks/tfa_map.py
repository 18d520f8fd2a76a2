"""The transformer-generated attention map, TFA (de Vries et al., MIDL 2021, Sec. 2 and Fig. 1).

The transformer classifies the central ``step × step`` pixels of a patch (paper: the 4 central pixels). Applied
to overlapping patches every ``step`` pixels, it gives every pixel of the slice exactly one infarct probability.
The slice is zero-padded so that the border pixels are central pixels of some patch too.

All patches of a slice are embedded by one strided convolution (:meth:`TFATransformer.embed`) and their token
sequences go through the encoder ``batch_size`` at a time, on the slice's device: the same numbers as the
per-patch loop (a test checks it), without cutting out the patches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F

if TYPE_CHECKING:
    from .tfa_transformer import TFATransformer

__all__ = ["tfa_map", "tfa_padding"]


def tfa_padding(size: int, patch_size: int, step: int) -> tuple[int, int, int]:
    """``(before, after, blocks)`` along one axis of ``size`` pixels: block ``i`` (pixels ``[i·step, i·step + step)``)
    is the centre of the patch that starts at padded pixel ``i·step``."""
    before = patch_size // 2 - step // 2
    blocks = -(-size // step)
    after = (blocks - 1) * step + patch_size - size - before
    return before, after, blocks


@torch.no_grad()
def tfa_map(transformer: TFATransformer, series: torch.Tensor, step: int = 2, batch_size: int = 4096) -> torch.Tensor:
    """Infarct probability of every pixel of ``series`` ``(B, C·T, H, W)`` (axial slices of the pre-processed
    series): ``(B, 1, H, W)``, from the transformer applied to the patch centred on each ``step × step`` block.

    The transformer should be in eval mode (dropout off); ``batch_size`` patches go through the encoder at a time.
    """
    p = transformer.patch_size
    if not 1 <= step <= p:
        raise ValueError(f"step must be between 1 and the patch size {p}, got {step}")
    b, _, h, w = series.shape
    top, bottom, nh = tfa_padding(h, p, step)
    left, right, nw = tfa_padding(w, p, step)
    padded = F.pad(series, (left, right, top, bottom))
    out = series.new_empty(b, nh * nw)
    for i in range(b):
        tokens = transformer.embed(padded[i : i + 1], stride=step).reshape(nh * nw, transformer.frames, -1)
        for start in range(0, nh * nw, batch_size):
            logits = transformer.classify(tokens[start : start + batch_size])
            out[i, start : start + batch_size] = torch.softmax(logits.float(), dim=1)[:, 1]  # fp32 under autocast too
    blocks = out.view(b, 1, nh, nw)
    return blocks.repeat_interleave(step, dim=2).repeat_interleave(step, dim=3)[:, :, :h, :w]
