"""Losses of the strokezoo bundles that MONAI does not provide as such."""

from .class_weight_map import ClassWeightMapLoss, class_weight_map
from .multi_segmentation import MultiSegmentationLoss

__all__ = ["ClassWeightMapLoss", "class_weight_map", "MultiSegmentationLoss"]
