"""Linformer encoder layer (Wang et al., "Linformer: Self-Attention with Linear Complexity", 2020, Sec. 4),
the backbone of the CTP transformer of de Vries et al. (MIDL 2021, Sec. 2).

Linformer attention projects the keys and values along the sequence, from ``n`` tokens to ``k``, with learned
matrices E and F (Eq. 7): ``head_i = softmax(Q_i (E K_i)^T / sqrt(d_h)) (F V_i)``. E and F are shared by the heads
of a layer (the paper's headwise sharing). MONAI's ``SABlock`` has no sequence projection, so the attention is
written here; the feed-forward part is MONAI's ``MLPBlock``.
"""

from __future__ import annotations

import torch
from monai.networks.blocks import MLPBlock
from torch import nn

__all__ = ["LinformerSelfAttention", "LinformerLayer"]


class LinformerSelfAttention(nn.Module):
    """Multi-head self-attention over ``seq_len`` tokens whose keys and values are projected to ``projected_length``.

    Args:
        hidden_size: token dimension d.
        seq_len: number of tokens n (fixed: E and F are ``n × k`` parameters).
        num_heads: heads; ``hidden_size`` must divide by it.
        projected_length: Linformer's k.
        dropout_rate: dropout on the attention weights and on the output.
    """

    def __init__(self, hidden_size: int, seq_len: int, num_heads: int = 8, projected_length: int = 16, dropout_rate: float = 0.0) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.seq_len = seq_len
        self.head_dim = hidden_size // num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=False)
        self.key_projection = nn.Parameter(torch.randn(seq_len, projected_length) / projected_length**0.5)  # E
        self.value_projection = nn.Parameter(torch.randn(seq_len, projected_length) / projected_length**0.5)  # F
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        self.drop_weights = nn.Dropout(dropout_rate)
        self.drop_output = nn.Dropout(dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, n, d)`` -> ``(B, n, d)``."""
        b, n, d = x.shape
        if n != self.seq_len:
            raise ValueError(f"expected {self.seq_len} tokens, got {n}")
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # 3 × (B, h, n, d_h)
        k = torch.einsum("bhnd,nk->bhkd", k, self.key_projection)
        v = torch.einsum("bhnd,nk->bhkd", v, self.value_projection)
        weights = self.drop_weights(torch.softmax(q @ k.transpose(-1, -2) * self.head_dim**-0.5, dim=-1))
        out = (weights @ v).transpose(1, 2).reshape(b, n, d)
        return self.drop_output(self.out_proj(out))


class LinformerLayer(nn.Module):
    """Pre-norm transformer layer: ``x + attention(LN(x))`` then ``x + MLP(LN(x))`` (GELU, MONAI ``MLPBlock``)."""

    def __init__(self, hidden_size: int, seq_len: int, num_heads: int = 8, projected_length: int = 16, mlp_dim: int = 512, dropout_rate: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size)
        self.attn = LinformerSelfAttention(hidden_size, seq_len, num_heads, projected_length, dropout_rate)
        self.norm2 = nn.LayerNorm(hidden_size)
        self.mlp = MLPBlock(hidden_size, mlp_dim, dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))
