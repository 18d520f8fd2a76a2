"""Networks of the strokezoo bundles, MONAI-style (typed, ``spatial_dims`` where it fits)."""

from .cross_attention_unet import CrossAttentionUNet
from .cross_domain_unet import CrossDomainUNet
from .fold_ensemble import FoldEnsemble, write_fold_ensemble
from .residual_unet3d import AsymmetricResidualUNet

__all__ = ["AsymmetricResidualUNet", "CrossAttentionUNet", "CrossDomainUNet", "FoldEnsemble", "write_fold_ensemble"]
