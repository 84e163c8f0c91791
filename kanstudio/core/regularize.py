"""Sparsification penalty of the KAN paper, from the real per-edge activation magnitudes.

For layer l with edge magnitudes ``|phi|_ij`` = mean over the batch of ``|phi_ij(x_i)|``:
``L1_l = sum_ij |phi|_ij``, ``p_ij = |phi|_ij / L1_l``, ``S_l = -sum_ij p_ij log p_ij``;
penalty = ``sum_l (mu1 * L1_l + mu2 * S_l)``, added to the MSE as ``lamb * penalty``.

Edges into product nodes are left out: shrinking a factor of a product towards 0 shrinks the
whole product, so magnitude says nothing about whether the factor is needed there.
"""
from __future__ import annotations

import torch

from .layer import KANLayer


def edge_magnitudes(acts: torch.Tensor) -> torch.Tensor:
    """``(batch, n_in, n_out)`` activations -> ``(n_in, n_out)`` mean |phi|."""
    return acts.abs().mean(0)


def layer_penalty(mag: torch.Tensor, mu1: float, mu2: float) -> torch.Tensor:
    l1 = mag.sum()
    if mag.numel() == 0:
        return l1
    p = mag / (l1 + 1e-12)
    entropy = -(p * torch.log(p + 1e-12)).sum()
    return mu1 * l1 + mu2 * entropy


def sparsity_penalty(
    acts: list[torch.Tensor], layers: list[KANLayer], mu1: float = 1.0, mu2: float = 2.0
) -> torch.Tensor:
    total = acts[0].new_zeros(())
    for a, layer in zip(acts, layers):
        total = total + layer_penalty(edge_magnitudes(a[:, :, : layer.n_sum]), mu1, mu2)
    return total
