"""MixedPrecisionInferer: bf16 autocast and channels-last around the bundles' inferers, against the fp32 result."""

from __future__ import annotations

import pytest
import torch
from monai.inferers import SimpleInferer, SliceInferer
from torch import nn

from strokezoo.inferers import DensePatchInferer, MixedPrecisionInferer, bf16_is_fast, to_float32
from strokezoo.networks import CrossAttentionUNet


class _Probe(nn.Module):
    """A convolution that records the dtype and layout of what it is handed."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.conv = (nn.Conv2d if dims == 2 else nn.Conv3d)(2, 3, 3, padding=1)
        self.seen: list[tuple[torch.dtype, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fmt = torch.channels_last if x.ndim == 4 else torch.channels_last_3d
        self.seen.append((x.dtype, x.is_contiguous(memory_format=fmt) and not x.is_contiguous()))
        return self.conv(x)


def test_off_is_the_wrapped_inferer_bit_for_bit() -> None:
    torch.manual_seed(0)
    net, x = _Probe(2).eval(), torch.randn(2, 2, 16, 16)
    with torch.no_grad():
        assert torch.equal(MixedPrecisionInferer(SimpleInferer())(x, net), net(x))
    assert net.seen[0] == (torch.float32, False)


@pytest.mark.parametrize("dims", [2, 3])
def test_channels_last_reaches_the_network_and_keeps_the_numbers(dims: int) -> None:
    torch.manual_seed(0)
    net = _Probe(dims).eval()
    x = torch.randn(2, 2, *(12,) * dims)
    with torch.no_grad():
        ref = net(x)
        out = MixedPrecisionInferer(SimpleInferer(), channels_last=True)(x, net)
    assert net.seen[-1] == (torch.float32, True)
    fmt = torch.channels_last if dims == 2 else torch.channels_last_3d
    assert net.conv.weight.is_contiguous(memory_format=fmt) and not net.conv.weight.is_contiguous()
    assert x.is_contiguous()  # the caller's tensor is not touched
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_bf16_slice_inference_is_close_to_fp32_and_returns_float32() -> None:
    """The bundles' 2D path: SliceInferer over a volume with the cross-attention U-Net, sigmoid probabilities."""
    torch.manual_seed(0)
    net = CrossAttentionUNet(in_channels=3, out_channels=1, features=(8, 16, 32, 64), deep_supervision=False).eval()
    x = torch.rand(1, 3, 32, 32, 6)
    inferer = SliceInferer(roi_size=(32, 32), spatial_dim=2, sw_batch_size=3)
    with torch.no_grad():
        ref = torch.sigmoid(inferer(x, net))
        out = MixedPrecisionInferer(inferer, amp=True, dtype="bfloat16", channels_last=True)(x, net)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    diff = (torch.sigmoid(out) - ref).abs().max().item()
    assert 0 < diff < 2e-2  # bf16 was in effect (not bit-equal) and the probabilities stay within 0.02


def test_bf16_dense_patch_inference_is_close_to_fp32() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 2, 1)).eval()
    x = torch.rand(1, 2, 10, 10, 6) + 0.1
    inferer = DensePatchInferer(patch_size=(6, 6, 4), step=(2, 2, 1), batch_size=64)
    with torch.no_grad():
        ref = inferer(x, net)
        out = MixedPrecisionInferer(inferer, amp=True)(x, net)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=2e-2)
    assert not torch.equal(out, ref)


def test_the_brain_mask_reaches_the_dense_inferer_through_the_wrapper() -> None:
    """A ``brain=`` given to MixedPrecisionInferer around DensePatchInferer reaches the dense inferer, not the
    network, in fp32 and under bf16 alike."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 2, 1)).eval()
    x = torch.rand(1, 2, 10, 10, 6)
    brain = torch.zeros(1, 1, 10, 10, 6, dtype=torch.uint8)
    brain[..., 3:7, 3:7, :] = 1
    dense = DensePatchInferer(patch_size=(6, 6, 4), step=(2, 2, 1), batch_size=64)
    with torch.no_grad():
        ref = dense(x, net, brain=brain)
        for amp in (False, True):
            out = MixedPrecisionInferer(dense, amp=amp, channels_last=True)(x, net, brain=brain)
            torch.testing.assert_close(out, ref, rtol=0, atol=2e-2 if amp else 1e-6)
    assert not torch.allclose(ref, dense(x, net))  # the mask changes the result: patches centred outside it are left out


def test_to_float32_walks_containers_and_leaves_integers() -> None:
    h = torch.ones(2, dtype=torch.bfloat16)
    i = torch.ones(2, dtype=torch.int64)
    out = to_float32({"a": (h, [h, i]), "b": "text"})
    assert out["a"][0].dtype == torch.float32 and out["a"][1][0].dtype == torch.float32
    assert out["a"][1][1].dtype == torch.int64 and out["b"] == "text"


def test_dtype_is_checked_and_bf16_is_fast_answers_for_known_devices() -> None:
    with pytest.raises(ValueError, match="floating-point"):
        MixedPrecisionInferer(SimpleInferer(), dtype="int8")
    assert isinstance(bf16_is_fast("cpu"), bool)
    assert bf16_is_fast("meta") is False
