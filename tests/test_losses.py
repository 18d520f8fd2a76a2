"""Class-weight maps and the weighted focal / cross-entropy losses against hand computations."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DeepSupervisionLoss, FocalLoss
from torch.nn import functional as F

from strokezoo.losses import ClassWeightMapLoss, VoxelFocalLoss, class_weight_map


def test_class_weight_map_from_indices_and_one_hot():
    label = torch.tensor([[[[0, 1], [2, 1]]]], dtype=torch.float32)
    w = class_weight_map(label, [0.7, 2.0, 7.0])
    assert torch.equal(w, torch.tensor([[[[0.7, 2.0], [7.0, 2.0]]]]))
    one_hot = F.one_hot(label[:, 0].long(), 3).permute(0, 3, 1, 2).float()
    assert torch.equal(class_weight_map(one_hot, [0.7, 2.0, 7.0]), w)
    with pytest.raises(ValueError, match="class weights"):
        class_weight_map(label, [0.3, 0.7])


def test_weighted_binary_focal_loss_by_hand():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 4, 5)
    target = (torch.rand(2, 1, 4, 5) > 0.7).float()
    loss = ClassWeightMapLoss(FocalLoss(gamma=2.0, reduction="none"), [0.3, 0.7])(logits, target)
    p = torch.sigmoid(logits)
    p_t = torch.where(target > 0, p, 1 - p)
    focal = -((1 - p_t) ** 2) * torch.log(p_t)
    w = torch.where(target > 0, torch.tensor(0.7), torch.tensor(0.3))
    assert loss.item() == pytest.approx((w * focal).mean().item(), rel=1e-5)
    unweighted = ClassWeightMapLoss(FocalLoss(gamma=2.0, reduction="none"), None)(logits, target)
    assert unweighted.item() == pytest.approx(focal.mean().item(), rel=1e-5)


def test_weighted_cross_entropy_by_hand():
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 6, 6)
    target = torch.randint(0, 3, (2, 1, 6, 6)).float()
    ce = FocalLoss(gamma=0.0, use_softmax=True, to_onehot_y=True, reduction="none")
    loss = ClassWeightMapLoss(ce, [0.7, 2.0, 7.0])(logits, target)
    ref = F.cross_entropy(logits, target[:, 0].long(), weight=None, reduction="none")
    w = torch.tensor([0.7, 2.0, 7.0])[target[:, 0].long()]
    assert loss.item() == pytest.approx((w * ref).mean().item(), rel=1e-5)


def test_deep_supervision_total_is_the_weighted_sum():
    torch.manual_seed(2)
    target = (torch.rand(2, 1, 8, 8) > 0.8).float()
    outs = [torch.randn(2, 1, 8, 8) for _ in range(6)]
    base = ClassWeightMapLoss(FocalLoss(gamma=2.0, reduction="none"), [0.3, 0.7])
    weights = [0.5, 0.25, 0.125, 0.05, 0.045, 0.03]
    total = DeepSupervisionLoss(base, weights=weights)(outs, target)
    assert total.item() == pytest.approx(sum(w * base(o, target).item() for w, o in zip(weights, outs)), rel=1e-5)


def test_multi_segmentation_loss_is_eq1_by_hand():
    """Gómez et al. MICCAI 2023, Eq. 1: the focal loss (gamma 2) on each of the ADC and DWI outputs against its own
    annotation, times alpha = 0.25 on every term and C (1 non-lesion, 3 lesion), the two terms summed."""
    from strokezoo.losses import MultiSegmentationLoss

    torch.manual_seed(3)
    logits = torch.randn(3, 2, 6, 7)
    target = (torch.rand(3, 2, 6, 7) > 0.6).float()
    loss = MultiSegmentationLoss(ClassWeightMapLoss(FocalLoss(gamma=2.0, reduction="none"), [1.0, 3.0], scale=0.25))(logits, target)
    expected = 0.0
    for c in range(2):
        p = torch.sigmoid(logits[:, c])
        y = target[:, c]
        p_t = torch.where(y > 0, p, 1 - p)
        weight = torch.where(y > 0, 3.0, 1.0)
        expected = expected + (weight * -0.25 * (1 - p_t) ** 2 * torch.log(p_t)).mean()
    assert torch.allclose(loss, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="one annotation per output"):
        MultiSegmentationLoss(F.binary_cross_entropy_with_logits)(logits, target[:, :1])


def test_the_cross_domain_bundle_loss_weighs_a_lesion_pixel_three_times_a_background_pixel():
    """The loss as stroke_dwi_crossdomain_unet2d's train.json builds it: at equal confidence (p_t = 0.7) a lesion pixel
    costs 3x a background pixel (C = [1, 3], alpha one factor on every term). MONAI's class-dependent
    FocalLoss(alpha=0.25) would make it 0.25 * 3 : 0.75 * 1 = 1:1."""
    import math
    from pathlib import Path

    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(Path(__file__).resolve().parents[1] / "bundles" / "stroke_dwi_crossdomain_unet2d" / "configs" / "train.json"))
    assert parser.get_parsed_content("class_weights") == [1.0, 3.0] and parser.get_parsed_content("focal_alpha") == 0.25
    assert parser.get_parsed_content("focal_gamma") == 2.0
    loss = parser.get_parsed_content("loss")
    logit = math.log(0.7 / 0.3)
    lesion = loss(torch.full((1, 2, 1, 1), logit), torch.ones(1, 2, 1, 1))
    background = loss(torch.full((1, 2, 1, 1), -logit), torch.zeros(1, 2, 1, 1))
    assert float(lesion / background) == pytest.approx(3.0, rel=1e-5)
    assert float(background) == pytest.approx(2 * 0.25 * 0.3**2 * -math.log(0.7), rel=1e-5)  # two outputs, C = 1


def test_voxel_focal_loss_is_eq1_averaged_over_voxels_by_hand():
    """Clèrigues et al. Eq. 1: -alpha_t (1 - p_t)^gamma log p_t for each voxel's true class t, averaged over voxels;
    MONAI's mean-reduced FocalLoss is half of it for two classes."""
    torch.manual_seed(0)
    logits, label = torch.randn(3, 2, 5, 4, 3), torch.randint(0, 2, (3, 1, 5, 4, 3))
    p = torch.softmax(logits.double(), 1)
    t = label[:, 0]
    p_t = torch.where(t == 1, p[:, 1], p[:, 0])
    alpha_t = torch.where(t == 1, 0.75, 0.25)
    eq1 = (-alpha_t * (1 - p_t) ** 2 * torch.log(p_t)).mean()
    kwargs = dict(gamma=2.0, alpha=[0.25, 0.75], use_softmax=True, to_onehot_y=True, include_background=True)
    assert torch.isclose(VoxelFocalLoss(**kwargs)(logits, label).double(), eq1, rtol=1e-5)
    assert torch.isclose(FocalLoss(**kwargs)(logits, label).double(), eq1 / 2, rtol=1e-5)
    with pytest.raises(ValueError, match="no reduction"):
        VoxelFocalLoss(reduction="sum")
