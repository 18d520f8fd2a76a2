"""CrossAttentionUNet, its gate and its deep-supervision heads against independent computations."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from strokezoo.networks import CrossAttentionUNet
from strokezoo.networks.blocks import CrossAttentionGate, DeepSupervisionHead

SMALL = (4, 8, 8, 16, 16, 32)


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("out_channels", [1, 3])
def test_deep_supervision_outputs_while_training_prediction_only_in_eval(out_channels):
    torch.manual_seed(0)
    net = CrossAttentionUNet(in_channels=2, out_channels=out_channels, features=SMALL)
    x = torch.randn(2, 2, 64, 64)
    outs = net.train()(x)
    assert isinstance(outs, list) and len(outs) == len(SMALL)  # prediction + 4 decoder levels + bottleneck
    assert all(o.shape == (2, out_channels, 64, 64) for o in outs)
    pred = net.eval()(x)
    assert isinstance(pred, torch.Tensor) and pred.shape == (2, out_channels, 64, 64)
    assert torch.allclose(pred, net.eval()(x))
    plain = CrossAttentionUNet(in_channels=2, out_channels=out_channels, features=SMALL, deep_supervision=False).train()
    assert isinstance(plain(x), torch.Tensor)


def test_input_size_must_be_divisible_by_the_depth():
    net = CrossAttentionUNet(in_channels=1, features=SMALL).eval()
    with pytest.raises(ValueError, match="divisible by 32"):
        net(torch.zeros(1, 1, 48, 48))


def test_flags_change_the_parameter_count_by_the_gates_and_heads():
    full = CrossAttentionUNet(in_channels=3, out_channels=3, features=SMALL)
    no_att = CrossAttentionUNet(in_channels=3, out_channels=3, features=SMALL, cross_attention=False)
    no_ds = CrossAttentionUNet(in_channels=3, out_channels=3, features=SMALL, deep_supervision=False)
    plain = CrossAttentionUNet(in_channels=3, out_channels=3, features=SMALL, cross_attention=False, deep_supervision=False)
    # gate on a skip of f channels: W_e and W_d (f*f + f each), W_S (f + 1)
    gates = sum(2 * f * f + 2 * f + f + 1 for f in SMALL[:-1])
    # a head on a level of f channels: 1x1 conv to 3 classes
    heads = sum(f * 3 + 3 for f in SMALL[1:])
    assert n_params(full) - n_params(no_att) == gates
    assert n_params(full) - n_params(no_ds) == heads
    assert n_params(full) - n_params(plain) == gates + heads


def test_paper_configuration_size():
    net = CrossAttentionUNet(in_channels=3, out_channels=1)
    assert net.features == (32, 64, 128, 256, 512, 1024)
    assert 30e6 < n_params(net) < 40e6


def test_gate_matches_the_equation():
    torch.manual_seed(1)
    gate = CrossAttentionGate(2, encoder_channels=4, decoder_channels=6, inter_channels=5)
    x_e, x_d = torch.randn(2, 4, 9, 9), torch.randn(2, 6, 9, 9)
    s = F.relu(F.conv2d(x_e, gate.w_e.weight, gate.w_e.bias) + F.conv2d(x_d, gate.w_d.weight, gate.w_d.bias))
    alpha = torch.sigmoid(F.conv2d(s, gate.w_s.weight, gate.w_s.bias))
    assert alpha.shape == (2, 1, 9, 9)
    assert torch.allclose(gate(x_e, x_d), alpha * x_e, atol=1e-6)


def test_deep_supervision_head_equals_upsample_then_conv():
    torch.manual_seed(2)
    head = DeepSupervisionHead(2, in_channels=16, out_channels=3)
    x = torch.randn(2, 16, 7, 7)
    ref = F.conv2d(F.interpolate(x, size=(56, 56), mode="bilinear", align_corners=False), head.conv.weight, head.conv.bias)
    assert torch.allclose(head(x, (56, 56)), ref, atol=1e-5)
