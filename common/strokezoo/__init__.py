"""strokezoo: ischemic-stroke lesion segmentation methods as MONAI bundles, on one shared library."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
