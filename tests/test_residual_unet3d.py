"""AsymmetricResidualUNet (Clèrigues et al. 2020, Sec. 3.2): sizes, the 75:25 parameter split by hand,
pre-activation units, max-pool + strided-conv downsampling and additive long skips; and, where the paper is
silent, the authors' code (../shared/papers/README.md): dropout between the encoder units of levels 2-4, a
pre-activated strided convolution, a 3x3x3 head, per-channel PReLU slopes from 0, BN momentum 0.01 and eps 1e-3."""

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


def authors_parameter_count(in_channels: int, out_channels: int = 2, features=(32, 64, 128, 256)) -> tuple[int, int]:
    """(encoder, decoder) parameters of the authors' design, counted by hand: every 3x3x3 convolution has a bias;
    each pre-activation unit has BN (2 per channel) and one PReLU slope per channel in front of its convolution."""
    conv = lambda i, o, k=3: i * o * k**3 + o  # noqa: E731  weights + bias
    unit = lambda ch: 2 * ch + ch + conv(ch, ch)  # noqa: E731  BN affine, PReLU slopes, conv
    encoder = conv(in_channels, features[0]) + sum(2 * unit(ch) for ch in features) + sum(unit(ch) for ch in features[:-1])  # + downsampling convs
    decoder = sum(conv(2 * ch, ch) + unit(ch) for ch in features[:-1]) + conv(features[0], out_channels)  # transposed convs, units, head
    return encoder, decoder


@pytest.mark.parametrize("in_channels", [8, 14])
def test_encoder_holds_three_quarters_of_the_parameters_as_counted_by_hand(in_channels):
    net = AsymmetricResidualUNet(in_channels=in_channels)
    assert net.features == (32, 64, 128, 256)
    encoder, decoder = authors_parameter_count(in_channels)
    assert abs(n(net.parameters()) - (encoder + decoder)) <= 0.001 * (encoder + decoder)
    assert n(net.encoder_parameters()) == encoder and n(net.decoder_parameters()) == decoder
    assert 0.74 < encoder / (encoder + decoder) < 0.76  # Sec. 3.2: 75 % / 25 %


def test_units_are_pre_activation_and_blocks_are_residual():
    net = AsymmetricResidualUNet(in_channels=2)
    unit = net.encoder[0].units[0]
    kinds = [type(m) for m in unit.modules() if isinstance(m, (nn.BatchNorm3d, nn.PReLU, nn.Conv3d, nn.Dropout3d))]
    assert kinds == [nn.BatchNorm3d, nn.PReLU, nn.Conv3d]
    assert len(net.decoder[0].units) == 1
    # a block whose units output zeros is the identity: x + F(x)
    block = net.decoder[0].eval()
    for p in block.units[-1][-1].parameters():
        nn.init.zeros_(p)
    x = torch.randn(1, 32, 8, 8, 8)
    assert torch.equal(block(x), x)


def test_one_dropout_between_the_two_units_of_levels_two_to_four():
    net = AsymmetricResidualUNet(in_channels=2)
    for level, block in enumerate(net.encoder):
        kinds = [type(m).__name__ for m in block.units]
        assert kinds == (["PreActivationUnit", "PreActivationUnit"] if level == 0 else ["PreActivationUnit", "Dropout3d", "PreActivationUnit"]), level
    assert [m.p for m in net.modules() if isinstance(m, nn.Dropout3d)] == [0.2, 0.2, 0.2]


def test_batch_norm_and_prelu_as_the_authors_code():
    net = AsymmetricResidualUNet(in_channels=2)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm3d)]
    assert norms and all(m.momentum == 0.01 and m.eps == 1e-3 for m in norms)
    for m in net.modules():
        if isinstance(m, nn.Sequential) and isinstance(m[0], nn.Module) and hasattr(m[0], "N"):
            prelu, bn = m[0].A, m[0].N
            assert isinstance(prelu, nn.PReLU) and prelu.num_parameters == bn.num_features  # one slope per channel
            assert torch.equal(prelu.weight, torch.zeros_like(prelu.weight))  # initialised at 0


def test_the_head_is_one_three_cubed_convolution():
    net = AsymmetricResidualUNet(in_channels=2)
    assert isinstance(net.head, nn.Conv3d) and net.head.kernel_size == (3, 3, 3) and (net.head.in_channels, net.head.out_channels) == (32, 2)


def test_downsampling_concatenates_max_pool_and_pre_activated_strided_conv():
    torch.manual_seed(0)
    net = AsymmetricResidualUNet(in_channels=2).eval()
    down = net.down[0]
    x = torch.randn(1, 32, 8, 8, 8)
    y = down(x)
    assert y.shape == (1, 64, 4, 4, 4)
    assert torch.equal(y[:, :32], nn.functional.max_pool3d(x, 2))
    norm, act, conv = down.conv[0].N, down.conv[0].A, down.conv[1]
    assert conv.stride == (2, 2, 2) and conv.kernel_size == (3, 3, 3)
    assert torch.allclose(y[:, 32:], conv(act(norm(x))))
    assert not torch.allclose(y[:, 32:], conv(x))  # the convolution does not see the raw features


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
