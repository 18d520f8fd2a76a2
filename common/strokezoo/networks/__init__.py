"""Networks of the strokezoo bundles, MONAI-style (typed, ``spatial_dims`` where it fits)."""

from .cross_attention_unet import CrossAttentionUNet
from .cross_domain_unet import CrossDomainUNet
from .fold_ensemble import FoldEnsemble, ServedEnsemble, fold_checkpoints, fold_part, member_part, write_fold_ensemble
from .pseudo_dwi_slnet import ContextEncoder, PseudoDWISLNet
from .residual_unet3d import AsymmetricResidualUNet
from .slnet import SLNet, xavier_init
from .tfa_map import tfa_map, tfa_padding
from .tfa_transformer import TFATransformer
from .tfa_unet import TFAUNet, unet_inputs

__all__ = [
    "AsymmetricResidualUNet",
    "ContextEncoder",
    "CrossAttentionUNet",
    "CrossDomainUNet",
    "FoldEnsemble",
    "PseudoDWISLNet",
    "SLNet",
    "ServedEnsemble",
    "TFATransformer",
    "TFAUNet",
    "tfa_map",
    "tfa_padding",
    "unet_inputs",
    "fold_checkpoints",
    "fold_part",
    "member_part",
    "write_fold_ensemble",
    "xavier_init",
]
