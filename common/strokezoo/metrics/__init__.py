"""3D evaluation: overlap, surface distance, volume and lesion-wise metrics (:mod:`.segmentation`),
image quality (:mod:`.image_quality`), inter-rater agreement (:mod:`.agreement`), the ``strokezoo evaluate``
pipeline (:mod:`.evaluate`), its per-modality, several-rater form (:mod:`.rater_study`) and the post-processing
grid search (:mod:`.grid_search`). Submodules are imported where used, so that light
callers (the synthetic cohort) do not pay for importing MONAI."""

from __future__ import annotations

import importlib

__all__ = ["agreement", "evaluate", "grid_search", "image_quality", "rater_study", "segmentation"]


def __getattr__(name: str):
    """Import submodules on first use (``strokezoo.metrics.evaluate.evaluate`` in a bundle config)."""
    if name in __all__:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
