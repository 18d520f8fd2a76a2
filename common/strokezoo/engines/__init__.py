"""Engine pieces of the strokezoo bundles: validation metrics and handlers MONAI does not provide."""

from .l1_error_rate import L1ErrorRate

__all__ = ["L1ErrorRate"]
