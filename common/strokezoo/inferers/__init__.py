"""Inferers that MONAI does not provide, used by the strokezoo bundles."""

from .dense_patch import DensePatchInferer, patch_centres

__all__ = ["DensePatchInferer", "patch_centres"]
