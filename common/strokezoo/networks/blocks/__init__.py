"""Blocks that MONAI does not provide, shared by the strokezoo networks."""

from .cross_attention import CrossAttentionGate
from .deep_supervision import DeepSupervisionHead

__all__ = ["CrossAttentionGate", "DeepSupervisionHead"]
