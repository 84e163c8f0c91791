"""A layer's edge weights stacked to match its features (the ``G + k`` basis functions, then
silu), and the gradients of the parameters from the stacked weights' gradient: shared by the
layer's autograd edge sum (layer.py)."""
from __future__ import annotations

import torch


def edge_weights(coef: torch.Tensor, scale_sp: torch.Tensor, scale_base: torch.Tensor,
                 live: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``Wt (n_in, G+k+1, n_out)``: ``coef * scale_sp`` for the basis rows, ``scale_base`` for the
    SiLU row, zero for edges that are not live splines; and the masked ``scale_sp``."""
    sp = scale_sp if live is None else scale_sp * live
    sb = scale_base if live is None else scale_base * live
    return torch.cat([coef * sp.unsqueeze(-1), sb.unsqueeze(-1)], dim=-1).transpose(1, 2), sp


def edge_weight_grads(gWt: torch.Tensor, coef: torch.Tensor, sp: torch.Tensor,
                      live: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of ``coef``, ``scale_sp`` and ``scale_base`` from that of ``Wt``."""
    gW = gWt.transpose(1, 2)  # (n_in, n_out, M)
    g_sp = gW[..., :-1]
    g_coef = g_sp * sp.unsqueeze(-1)
    g_scale_sp = torch.linalg.vecdot(g_sp, coef)
    g_scale_base = gW[..., -1]
    if live is not None:
        g_scale_sp = g_scale_sp * live
        g_scale_base = g_scale_base * live
    return g_coef, g_scale_sp, g_scale_base
