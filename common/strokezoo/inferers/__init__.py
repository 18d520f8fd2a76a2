"""Inferers that MONAI does not provide, used by the strokezoo bundles."""

from .dense_patch import DensePatchInferer, patch_centres
from .tfa_map import tfa_map, tfa_padding

__all__ = ["DensePatchInferer", "patch_centres", "tfa_map", "tfa_padding"]
