"""strokezoo: ischemic-stroke lesion segmentation methods as MONAI bundles, on one shared library."""

from __future__ import annotations

import importlib

__version__ = "0.1.0"
__all__ = ["__version__", "data", "engines", "errors", "inferers", "io", "losses", "metrics", "networks", "perfusion", "transforms", "versions"]


def __getattr__(name: str):
    """Import subpackages on first use, so that bundle configs need only ``$import strokezoo``."""
    if name in __all__[1:]:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
