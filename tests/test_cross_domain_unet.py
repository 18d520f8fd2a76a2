"""CrossDomainUNet (Gómez et al., MICCAI 2023): outputs, the variants of Fig. 3, the cross-domain
embedding and which encoder feeds which decoder, checked with gradients and hooks."""

from __future__ import annotations

import pytest
import torch

from strokezoo.networks import CrossDomainUNet
from strokezoo.networks.blocks import CrossAttentionGate

SMALL = (4, 8, 8, 16, 16, 32)
VARIANTS = {"dual_v1": (True, False), "dual_v2": (False, True), "dual_v3": (True, True)}


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("variant", VARIANTS)
def test_dual_variants_output_one_logit_per_modality(variant):
    dec, enc = VARIANTS[variant]
    net = CrossDomainUNet(in_channels=2, features=SMALL, decoder_attention=dec, encoder_attention=enc)
    x = torch.randn(2, 2, 64, 64)
    assert net.train()(x).shape == (2, 2, 64, 64)
    y = net.eval()(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 2, 64, 64)


def test_unimodal_baseline_is_one_encoder_and_one_decoder():
    uni = CrossDomainUNet(in_channels=1, features=SMALL)
    assert len(uni.encoders) == 1 and len(uni.decoders) == 1
    assert uni.eval()(torch.randn(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="fuses two modalities"):
        CrossDomainUNet(in_channels=1, features=SMALL, encoder_attention=True)
    with pytest.raises(ValueError, match="expected 1 modality"):
        uni(torch.randn(1, 2, 32, 32))
    with pytest.raises(ValueError, match="divisible by 32"):
        uni(torch.randn(1, 1, 48, 48))


def test_gates_are_counted_where_the_variants_put_them():
    v1, v2, v3 = (CrossDomainUNet(features=SMALL, decoder_attention=d, encoder_attention=e) for d, e in VARIANTS.values())
    plain = CrossDomainUNet(features=SMALL, decoder_attention=False)
    gates = 2 * sum(2 * f * f + 2 * f + f + 1 for f in SMALL[:-1])  # one gate per skip level and modality
    assert n_params(v1) - n_params(plain) == gates
    assert n_params(v2) - n_params(plain) == gates
    assert n_params(v3) - n_params(plain) == 2 * gates
    assert all(isinstance(g, CrossAttentionGate) for d in v1.decoders for g in d.gates)


def test_paper_configuration():
    net = CrossDomainUNet()
    assert net.features == (32, 64, 128, 256, 512, 1024)
    # the decoders start from the concatenated 2 x 1024 bottlenecks
    assert all(d.up_conv[-1].conv.in_channels == 2048 for d in net.decoders)
    # 3x3 residual blocks with BN and ReLU
    block = net.encoders[0].blocks[1]
    assert hasattr(block, "conv3") and isinstance(block.norm1, torch.nn.BatchNorm2d)


def _skip_gradient(net: CrossDomainUNet, level: int, target: int, source: int) -> float:
    """|d (modality `target`'s level-`level` encoder features) / d (input channel `source`)|."""
    x = torch.randn(1, 2, 32, 32, requires_grad=True)
    levels = net.eval().encode(x)
    levels[target][level].sum().backward()
    return float(x.grad[:, source].abs().sum())


def test_encoder_attention_fuses_the_modalities_at_every_level_only_in_v2_and_v3():
    torch.manual_seed(0)
    v1 = CrossDomainUNet(features=SMALL)
    v2 = CrossDomainUNet(features=SMALL, decoder_attention=False, encoder_attention=True)
    for level in (0, 2):
        assert _skip_gradient(v1, level, target=0, source=1) == 0.0  # V1: ADC encoder sees only ADC
        assert _skip_gradient(v1, level, target=0, source=0) > 0.0
        assert _skip_gradient(v2, level, target=0, source=1) > 0.0  # V2: DWI reaches the ADC encoder
        assert _skip_gradient(v2, level, target=1, source=0) > 0.0


def test_each_decoder_gates_the_skips_of_its_own_encoder_and_sees_both_modalities():
    torch.manual_seed(1)
    net = CrossDomainUNet(features=SMALL).eval()
    seen: dict[tuple[int, int], torch.Tensor] = {}
    for m, dec in enumerate(net.decoders):
        for i, gate in enumerate(dec.gates):
            gate.register_forward_hook(lambda mod, args, out, key=(m, i): seen.__setitem__(key, args[0]))
    x = torch.randn(1, 2, 32, 32)
    levels = net.encode(x)
    net(x)
    for (m, i), skip in seen.items():
        assert torch.equal(skip, levels[m][i])
    assert len(seen) == 2 * (len(SMALL) - 1)
    # the fused bottleneck: the ADC output depends on the DWI input
    x = torch.randn(1, 2, 32, 32, requires_grad=True)
    net(x)[:, 0].sum().backward()
    assert x.grad[:, 1].abs().sum() > 0


def test_running_some_decoders_gives_their_channels_of_the_full_output():
    """``outputs`` runs only the decoders named (the weights are the same): each channel equals the full network's
    channel of that modality; an index outside the modalities is refused."""
    import pytest
    import torch

    from strokezoo.networks import CrossDomainUNet

    torch.manual_seed(0)
    full = CrossDomainUNet(features=(4, 8, 16)).eval()
    dwi_only = CrossDomainUNet(features=(4, 8, 16), outputs=[1]).eval()
    dwi_only.load_state_dict(full.state_dict())
    x = torch.randn(2, 2, 16, 16)
    with torch.no_grad():
        assert torch.equal(dwi_only(x), full(x)[:, 1:2])
    with pytest.raises(ValueError, match="outputs must name"):
        CrossDomainUNet(features=(4, 8, 16), outputs=[2])
