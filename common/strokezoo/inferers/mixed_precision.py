"""bf16 autocast and channels-last memory layout around any MONAI inferer.

MONAI's evaluators autocast only on CUDA (``torch.autocast("cuda")``), in fp16. This wrapper autocasts on the
device the inputs are on, in bf16 by default, so that the same config switch speeds up inference on a GPU and on a
CPU with bf16 matrix units (Intel AMX / AVX512-BF16; :func:`bf16_is_fast`), and it can hand the network its inputs
in channels-last layout, which oneDNN and cuDNN convolutions prefer. The network's outputs come back as float32,
so that activation, inversion and thresholding run as in fp32.

The papers ran in fp32; bf16 moves probabilities slightly (the tests bound the change at 2e-2), which moves a mask
only where a probability lies that close to the threshold. Every bundle's ``inference.json`` exposes both switches
(``amp``, ``channels_last``); docs/benchmarks.md has the figures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.inferers import Inferer
from torch import nn

__all__ = ["MixedPrecisionInferer", "bf16_is_fast", "to_float32"]


def bf16_is_fast(device: torch.device | str) -> bool:
    """Whether bf16 autocast is expected to be faster than fp32 on ``device``: a CUDA GPU that supports bf16, or a
    CPU whose oneDNN has native bf16 kernels (AMX tiles or AVX512-BF16). Elsewhere bf16 is emulated and slower."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()))
    return False


def to_float32(out: Any) -> Any:
    """``out`` with every floating-point tensor in it (also inside tuples, lists and dicts) cast to float32."""
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, (tuple, list)):
        return type(out)(to_float32(o) for o in out)
    if isinstance(out, dict):
        return {k: to_float32(v) for k, v in out.items()}
    return out


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.ndim == 4 else torch.channels_last_3d


@torch.no_grad()
def _weights_to(network: nn.Module, fmt: torch.memory_format, ndim: int) -> None:
    """The ``ndim``-dimensional parameters of ``network`` (its convolution kernels) in layout ``fmt``, in place."""
    for p in network.parameters():
        if p.ndim == ndim:
            p.data = p.data.contiguous(memory_format=fmt)


class MixedPrecisionInferer(Inferer):
    """``inferer`` run under ``torch.autocast(inputs.device.type, dtype)`` when ``amp``, and with the network's
    4-D/5-D inputs and weights in channels-last layout when ``channels_last``; outputs are float32.

    Args:
        inferer: the bundle's inferer (``SliceInferer``, ``DensePatchInferer``, ``SimpleInferer``, ...).
        amp: autocast the network calls.
        dtype: autocast dtype, a ``torch.dtype`` or its name (``"bfloat16"``, ``"float16"``).
        channels_last: convert each network input (and, once, the network's weights) to channels-last.
    """

    def __init__(self, inferer: Inferer, amp: bool = False, dtype: torch.dtype | str = torch.bfloat16, channels_last: bool = False) -> None:
        super().__init__()
        self.inferer = inferer
        self.amp = bool(amp)
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if not isinstance(self.dtype, torch.dtype) or not self.dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point torch dtype or its name, got {dtype!r}")
        self.channels_last = bool(channels_last)
        self._converted: set[tuple[int, torch.memory_format]] = set()

    def _network_call(self, network: Callable[..., Any]) -> Callable[..., Any]:
        def call(x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if self.channels_last and x.ndim in (4, 5):
                fmt = _memory_format(x)
                if isinstance(network, nn.Module) and (id(network), fmt) not in self._converted:
                    _weights_to(network, fmt, x.ndim)
                    self._converted.add((id(network), fmt))
                x = x.contiguous(memory_format=fmt)
            return to_float32(network(x, *args, **kwargs))

        return call

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not (self.amp or self.channels_last):
            return self.inferer(inputs, network, *args, **kwargs)
        with torch.autocast(inputs.device.type, dtype=self.dtype, enabled=self.amp):
            return to_float32(self.inferer(inputs, self._network_call(network), *args, **kwargs))
