"""The CTP transformer of de Vries et al. (MIDL 2021, Sec. 2, Fig. 1 part A).

A patch of ``P × P`` pixels × ``T`` frames × ``C`` channels (paper: 32 × 32 × 32 × 2: the CTP series and its
mirrored, re-registered copy) becomes a sequence of ``T`` frame tokens: each frame's ``P·P·C`` values (2048) are
mapped by one learned linear transformation to ``hidden_size`` (128). A learned classification token is put in
front, learned positional embeddings ``(T + 1) × hidden_size`` (33 × 128) are added, and a Linformer encoder (8
heads, 12 layers) runs over the 33 tokens. The classification token's output gives the probability that the
central 2 × 2 pixels of the patch are infarcted.

The linear map of a flattened frame patch is a 2D convolution with a ``P × P`` kernel; written that way,
:meth:`TFATransformer.embed` embeds every patch of a whole slice at once (any stride), which is how the
transformer-generated attention map is computed (:func:`strokezoo.networks.tfa_map`).
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks.linformer import LinformerLayer

__all__ = ["TFATransformer"]


class TFATransformer(nn.Module):
    """Linformer classifier of 2D+time CTP patches.

    Args:
        in_channels: channels per frame C (paper: 2, the series and its mirrored copy).
        frames: frames per series T (paper: 32).
        patch_size: patch side P in pixels (paper: 32).
        hidden_size: token dimension (paper: 128).
        num_layers: Linformer layers (paper: 12).
        num_heads: attention heads (paper: 8).
        projected_length: Linformer's k, the length keys and values are projected to (not stated in the paper).
        mlp_dim: hidden width of each layer's feed-forward block (not stated; 4 × hidden_size).
        dropout_rate: dropout in the attention and feed-forward blocks (not stated).
        num_classes: outputs of the classification head (2: healthy, infarct).

    Input: ``(B, C·T, P, P)``, channel ``c·T + t`` holding frame ``t`` of channel ``c``. Output: ``(B, num_classes)`` logits.
    """

    def __init__(
        self,
        in_channels: int = 2,
        frames: int = 32,
        patch_size: int = 32,
        hidden_size: int = 128,
        num_layers: int = 12,
        num_heads: int = 8,
        projected_length: int = 16,
        mlp_dim: int = 512,
        dropout_rate: float = 0.1,
        num_classes: int = 2,
    ) -> None:
        super().__init__()
        self.in_channels, self.frames, self.patch_size = in_channels, frames, patch_size
        self.frame_embedding = nn.Conv2d(in_channels, hidden_size, kernel_size=patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden_size))
        self.position_embedding = nn.Parameter(torch.zeros(1, frames + 1, hidden_size))
        nn.init.trunc_normal_(self.class_token, std=0.02)
        nn.init.trunc_normal_(self.position_embedding, std=0.02)
        self.layers = nn.ModuleList(LinformerLayer(hidden_size, frames + 1, num_heads, projected_length, mlp_dim, dropout_rate) for _ in range(num_layers))
        self.norm = nn.LayerNorm(hidden_size)
        self.head = nn.Linear(hidden_size, num_classes)

    def embed(self, x: torch.Tensor, stride: int | None = None) -> torch.Tensor:
        """Frame tokens of every ``P × P`` patch of ``x`` ``(B, C·T, H, W)`` taken every ``stride`` pixels (default
        ``P``): ``(B, H', W', T, hidden_size)`` with ``H' = (H - P) // stride + 1``."""
        b, ct, h, w = x.shape
        if ct != self.in_channels * self.frames:
            raise ValueError(f"expected {self.in_channels} × {self.frames} = {self.in_channels * self.frames} channels, got {ct}")
        frames = x.view(b, self.in_channels, self.frames, h, w).transpose(1, 2).reshape(b * self.frames, self.in_channels, h, w)
        z = nn.functional.conv2d(frames, self.frame_embedding.weight, self.frame_embedding.bias, stride=stride or self.patch_size)
        z = z.view(b, self.frames, z.shape[1], z.shape[2], z.shape[3])
        return z.permute(0, 3, 4, 1, 2)

    def tokens(self, frame_tokens: torch.Tensor) -> torch.Tensor:
        """The encoder's input ``z`` ``(N, T + 1, hidden_size)`` from frame tokens ``(N, T, hidden_size)``: class token in
        front, positional embeddings added."""
        cls = self.class_token.expand(frame_tokens.shape[0], -1, -1)
        return torch.cat([cls, frame_tokens], dim=1) + self.position_embedding

    def classify(self, frame_tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of sequences of frame tokens ``(N, T, hidden_size)``."""
        z = self.tokens(frame_tokens)
        for layer in self.layers:
            z = layer(z)
        return self.head(self.norm(z[:, 0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.patch_size, self.patch_size):
            raise ValueError(f"expected {self.patch_size} × {self.patch_size} patches, got {tuple(x.shape[-2:])}")
        return self.classify(self.embed(x).flatten(0, 2))
