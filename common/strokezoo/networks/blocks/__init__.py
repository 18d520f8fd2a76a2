"""Blocks shared by the strokezoo networks: the U-Net paths and the pieces MONAI does not provide."""

from .attention_decoder import CrossAttentionDecoder
from .cross_attention import CrossAttentionGate
from .deep_supervision import DeepSupervisionHead
from .encoder import UNetEncoder, conv_block
from .linformer import LinformerLayer, LinformerSelfAttention
from .switchable_norm import SwitchableNorm

__all__ = [
    "CrossAttentionDecoder",
    "CrossAttentionGate",
    "DeepSupervisionHead",
    "LinformerLayer",
    "LinformerSelfAttention",
    "SwitchableNorm",
    "UNetEncoder",
    "conv_block",
]
