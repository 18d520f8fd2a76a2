"""Cached results named ``<case>-<content hash>``, found by their hash whatever case name computed them.

The mirror registrations (:class:`~strokezoo.transforms.SymmetricModalitiesd`) and part B's TFA maps
(:class:`~strokezoo.transforms.TFAInputsd`) are kept on disk under the case's name, for a reader, and the hash of
everything that changes them. The same voxels can arrive under two names: a case's own files and the stacked study
MONAI Label hands the bundle (named after its file). :func:`cached_by_content` lets the second find the first's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

__all__ = ["cached_by_content"]


def cached_by_content(path: Path, complete: Callable[[Path], bool] = Path.exists) -> Path:
    """``path`` (``<dir>/<case>-<hash>[suffix]``) if ``complete``, else a ``complete`` sibling with the same
    ``-<hash>[suffix]``, else ``path`` (where the result is to be written)."""
    if complete(path) or not path.parent.is_dir():
        return path
    digest = path.name.rsplit("-", 1)[-1]
    return next((other for other in sorted(path.parent.glob(f"*-{digest}")) if complete(other)), path)
