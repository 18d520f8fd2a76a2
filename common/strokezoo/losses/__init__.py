"""Losses of the strokezoo bundles that MONAI does not provide as such."""

from .class_weight_map import ClassWeightMapLoss, class_weight_map
from .multi_segmentation import MultiSegmentationLoss
from .pseudo_dwi import HardnessAwareGeneralizedDiceLoss, PseudoDWILoss, SegmentationLoss, synthesis_loss, weighted_cross_entropy
from .voxel_focal import VoxelFocalLoss

__all__ = [
    "ClassWeightMapLoss",
    "class_weight_map",
    "MultiSegmentationLoss",
    "HardnessAwareGeneralizedDiceLoss",
    "PseudoDWILoss",
    "SegmentationLoss",
    "synthesis_loss",
    "weighted_cross_entropy",
    "VoxelFocalLoss",
]
