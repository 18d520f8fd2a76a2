"""Dataset layer: the modality registry, the case checker, ISLES/APIS release layouts, datalists and folds, slices and patches for training,
stacked studies (NIfTI files: :mod:`strokezoo.io`; synthetic cohorts: :mod:`strokezoo.synth`)."""

from __future__ import annotations

import importlib

__all__ = ["checks", "datalist", "folds", "layouts", "modalities", "slices", "stacked"]


def __getattr__(name: str):
    """Import modules on first use (``strokezoo.data.datalist.select_entries`` in a bundle config)."""
    if name in __all__:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
