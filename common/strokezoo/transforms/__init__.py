"""Transforms that MONAI does not provide, used by the strokezoo bundles."""

from .boundary_class import BoundaryClass, BoundaryClassd, lesion_boundary
from .brain_mask import BrainMaskd, brain_mask
from .central_pixels import CentralPixelsd, central_pixels_target
from .lesion_filter import LesionFilterd, filter_lesions
from .lesion_weight import LesionWeightMapd, lesion_weight_map
from .load_modalities import LoadModalitiesd
from .optical_distortion import RandOpticalDistortiond, optical_distortion
from .perfusion_features import PerfusionFeaturesd, perfusion_frames, perfusion_stage
from .save_case import SaveCased
from .slice_augmentation import slice_augmentation
from .symmetric_modalities import SymmetricModalitiesd
from .temporal_resample import TemporalResampled, temporal_resample
from .tfa_inputs import TFAInputsd

__all__ = [
    "BoundaryClass",
    "BoundaryClassd",
    "lesion_boundary",
    "BrainMaskd",
    "brain_mask",
    "CentralPixelsd",
    "central_pixels_target",
    "LesionFilterd",
    "filter_lesions",
    "LesionWeightMapd",
    "lesion_weight_map",
    "LoadModalitiesd",
    "RandOpticalDistortiond",
    "optical_distortion",
    "PerfusionFeaturesd",
    "perfusion_frames",
    "perfusion_stage",
    "SaveCased",
    "slice_augmentation",
    "SymmetricModalitiesd",
    "TemporalResampled",
    "temporal_resample",
    "TFAInputsd",
]
