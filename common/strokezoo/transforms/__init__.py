"""Transforms that MONAI does not provide, used by the strokezoo bundles."""

from .boundary_class import BoundaryClass, BoundaryClassd, lesion_boundary
from .lesion_filter import LesionFilterd, filter_lesions
from .optical_distortion import RandOpticalDistortiond, optical_distortion
from .save_case import SaveCased
from .symmetric_modalities import SymmetricModalitiesd

__all__ = [
    "BoundaryClass", "BoundaryClassd", "lesion_boundary", "LesionFilterd", "filter_lesions",
    "RandOpticalDistortiond", "optical_distortion", "SaveCased", "SymmetricModalitiesd",
]
