"""Switchable normalization (Luo et al., "Differentiable learning-to-normalize via switchable normalization",
ICLR 2019), the normalisation of SLNet (Wang et al., MedIA 2020, Sec. 3.3).

Each layer normalises with a learned mix of instance, layer and batch statistics:
``x̂ = (x − Σ_k w_k μ_k) / sqrt(Σ_k w'_k σ²_k + ε)``, ``y = γ x̂ + β``, with ``w = softmax(λ)`` and
``w' = softmax(λ')`` over k ∈ {IN, LN, BN}. The layer and batch statistics are computed from the instance
ones (``μ_ln = mean_c μ_in``, ``σ²_ln = mean_c(σ²_in + μ²_in) − μ²_ln``; the same over the batch for BN), all
biased (divided by the element count). In ``eval()`` mode the batch part uses running averages, as BN does.
No maintained package provides it; importing this module registers it in MONAI's ``Norm`` factory as
``"switchable"``, so MONAI blocks take ``norm_name="switchable"``.
"""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Norm
from torch import nn

__all__ = ["SwitchableNorm"]


class SwitchableNorm(nn.Module):
    """Switchable normalization of ``(N, C, *spatial)`` inputs, any number of spatial dimensions.

    Args:
        num_features: channels C.
        eps: added to the mixed variance.
        momentum: weight of the new batch statistics in the running averages (PyTorch's BN convention).
        affine: learn the per-channel γ and β.
    """

    STATISTICS = ("instance", "layer", "batch")

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.mean_weight = nn.Parameter(torch.ones(3))  # λ, uniform mix at start (as in Luo et al.)
        self.var_weight = nn.Parameter(torch.ones(3))  # λ'
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Instance, layer and batch means and variances, each broadcastable to ``(N, C)``: two ``(3, N, C)`` tensors."""
        n, c = x.shape[:2]
        flat = x.reshape(n, c, -1)
        mean_in = flat.mean(-1)
        var_in = flat.var(-1, unbiased=False)
        square_in = var_in + mean_in**2
        mean_ln = mean_in.mean(1, keepdim=True)
        var_ln = square_in.mean(1, keepdim=True) - mean_ln**2
        if self.training:
            mean_bn = mean_in.mean(0, keepdim=True)
            var_bn = square_in.mean(0, keepdim=True) - mean_bn**2
            with torch.no_grad():
                count = flat.shape[0] * flat.shape[2]
                unbiased = var_bn[0] * count / max(count - 1, 1)
                self.running_mean.lerp_(mean_bn[0].detach(), self.momentum)
                self.running_var.lerp_(unbiased.detach(), self.momentum)
        else:
            mean_bn, var_bn = self.running_mean[None], self.running_var[None]
        means = torch.stack(torch.broadcast_tensors(mean_in, mean_ln, mean_bn))
        variances = torch.stack(torch.broadcast_tensors(var_in, var_ln, var_bn))
        return means, variances

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.num_features:
            raise ValueError(f"SwitchableNorm of {self.num_features} channels got an input of {x.shape[1]} channels")
        means, variances = self.statistics(x)
        w_mean = torch.softmax(self.mean_weight, 0)[:, None, None]
        w_var = torch.softmax(self.var_weight, 0)[:, None, None]
        mean = (w_mean * means).sum(0)
        var = (w_var * variances).sum(0)
        view = (*mean.shape, *([1] * (x.ndim - 2)))
        y = (x - mean.reshape(view)) / torch.sqrt(var.reshape(view) + self.eps)
        if self.weight is not None:
            shape = (1, -1, *([1] * (x.ndim - 2)))
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.weight is not None}"


if "SWITCHABLE" not in Norm.names:
    Norm.add_factory_callable("switchable", lambda dim: SwitchableNorm, "switchable normalization (strokezoo)")
