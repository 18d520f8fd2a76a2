"""AsymmetricResidualUNet (Clèrigues et al. 2020, Sec. 3.2): sizes, the 75:25 parameter split by hand,
pre-activation units, max-pool + strided-conv downsampling and additive long skips."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from strokezoo.networks import AsymmetricResidualUNet


def n(params) -> int:
    return sum(p.numel() for p in params)


@pytest.mark.parametrize("in_channels", [8, 14])
def test_patch_in_two_class_logits_out(in_channels):
    net = AsymmetricResidualUNet(in_channels=in_channels).eval()
    x = torch.randn(2, in_channels, 24, 24, 16)
    y = net(x)
    assert y.shape == (2, 2, 24, 24, 16)
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.randn(1, in_channels, 20, 20, 16))


def test_encoder_holds_three_quarters_of_the_parameters_as_counted_by_hand():
    net = AsymmetricResidualUNet(in_channels=8)
    c = net.features
    assert c == (32, 64, 128, 256)
    conv = lambda i, o, k=3: i * o * k**3 + o  # noqa: E731  weights + bias
    bn_prelu = lambda ch: 2 * ch + 1  # noqa: E731  BN affine + one PReLU slope
    unit = lambda ch: bn_prelu(ch) + conv(ch, ch)  # noqa: E731
    encoder = conv(8, 32) + sum(2 * unit(ch) for ch in c) + sum(conv(ch, ch) for ch in c[:-1])
    decoder = sum(conv(2 * ch, ch) + unit(ch) for ch in c[:-1]) + bn_prelu(32) + conv(32, 2, 1)
    assert n(net.encoder_parameters()) == encoder
    assert n(net.decoder_parameters()) == decoder
    assert n(net.parameters()) == encoder + decoder
    assert 0.73 < encoder / (encoder + decoder) < 0.77


def test_units_are_pre_activation_and_blocks_are_residual():
    net = AsymmetricResidualUNet(in_channels=2)
    unit = net.encoder[0].units[0]
    kinds = [type(m) for m in unit.modules() if isinstance(m, (nn.BatchNorm3d, nn.PReLU, nn.Conv3d, nn.Dropout3d))]
    assert kinds == [nn.BatchNorm3d, nn.PReLU, nn.Conv3d]
    assert len(net.encoder[1].units) == 2 and len(net.decoder[0].units) == 1
    assert any(isinstance(m, nn.Dropout3d) for m in net.encoder[1].modules()) and not any(isinstance(m, nn.Dropout3d) for m in net.encoder[0].modules())
    # a block whose units output zeros is the identity: x + F(x)
    block = net.decoder[0].eval()
    for p in block.units[-1][-1].parameters():
        nn.init.zeros_(p)
    x = torch.randn(1, 32, 8, 8, 8)
    assert torch.equal(block(x), x)


def test_downsampling_concatenates_max_pool_and_strided_conv():
    net = AsymmetricResidualUNet(in_channels=2)
    down = net.down[0]
    x = torch.randn(1, 32, 8, 8, 8)
    y = down(x)
    assert y.shape == (1, 64, 4, 4, 4)
    assert torch.equal(y[:, :32], nn.functional.max_pool3d(x, 2))
    assert torch.allclose(y[:, 32:], down.conv(x))


def test_long_skips_are_added():
    """With the transposed convolutions zeroed, a decoder level sees exactly its encoder skip."""
    torch.manual_seed(0)
    net = AsymmetricResidualUNet(in_channels=2).eval()
    seen = {}
    net.decoder[0].register_forward_pre_hook(lambda m, args: seen.__setitem__("in", args[0]))
    net.encoder[0].register_forward_hook(lambda m, args, out: seen.__setitem__("skip", out))
    for p in net.up[0].parameters():
        nn.init.zeros_(p)
    net(torch.randn(1, 2, 24, 24, 16))
    assert torch.equal(seen["in"], seen["skip"])
