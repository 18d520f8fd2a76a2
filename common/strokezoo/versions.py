"""Version drift: a bundle's ``configs/metadata.json`` pins the MONAI and PyTorch versions it was tested with; a run
with other versions logs one warning that names both, so that a changed result can be traced to it."""

from __future__ import annotations

import logging
from collections.abc import Mapping

__all__ = ["warn_on_version_drift"]

logger = logging.getLogger(__name__)


def _release(version: str) -> str:
    return str(version).split("+")[0]  # "2.13.0+cpu" and "2.13.0" are one release


def warn_on_version_drift(meta: Mapping) -> str | None:
    """Compare the running MONAI and PyTorch with ``meta``'s ``monai_version`` and ``pytorch_version``; log one
    warning when either differs and return its text (None when both match or the metadata pins nothing)."""
    import monai
    import torch

    pairs = {"MONAI": (meta.get("monai_version"), monai.__version__), "PyTorch": (meta.get("pytorch_version"), torch.__version__)}
    drift = [f"{name} {_release(running)} (tested: {tested})" for name, (tested, running) in pairs.items() if tested and _release(tested) != _release(running)]
    if not drift:
        return None
    message = f"bundle {meta.get('name', '?')} {meta.get('version', '')} runs with " + " and ".join(drift) + "; results may differ from the tested ones"
    logger.warning(message)
    return message
