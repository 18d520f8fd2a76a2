"""The losses of Wang et al., MedIA 2020: pseudo-DWI synthesis L_g (Eqs. 6–8), lesion segmentation L_s
(Eqs. 11–14) with the other segmentation losses of Table 4, and the end-to-end objective L = L_s + α L_g + β L_e
(Eq. 15).

The norms are taken as written, per slice, and averaged over the batch (the paper does not say how it reduces
them): ℓ_l = ``||A·(I − I_d)||_2`` over the slice's pixels and ℓ_h = ``||Φ_c(I) − Φ_c(I_d)||_1`` over the 16-vector.
ℓ_l therefore grows with the slice size (about 25 for a 256×256 slice with a residual of 0.1), and it outweighs
L_s in the gradient that reaches the generator: the pseudo-DWI stays an image of the DWI rather than becoming
whatever feature map suits the segmenter. (A mean-normalised ℓ_l was tried first: on the synthetic cohort the
segmentation term then took over and the "pseudo-DWI" fell below an untrained generator's PSNR.) The generalized Dice of Eq. 14
is MONAI's ``GeneralizedDiceLoss`` (weights ``1/(Σ Y_c)^2``, both classes, sums over the whole batch; a class
absent from the batch takes the largest finite weight, MONAI's rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from monai.losses import DiceLoss, GeneralizedDiceLoss
from torch import nn
from torch.nn import functional as F

from ..networks.pseudo_dwi_slnet import PARTS

__all__ = [
    "synthesis_loss",
    "weighted_cross_entropy",
    "generalized_dice_loss",
    "HardnessAwareGeneralizedDiceLoss",
    "CROSS_ENTROPY",
    "OVERLAP",
    "SegmentationLoss",
    "PseudoDWILoss",
]


def synthesis_loss(
    image: torch.Tensor, reference: torch.Tensor, weight: torch.Tensor, context: torch.Tensor, context_reference: torch.Tensor, gamma: float = 1.2
) -> torch.Tensor:
    """L_g(I, I_d) = ℓ_l + γ ℓ_h (Eqs. 6–8) of images ``(B, 1, H, W)`` with weight map A and their Φ_c codes ``(B, K)``."""
    pixel = (weight * (image - reference)).flatten(1).norm(p=2, dim=1)
    contextual = (context - context_reference).abs().sum(1)
    return (pixel + gamma * contextual).mean()


def weighted_cross_entropy(logits: torch.Tensor, label: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """L_WCE (Eq. 12): ``Σ_i A_i CE_i / Σ_i A_i`` over every pixel of the batch; ``label`` holds class indices ``(B, 1, …)``."""
    ce = F.cross_entropy(logits, label[:, 0].long(), reduction="none")
    w = weight[:, 0]
    return (w * ce).sum() / w.sum().clamp_min(1e-12)


def generalized_dice_loss(smooth: float = 1e-10) -> GeneralizedDiceLoss:
    """L_GD (Eq. 14, Sudre et al. 2017) on softmax probabilities: both classes, weights m_c = 1/(Σ Y_c)^2, sums
    over the whole batch.

    With weights 1/(Σ Y_c)^2 the weighted sums are of order 1/(voxel count), about 3e-6 for a batch of five 256×256
    slices, so MONAI's default smoothing (1e-5) would outweigh them; 1e-10 only guards against 0/0.
    """
    return GeneralizedDiceLoss(include_background=True, to_onehot_y=True, softmax=True, batch=True, smooth_nr=smooth, smooth_dr=smooth)


class HardnessAwareGeneralizedDiceLoss(nn.Module):
    """L_HGD = −log(1 − L_GD) (Eq. 13), L_GD the generalized Dice of Eq. 14 (:func:`generalized_dice_loss`)."""

    def __init__(self, smooth: float = 1e-10) -> None:
        super().__init__()
        self.generalized_dice = generalized_dice_loss(smooth)

    def forward(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        gd = self.generalized_dice(logits, label)
        return -torch.log((1.0 - gd).clamp_min(1e-6))


#: The cross-entropy terms of Table 4: L_WCE (Eq. 12, weight map A) and the plain L_CE (A = 1 everywhere).
CROSS_ENTROPY = ("weighted", "plain")
#: The overlap terms of Table 4: L_DICE (Milletari et al. 2016), L_GD (Eq. 14) and L_HGD (Eq. 13).
OVERLAP = ("dice", "generalized", "hardness_aware")


class SegmentationLoss(nn.Module):
    """L_s = L_WCE(P, Y, A) + L_HGD(P, Y) (Eq. 11) and the other losses of Table 4, as the sum of a cross-entropy
    term and an overlap term, either of which may be left out.

    ``forward(logits, target)``: ``logits`` ``(B, 2, …)``; ``target`` a mapping with ``label`` (class indices
    ``(B, 1, …)``) and, for the weighted cross-entropy, ``weight`` (A, Eq. 9).

    Table 4's rows: ``L_CE`` = (``"plain"``, ``None``); ``L_DICE`` = (``None``, ``"dice"``); ``L_GD`` =
    (``None``, ``"generalized"``); ``L_HGD`` = (``None``, ``"hardness_aware"``); ``L_CE + L_HGD`` = (``"plain"``,
    ``"hardness_aware"``); ``L_WCE + L_HGD`` (the paper's L_s, the default) = (``"weighted"``, ``"hardness_aware"``).

    L_DICE is the soft Dice of the lesion class with squared terms in the denominator, as Milletari et al. define it,
    over the whole batch like L_GD (our interpretation: the paper gives no formula, and most 2D slices hold no lesion,
    for which a per-slice Dice is undefined).

    Args:
        cross_entropy: ``"weighted"`` (L_WCE), ``"plain"`` (L_CE) or ``None``.
        overlap: ``"hardness_aware"`` (L_HGD), ``"generalized"`` (L_GD), ``"dice"`` (L_DICE) or ``None``.
    """

    def __init__(self, cross_entropy: str | None = "weighted", overlap: str | None = "hardness_aware") -> None:
        super().__init__()
        if cross_entropy not in (*CROSS_ENTROPY, None) or overlap not in (*OVERLAP, None):
            raise ValueError(f"cross_entropy must be one of {CROSS_ENTROPY} or None and overlap one of {OVERLAP} or None, got {cross_entropy!r}, {overlap!r}")
        if cross_entropy is None and overlap is None:
            raise ValueError("the segmentation loss needs a cross-entropy term, an overlap term or both")
        self.cross_entropy = cross_entropy
        self.overlap = {
            None: None,
            "dice": DiceLoss(include_background=False, to_onehot_y=True, softmax=True, squared_pred=True, batch=True),
            "generalized": generalized_dice_loss(),
            "hardness_aware": HardnessAwareGeneralizedDiceLoss(),
        }[overlap]

    def forward(self, logits: torch.Tensor, target: Mapping[str, torch.Tensor]) -> torch.Tensor:
        label = target["label"]
        terms = []
        if self.cross_entropy == "weighted":
            terms.append(weighted_cross_entropy(logits, label, target["weight"]))
        elif self.cross_entropy == "plain":
            terms.append(F.cross_entropy(logits, label[:, 0].long()))
        if self.overlap is not None:
            terms.append(self.overlap(logits, label))
        return torch.stack(terms).sum()


class PseudoDWILoss(nn.Module):
    """L = L_s + α L_g(I_g, I_d) + β L_e(F_h, I_d) (Eq. 15), restricted to the terms of the networks that learn.

    ``forward(pred, target)``: ``pred`` is :class:`~strokezoo.networks.PseudoDWISLNet`'s training output (a dict
    with ``logits``, ``pseudo_dwi``, ``features``, ``context``); ``target`` a dict with ``label`` (class
    indices), ``dwi`` (I_d) and ``weight`` (A, Eq. 9). The last terms are kept in :attr:`terms` for logging.

    Args:
        alpha, beta, gamma: Eq. 15 and Eq. 6 (the paper: 1.0, 1.0, 1.2).
        parts: the networks being trained (:data:`~strokezoo.networks.pseudo_dwi_slnet.PARTS`): the segmenter
            brings L_s, the generator α L_g, the extractor β L_e. All three end-to-end.
        segmentation: L_s (:class:`SegmentationLoss`; Eq. 11 by default). Table 2's F_h* path trains its
            segmenter, a U-Net, with ``SegmentationLoss("plain", None)``, the plain cross-entropy.
    """

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.2, parts: Iterable[str] = PARTS, segmentation: nn.Module | None = None) -> None:
        super().__init__()
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.parts = tuple(parts)
        if not self.parts or set(self.parts) - set(PARTS):
            raise ValueError(f"parts must be a non-empty subset of {PARTS}, got {self.parts}")
        self.segmentation = SegmentationLoss() if segmentation is None else segmentation
        self.terms: dict[str, float] = {}

    def forward(self, pred: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> torch.Tensor:
        dwi, weight = target["dwi"], target["weight"]
        g_code, f_code, d_code = pred["context"]
        terms = {}
        if "segmenter" in self.parts:
            terms["loss_s"] = self.segmentation(pred["logits"], target)
        if "generator" in self.parts:
            terms["loss_g"] = self.alpha * synthesis_loss(pred["pseudo_dwi"], dwi, weight, g_code, d_code, self.gamma)
        if "extractor" in self.parts:
            terms["loss_e"] = self.beta * synthesis_loss(pred["features"], dwi, weight, f_code, d_code, self.gamma)
        self.terms = {k: float(v.detach()) for k, v in terms.items()}
        return torch.stack(list(terms.values())).sum()
