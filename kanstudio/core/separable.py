"""Alternating least squares for a product node: y ~ prod_i phi_i(x_i) + bias.

With every factor but one fixed, the remaining factor's base weight and spline coefficients
enter linearly, so each update is an exact (ridge-regularised) least-squares solve. A few rounds
give the rank-1 separable fit that gradient descent reaches slowly or not at all (1/y factors
on [1, 2] stalled LBFGS at a plateau), and LBFGS then only polishes.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from .spline import bspline_basis


@torch.no_grad()
def als_product(net, X: torch.Tensor, y: torch.Tensor, rounds: int = 12, ridge: float = 1e-8) -> None:
    """Initialise a single-layer product network ``[n, (0, 1)]`` in place."""
    if len(net.layers) != 1 or net.layers[0].n_prod != 1 or net.layers[0].n_out != 1:
        raise ValueError("als_product needs a width of the form [n, (0, 1)]")
    net.update_grid(X)
    layer = net.layers[0]
    h = net.normalize_input(X).double()
    target = ((y.reshape(-1).double() - net.out_shift[0]) / net.out_scale[0])
    feats = []
    for i in range(layer.n_in):
        B = bspline_basis(h[:, i : i + 1], layer.knots[i : i + 1].double(), layer.k)[:, 0]
        feats.append(torch.cat([F.silu(h[:, i : i + 1]), B, torch.ones_like(B[:, :1])], 1))
    # Random (seeded) starting factors: from constant ones, a factor whose conditional mean is 0
    # (x in x*y on [-1, 1]) solves to 0 and the next solve has nothing to divide by.
    g = torch.Generator().manual_seed(int(getattr(net, "seed", 0)))
    dev = h.device  # drawn on the CPU (the same numbers on every device), then moved
    f64 = torch.float64
    theta = [torch.cat([torch.zeros(1, dtype=f64), 1 + torch.randn(layer.G + layer.k, generator=g, dtype=f64),
                        torch.zeros(1, dtype=f64)]).to(dev) for _ in feats]
    live = [bool(layer.mask[i, 0] > 0) for i in range(layer.n_in)]
    phis = [f @ t for f, t in zip(feats, theta)]
    bias = torch.zeros((), dtype=torch.float64, device=dev)
    for _ in range(rounds):
        for i in range(layer.n_in):
            if not live[i]:
                continue
            others = torch.ones_like(target)
            for j in range(layer.n_in):
                if j != i and live[j]:
                    others = others * phis[j]
            A = torch.cat([feats[i][:, :-1] * others[:, None], torch.ones_like(others[:, None])], 1)
            AtA = A.T @ A
            AtA += ridge * AtA.diagonal().mean() * torch.eye(A.shape[1], dtype=A.dtype, device=dev)
            sol = torch.linalg.solve(AtA, A.T @ target)
            theta[i] = torch.cat([sol[:-1], sol.new_zeros(1)])
            bias = sol[-1]
            phis[i] = feats[i] @ theta[i]
    for i in range(layer.n_in):
        if live[i]:
            layer.scale_base[i, 0] = theta[i][0]
            layer.scale_sp[i, 0] = 1.0
            layer.coef[i, 0] = theta[i][1:-1].to(layer.coef.dtype)
    layer.node_scale[0] = 1.0
    layer.bias[0] = bias
