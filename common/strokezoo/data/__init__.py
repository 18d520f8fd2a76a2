"""Dataset layer: NIfTI input checks, ISLES/APIS release layouts, datalists and folds, synthetic cohorts."""

from __future__ import annotations

import importlib

__all__ = ["atomic", "checks", "datalist", "folds", "layouts", "nifti", "slices", "stacked", "synth"]


def __getattr__(name: str):
    """Import modules on first use (``strokezoo.data.datalist.select_entries`` in a bundle config)."""
    if name in __all__:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
