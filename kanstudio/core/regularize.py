"""Sparsification penalty of the KAN paper, from the real per-edge activation magnitudes.

For layer l with edge magnitudes ``|phi|_ij`` = mean over the batch of ``|phi_ij(x_i)|``:
``L1_l = sum_ij |phi|_ij``, ``p_ij = |phi|_ij / L1_l``, ``S_l = -sum_ij p_ij log p_ij``;
penalty = ``sum_l (mu1 * L1_l + mu2 * S_l)``, added to the MSE as ``lamb * penalty``.

Edges into product nodes are left out: shrinking a factor of a product towards 0 shrinks the
whole product, so magnitude says nothing about whether the factor is needed there.
"""
from __future__ import annotations

import numpy as np
import torch

from .layer import KANLayer


def edge_magnitudes(acts: torch.Tensor) -> torch.Tensor:
    """``(batch, n_in, n_out)`` activations -> ``(n_in, n_out)`` mean |phi|."""
    return acts.abs().mean(0)


def _l1_entropy(mag, mu1: float, mu2: float):
    """Penalty of one layer and its gradient with respect to ``mag`` (closed form); works on
    torch tensors and numpy arrays alike."""
    l1 = mag.sum()
    L = l1 + 1e-12
    p = mag / L
    lg = (torch.log if isinstance(p, torch.Tensor) else np.log)(p + 1e-12)
    entropy = -(p * lg).sum()
    dS_dp = -(lg + p / (p + 1e-12))
    grad = mu1 + mu2 * (dS_dp - (dS_dp * p).sum()) / L
    return mu1 * l1 + mu2 * entropy, grad


class _Penalty(torch.autograd.Function):
    """``sum_l (mu1 * L1_l + mu2 * S_l)`` over all layers in one autograd node (the training
    objective evaluates it at every step; a graph of ~10 tiny ops per layer costs more than the
    arithmetic)."""

    @staticmethod
    def forward(ctx, mu1, mu2, *mags):
        if all(m.device.type == "cpu" for m in mags):
            # A few dozen numbers: numpy's per-call cost is a fraction of torch's.
            total, grads = 0.0, []
            for mag in mags:
                value, grad = _l1_entropy(mag.detach().numpy(), mu1, mu2)
                total += float(value)
                grads.append(torch.from_numpy(np.asarray(grad, dtype=mag.detach().numpy().dtype)))
            ctx.save_for_backward(*grads)
            return mags[0].new_tensor(total)
        total, grads = mags[0].new_zeros(()), []
        for mag in mags:
            value, grad = _l1_entropy(mag, mu1, mu2)
            total = total + value
            grads.append(grad)
        ctx.save_for_backward(*grads)
        return total

    @staticmethod
    def backward(ctx, g):
        return (None, None, *(g * grad for grad in ctx.saved_tensors))


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
    """``acts``: per layer either the activations ``(batch, n_in, n_out)`` or already the edge
    magnitudes ``(n_in, n_out)`` (what :meth:`KANLayer.forward_magnitudes` returns)."""
    mags = []
    for a, layer in zip(acts, layers):
        mag = edge_magnitudes(a) if a.dim() == 3 else a
        if layer.n_sum < mag.shape[1]:
            mag = mag[:, : layer.n_sum]
        if mag.numel():
            mags.append(mag)
    if not mags:
        return acts[0].new_zeros(())
    return _Penalty.apply(float(mu1), float(mu2), *mags)
