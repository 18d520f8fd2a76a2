"""Inferers that MONAI does not provide, used by the strokezoo bundles."""

from .dense_patch import DensePatchInferer, patch_centres
from .mixed_precision import MixedPrecisionInferer, bf16_is_fast, to_float32

__all__ = ["DensePatchInferer", "MixedPrecisionInferer", "bf16_is_fast", "patch_centres", "to_float32"]
