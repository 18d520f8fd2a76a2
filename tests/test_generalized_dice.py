"""de Vries et al. (MIDL 2021), part B: the U-Net's generalized Dice loss, as Sudre et al. (2017) define it, over
background and core with class weights 1 / (reference volume)^2 — read from the bundle's parsed train.json."""

from __future__ import annotations

from functools import cache

import torch
from monai.bundle import ConfigParser

from strokezoo.bundle_info import bundles_dir


@cache
def bundle_loss() -> torch.nn.Module:
    parser = ConfigParser()
    parser.read_config(str(bundles_dir() / "stroke_ctp_transformer_unet2d" / "configs" / "train.json"))
    return parser.get_parsed_content("loss")


def sudre_gdl(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """1 - 2 sum_l w_l sum_n r_ln p_ln / sum_l w_l sum_n (r_ln + p_ln), w_l = 1 / (sum_n r_ln)^2, n over the whole
    batch, in float64; a class absent from the batch takes the largest weight of the others (MONAI's rule: Sudre et
    al. leave the case open)."""
    p = torch.softmax(logits.double(), 1)
    r = torch.cat([label == 0, label == 1], 1).double()
    dims = (0, 2, 3)
    volume = r.sum(dims)
    w = torch.where(volume > 0, 1.0 / volume.clamp_min(1) ** 2, 0.0)
    w = torch.where(volume > 0, w, w.max())
    return 1 - 2 * (w * (r * p).sum(dims)).sum() / (w * (r + p).sum(dims)).sum()


def test_the_loss_is_the_generalized_dice_of_background_and_core_at_realistic_core_sizes():
    """160,000 core pixels in a batch of 16 slices of 256 x 256: the class weights are ~1e-11, so an unscaled
    1e-5 smoothing term would dominate the weighted sums; the bundle's loss equals the formula."""
    torch.manual_seed(0)
    label = torch.zeros(16, 1, 256, 256, dtype=torch.long)
    label[:, :, 28:128, 28:128] = 1  # 10,000 core pixels per slice
    logits = torch.randn(16, 2, 256, 256) + 2.0 * torch.cat([1 - label, label], 1)
    assert int(label.sum()) == 160_000
    loss = bundle_loss()(logits, label)
    assert torch.isclose(loss.double(), sudre_gdl(logits, label), rtol=1e-4), (float(loss), float(sudre_gdl(logits, label)))
    small = label.clone()
    small[:, :, :, :] = 0
    small[0, 0, 5:8, 5:8] = 1  # 9 core pixels in the batch
    assert torch.isclose(bundle_loss()(logits, small).double(), sudre_gdl(logits, small), rtol=1e-4)


def test_a_core_free_batch_still_punishes_a_core_everywhere_prediction():
    """Slices without core are most of a CTP study: predicting core on them must cost, with a gradient."""
    label = torch.zeros(4, 1, 32, 32, dtype=torch.long)
    logits = torch.zeros(4, 2, 32, 32)
    logits[:, 1] = 5.0  # core everywhere
    logits.requires_grad_(True)
    loss = bundle_loss()(logits, label)
    loss.backward()
    assert float(loss) > 0.5 and torch.isclose(loss.detach().double(), sudre_gdl(logits.detach(), label), rtol=1e-4)
    assert logits.grad.abs().sum() > 0 and (logits.grad[:, 1] > 0).all()  # gradient descent lowers the core logits
    right = torch.zeros(4, 2, 32, 32)
    right[:, 0] = 5.0
    assert float(bundle_loss()(right, label)) < 0.01  # background everywhere is right
