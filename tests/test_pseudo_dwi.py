"""The pieces of Wang et al., MedIA 2020: perfusion stage (Eqs. 1-3), weight map (Eq. 9), switchable normalization,
SLNet against Table 3, the losses (Eqs. 6-15), the four-network module and its trainer, and the evaluation extras."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.losses import GeneralizedDiceLoss
from monai.networks.layers import get_norm_layer
from torch.nn import functional as F

from strokezoo.data.datalist import require_key
from strokezoo.engines import PseudoDWITrainer
from strokezoo.errors import InputError
from strokezoo.losses import HardnessAwareGeneralizedDiceLoss, PseudoDWILoss, SegmentationLoss, synthesis_loss, weighted_cross_entropy
from strokezoo.metrics.evaluate import scale_to_percentile, size_groups
from strokezoo.networks import ContextEncoder, PseudoDWISLNet, SLNet, xavier_init
from strokezoo.networks.blocks import SwitchableNorm
from strokezoo.transforms import LesionWeightMapd, PerfusionFeaturesd, lesion_weight_map, perfusion_stage


def bolus_curve(length: int = 40) -> np.ndarray:
    """Flat until the bolus arrives at t = 10, rising to a peak at 18, washing out until 30, then a slow
    recirculation rise: the perfusion stage is [10, 30]."""
    t = np.arange(length, dtype=np.float64)
    return np.select([t <= 10, t <= 18, t <= 30], [0.0 * t, t - 10, 8 - 0.5 * (t - 18)], 2 + 0.1 * (t - 30)) + 100.0


def test_perfusion_stage_finds_the_known_bolus_timing():
    assert perfusion_stage(bolus_curve(), k=5) == (10, 30)
    # a later bolus shifts both ends; a flat or only-rising curve has no stage
    assert perfusion_stage(np.r_[np.full(7, 100.0), bolus_curve()], k=5) == (17, 37)
    assert perfusion_stage(np.full(40, 5.0)) is None and perfusion_stage(np.arange(40.0)) is None


def test_perfusion_features_crop_and_downsample_the_series():
    q = torch.as_tensor(bolus_curve(), dtype=torch.float32)
    pattern = torch.rand(1, 6, 5, 3) + 0.5
    series = q[:, None, None, None] * pattern  # (T, H, W, D): q(t) is the summed curve up to a constant factor
    out = PerfusionFeaturesd("ctp", frames=6, k=5)({"ctp": series})
    assert out["ctp_stage"] == (10, 30)
    assert torch.equal(out["ctp"], series[[10, 14, 18, 22, 26, 30]])
    assert torch.equal(out["mip"], series.amax(0, keepdim=True)) and out["mip"].shape == (1, 6, 5, 3)
    flat = PerfusionFeaturesd("ctp", frames=6)({"ctp": torch.ones(9, 4, 4, 2)})
    assert flat["ctp_stage"] == (0, 8) and flat["ctp"].shape == (6, 4, 4, 2)  # no stage: the whole series
    with pytest.raises(ValueError, match="4D series"):
        PerfusionFeaturesd("ctp")({"ctp": torch.ones(1, 4, 4, 2)})


def test_weight_map_is_eq9_by_hand():
    mask = np.zeros((11, 12), np.uint8)
    mask[5, 5] = mask[5, 6] = 1
    a = lesion_weight_map(mask, w=1.5, d=50.0)

    def background(dist):
        return 0.5 + math.exp(-dist / 50) / (math.exp(-dist / 50) + 1)

    assert a[5, 5] == a[5, 6] == pytest.approx(1.5)
    assert a[5, 9] == pytest.approx(background(3.0), abs=1e-6)
    assert a[8, 10] == pytest.approx(background(math.hypot(3, 4)), abs=1e-6)
    assert a[0, 0] == pytest.approx(background(math.hypot(5, 5)), abs=1e-6)
    assert np.all(a[mask == 0] < 1.0) and np.all(a[mask == 0] > 0.5)
    assert np.all(lesion_weight_map(np.zeros((4, 4))) == 0.5)  # no lesion: d = inf
    both = LesionWeightMapd("label", w=2.0, d=10.0)({"label": torch.as_tensor(np.stack([mask, np.zeros_like(mask)]))})["weight"]
    assert torch.allclose(both[0], torch.as_tensor(lesion_weight_map(mask, 2.0, 10.0))) and torch.all(both[1] == 0.5)


@pytest.mark.parametrize("which", [0, 1, 2])
def test_switchable_norm_reduces_to_instance_layer_and_batch_norm(which):
    torch.manual_seed(which)
    x = torch.randn(4, 3, 5, 6) * 3 + 1
    sn = SwitchableNorm(3, affine=False)
    with torch.no_grad():
        sn.mean_weight.copy_(torch.eye(3)[which] * 50)
        sn.var_weight.copy_(torch.eye(3)[which] * 50)
    expected = [F.instance_norm(x, eps=1e-5), F.layer_norm(x, x.shape[1:], eps=1e-5), F.batch_norm(x, None, None, training=True, eps=1e-5)][which]
    assert torch.allclose(sn(x), expected, atol=1e-4)


def test_switchable_norm_mixes_statistics_and_keeps_running_batch_statistics():
    torch.manual_seed(0)
    x = torch.randn(5, 4, 7, 3) * 2 + 3
    sn = SwitchableNorm(4, momentum=0.1)
    with torch.no_grad():
        sn.mean_weight.copy_(torch.tensor([0.3, -0.2, 0.5]))
        sn.var_weight.copy_(torch.tensor([-1.0, 0.4, 0.1]))
        sn.weight.copy_(torch.tensor([1.0, 2.0, 0.5, 1.5]))
        sn.bias.copy_(torch.tensor([0.0, -1.0, 1.0, 0.5]))
    y = sn(x)
    # independent: the three normalisers' statistics, mixed with softmax weights
    dims = {"in": (2, 3), "ln": (1, 2, 3), "bn": (0, 2, 3)}
    means = [x.mean(d, keepdim=True) for d in dims.values()]
    variances = [x.var(d, unbiased=False, keepdim=True) for d in dims.values()]
    wm, wv = torch.softmax(sn.mean_weight, 0), torch.softmax(sn.var_weight, 0)
    mean = sum(w * m for w, m in zip(wm, means))
    var = sum(w * v for w, v in zip(wv, variances))
    expected = (x - mean) / torch.sqrt(var + 1e-5) * sn.weight.view(1, -1, 1, 1) + sn.bias.view(1, -1, 1, 1)
    assert torch.allclose(y, expected, atol=1e-4)
    assert torch.allclose(sn.running_mean, 0.1 * x.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(sn.running_var, 0.9 + 0.1 * x.var((0, 2, 3), unbiased=True), atol=1e-4)
    # eval: the batch part uses the running averages, as BN does
    sn.eval()
    with torch.no_grad():
        sn.mean_weight.copy_(torch.tensor([0.0, 0.0, 50.0]))
        sn.var_weight.copy_(torch.tensor([0.0, 0.0, 50.0]))
    z = torch.randn(2, 4, 3, 3)
    assert torch.allclose(sn(z), F.batch_norm(z, sn.running_mean, sn.running_var, sn.weight, sn.bias, training=False, eps=1e-5), atol=1e-4)
    assert isinstance(get_norm_layer("switchable", 2, 8), SwitchableNorm)  # MONAI's Norm factory knows it


@pytest.mark.parametrize(
    "row, norm, se, millions, bias_free",
    [
        ("UNet", "batch", False, 31.04, 31.04),
        ("SLNet", "switchable", True, 33.84, 33.83),
        ("SLNet w/o SE", "switchable", False, 31.04, 31.04),
        ("SLNet w/o SN", "batch", True, 33.84, 33.83),
    ],
)
def test_parameter_counts_match_table_3(row, norm, se, millions, bias_free):
    """Table 3 to its two decimals: the bias-free 3x3 convolutions of this code give ``bias_free``; one bias per output
    channel of every 3x3 convolution (the authors' reading) gives the table's figure."""
    net = SLNet(in_channels=1, out_channels=2, norm=norm, squeeze_excitation=se)
    count = sum(p.numel() for p in net.parameters())
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert all(m.bias is None for m in convs) and len(convs) == 2 * 5 + 2 * 4
    assert round(count / 1e6, 2) == bias_free, (row, count)
    assert round((count + sum(m.out_channels for m in convs)) / 1e6, 2) == millions, (row, count)


def test_slnet_blocks_and_shapes():
    net = SLNet(in_channels=1, out_channels=2, features=(4, 8, 16, 32, 64)).eval()
    assert sum(isinstance(m, SwitchableNorm) for m in net.modules()) == 2 * 5 + 2 * 4  # two per encoder and decoder block
    assert sum(type(m).__name__ == "ChannelSELayer" for m in net.modules()) == 5
    assert net(torch.randn(2, 1, 32, 48)).shape == (2, 2, 32, 48)
    torch.manual_seed(0)
    conv = xavier_init(SLNet(1, 2, (4, 8, 16, 32, 64))).encoder.blocks[0].conv1.conv
    bound = math.sqrt(6 / (1 * 9 + 4 * 9))  # Xavier-uniform bound of a 3x3 conv from 1 to 4 channels
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.8 * bound


def test_hardness_aware_generalized_dice_is_eqs_13_14_by_hand():
    torch.manual_seed(0)
    logits = torch.randn(3, 2, 6, 5)
    label = (torch.rand(3, 1, 6, 5) > 0.7).float()
    p = torch.softmax(logits, 1).numpy().astype(np.float64)
    y = np.concatenate([1 - label.numpy(), label.numpy()], 1).astype(np.float64)
    m = 1.0 / y.sum((0, 2, 3)) ** 2
    gd = 1 - 2 * (m * (y * p).sum((0, 2, 3))).sum() / (m * (y + p).sum((0, 2, 3))).sum()
    assert float(HardnessAwareGeneralizedDiceLoss()(logits, label)) == pytest.approx(-math.log(1 - gd), rel=1e-4)
    assert float(GeneralizedDiceLoss(include_background=True, to_onehot_y=True, softmax=True, batch=True)(logits, label)) == pytest.approx(gd, rel=1e-4)


def test_the_segmentation_losses_of_table_4_by_hand():
    """Each row of Table 4 is the sum of its terms, each computed here from its formula: L_CE, L_DICE (Milletari et
    al.: 1 − 2Σpy / (Σp² + Σy²) of the lesion class over the batch), L_GD (Eq. 14), L_HGD (Eq. 13), L_WCE (Eq. 12)."""
    torch.manual_seed(2)
    logits = torch.randn(3, 2, 6, 5)
    label = (torch.rand(3, 1, 6, 5) > 0.7).float()
    weight = torch.rand(3, 1, 6, 5) + 0.5
    p = torch.softmax(logits, 1).double()
    y = torch.cat([1 - label, label], 1).double()
    ce = -(torch.log_softmax(logits.double(), 1) * y).sum(1)
    m = 1.0 / y.sum((0, 2, 3)) ** 2
    gd = 1 - 2 * (m * (y * p).sum((0, 2, 3))).sum() / (m * (y + p).sum((0, 2, 3))).sum()
    dice = 1 - (2 * (p[:, 1] * y[:, 1]).sum() + 1e-5) / ((p[:, 1] ** 2).sum() + (y[:, 1] ** 2).sum() + 1e-5)
    terms = {
        "plain": ce.mean(),
        "weighted": (weight[:, 0] * ce).sum() / weight.sum(),
        "dice": dice,
        "generalized": gd,
        "hardness_aware": -torch.log(1 - gd),
        None: torch.tensor(0.0),
    }
    target = {"label": label, "weight": weight}
    rows = [("plain", None), (None, "dice"), (None, "generalized"), (None, "hardness_aware"), ("plain", "hardness_aware"), ("weighted", "hardness_aware")]
    for cross_entropy, overlap in rows:
        loss = SegmentationLoss(cross_entropy, overlap)(logits, target)
        assert float(loss) == pytest.approx(float(terms[cross_entropy] + terms[overlap]), rel=1e-4), (cross_entropy, overlap)
    with pytest.raises(ValueError, match="needs a cross-entropy term"):
        SegmentationLoss(None, None)
    with pytest.raises(ValueError, match="overlap one of .* got .plain., .jaccard."):
        SegmentationLoss("plain", "jaccard")


def test_weighted_cross_entropy_and_synthesis_loss_by_hand():
    torch.manual_seed(1)
    logits, label = torch.randn(2, 2, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float()
    weight = torch.rand(2, 1, 4, 4) + 0.5
    ce = -torch.log_softmax(logits, 1).gather(1, label.long())
    assert float(weighted_cross_entropy(logits, label, weight)) == pytest.approx(float((weight * ce).sum() / weight.sum()), rel=1e-5)
    image, reference = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
    code, code_ref = torch.randn(2, 16), torch.randn(2, 16)
    expected = np.mean(
        [np.sqrt(((weight[i] * (image[i] - reference[i])) ** 2).sum().item()) + 1.2 * (code[i] - code_ref[i]).abs().sum().item() for i in range(2)]
    )
    assert float(synthesis_loss(image, reference, weight, code, code_ref, gamma=1.2)) == pytest.approx(expected, rel=1e-5)


def small_framework(**kw) -> PseudoDWISLNet:
    torch.manual_seed(0)
    f = (4, 8, 16, 32, 64)
    plain = dict(norm="batch", squeeze_excitation=False)
    return xavier_init(PseudoDWISLNet(SLNet(6, 1, f, **plain), SLNet(6, 1, f, **plain), SLNet(1, 2, f), ContextEncoder(), **kw))


def batch(n: int = 2, h: int = 37, w: int = 45) -> tuple[torch.Tensor, dict]:
    torch.manual_seed(2)
    label = torch.zeros(n, 1, h, w)
    label[:, :, 10:20, 12:25] = 1
    dwi = 0.3 + 0.5 * label + 0.05 * torch.rand(n, 1, h, w)
    weight = torch.as_tensor(lesion_weight_map(label[:, 0].numpy()))[:, None]
    return torch.randn(n, 11, h, w), {"label": label, "dwi": dwi, "weight": weight}


def test_framework_outputs_on_any_slice_size_and_the_loss_terms():
    net = small_framework()
    x, target = batch()
    out = net(x, reference=target["dwi"])
    assert out["logits"].shape == (2, 2, 37, 45) and out["pseudo_dwi"].shape == out["features"].shape == (2, 1, 37, 45)
    assert out["context"].shape == (3, 2, 16)
    # Phi_c encodes the 37 x 45 slices, not the 48 x 48 zero-padded ones the U-Nets need
    with torch.no_grad():
        unpadded = net.context_encoder(torch.cat([out["pseudo_dwi"], out["features"], target["dwi"]], 0)).reshape(3, 2, -1)
    assert torch.allclose(out["context"], unpadded, atol=1e-5)
    loss = PseudoDWILoss()
    total = loss(out, target)
    assert set(loss.terms) == {"loss_s", "loss_g", "loss_e"} and float(total.detach()) == pytest.approx(sum(loss.terms.values()), rel=1e-5)
    only_s = PseudoDWILoss(parts=["segmenter"])
    only_s(out, target)
    assert set(only_s.terms) == {"loss_s"}
    net.eval()
    y = net(x)
    assert y.shape == (2, 4, 37, 45) and torch.equal(y[:, 2:3], net(x, reference=target["dwi"])["pseudo_dwi"])


def test_trainer_updates_only_the_trained_parts(tmp_path):
    x, target = batch(n=3, h=32, w=32)
    data = [{"image": x[i], **{k: v[i] for k, v in target.items()}} for i in range(3)] * 2
    for parts in (["generator"], ["extractor", "generator", "segmenter"]):
        net = small_framework()
        before = {k: v.clone() for k, v in net.state_dict().items()}
        trainer = PseudoDWITrainer(
            dataset=data,
            batch_size=3,
            checkpoint=tmp_path / f"{len(parts)}.pt",
            progress_bar=False,
            max_epochs=1,
            network=net,
            loss_function=PseudoDWILoss(),
            optimizer=torch.optim.RMSprop(net.parameters(), lr=2e-3),
            parts=parts,
        )
        trainer.run()
        changed = {name.split(".")[0] for name, v in net.state_dict().items() if not torch.equal(v, before[name])}
        expected = {"generator", "context_encoder"} if parts == ["generator"] else {"extractor", "generator", "segmenter", "context_encoder"}
        assert changed == expected, (parts, changed)
        output = trainer.state.output[0] if isinstance(trainer.state.output, list) else trainer.state.output
        assert ("loss_s" in output) == ("segmenter" in parts) and "loss_g" in output


def test_evaluation_extras_and_missing_dwi():
    rows = [{"volume_ref_ml": v} for v in (0.5, 9.99, 10.0, 49.0, 50.0, 120.0)]
    groups = size_groups(rows, [10, 50])
    assert [len(g) for g in groups.values()] == [2, 2, 2] and list(groups) == ["< 10 mL", "10–50 mL", "> 50 mL"]
    image = np.random.default_rng(0).gamma(2.0, 100.0, (20, 20, 5))
    scaled = scale_to_percentile(image, 99)
    assert scaled.min() == pytest.approx(0.0) and np.percentile(scaled, 99) == pytest.approx(1.0, rel=1e-5)
    entries = [{"case_id": "a", "dwi": "a.nii"}, {"case_id": "b"}]
    with pytest.raises(InputError, match=r"datalist.json: training needs 'dwi'.*\['b'\]"):
        require_key(entries, "dwi", "datalist.json")
