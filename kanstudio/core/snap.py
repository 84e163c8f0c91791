"""Replacing spline edges by symbolic functions: suggest, snap, auto-symbolic.

Samples for an edge are (its input, its learned spline activation) over the training inputs.
On an edge that is already snapped, suggestions still come from the spline underneath, so a
user can compare and re-snap without losing what the network learned.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from .network import KANNetwork
from .spline import bspline_basis
from .symbolic import Candidate, fit_affine, fit_one, get_function


@torch.no_grad()
def edge_samples(net: KANNetwork, X: torch.Tensor, l: int, i: int, j: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, phi_spline(x))`` of edge ``i -> j`` of layer ``l`` on inputs ``X``, 1-D, CPU, float64."""
    h = net.normalize_input(X)
    for layer in net.layers[:l]:
        h = layer(h)
    layer = net.layers[l]
    x = h[:, i]
    B = bspline_basis(h[:, i : i + 1], layer.knots[i : i + 1], layer.k)[:, 0]  # (batch, m)
    y = layer.scale_base[i, j] * F.silu(x) + layer.scale_sp[i, j] * (B @ layer.coef[i, j])
    return x.double().cpu(), y.double().cpu()


def suggest(net: KANNetwork, X: torch.Tensor, l: int, i: int, j: int, lib=None, topk: int | None = None,
            weight_complexity: float | None = None) -> list[Candidate]:
    x, y = edge_samples(net, X, l, i, j)
    kw = {} if weight_complexity is None else {"weight_complexity": weight_complexity}
    cands = fit_affine(x, y, lib, **kw)
    return cands[:topk] if topk else cands


def _apply(net: KANNetwork, l: int, i: int, j: int, c: Candidate) -> None:
    net.layers[l].set_symbolic(i, j, c.name, c.a, c.b, c.c, c.d)


def snap(net: KANNetwork, X: torch.Tensor, l: int, i: int, j: int, fn="auto", lib=None) -> Candidate:
    """Snap the edge to ``fn``: 'auto' (best-ranked), a function name, or a fitted Candidate."""
    if net.layers[l].mask[i, j] == 0:
        raise ValueError(f"edge ({l}, {i}, {j}) is pruned; there is nothing to snap")
    if isinstance(fn, Candidate):
        cand = fn
    elif fn == "auto":
        cands = suggest(net, X, l, i, j, lib=lib)
        if not cands:
            raise ValueError(f"no candidate function fits edge ({l}, {i}, {j})")
        cand = cands[0]
    else:
        get_function(fn)  # unknown name: a clear KeyError before any work
        x, y = edge_samples(net, X, l, i, j)
        cand = fit_one(x, y, fn)
        if cand is None:
            raise ValueError(f"'{fn}' cannot fit edge ({l}, {i}, {j}): its input leaves the function's domain "
                             "for every tried shift and scale")
    _apply(net, l, i, j, cand)
    return cand


@torch.no_grad()
def _mse(net: KANNetwork, X: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.mean((net(X) - y) ** 2))


def auto_symbolic(net: KANNetwork, X: torch.Tensor, y: torch.Tensor | None, r2_threshold: float = 0.99,
                  lib=None, weight_complexity: float | None = None, network_aware: bool = True,
                  n_try: int = 3, tolerance: float = 0.05, abs_tolerance: float = 1e-3) -> dict:
    """Snap each live, unsnapped edge (layer by layer) whose best candidate has R² >= threshold.

    With ``network_aware`` and targets ``y``, the first ``n_try`` qualifying candidates are each
    tried in the network; the best-ranked one whose training MSE is within ``tolerance``
    (relative) or ``abs_tolerance * var(y)`` of the best tried is kept. So a clear difference for
    the whole network decides, but the unrefitted network's preference for whatever mimics its
    slightly imperfect spline (a sliver of cos for 1/x) does not. Returns ``{'snapped': [(l, i, j, Candidate)], 'skipped': [(l, i, j, best_r2)]}``.
    """
    snapped, skipped = [], []
    slack = abs_tolerance * float(y.var()) if y is not None and y.numel() > 1 else 0.0
    for l, layer in enumerate(net.layers):
        for i in range(layer.n_in):
            for j in range(layer.n_out):
                if layer.mask[i, j] == 0 or layer.sym_mask[i, j]:
                    continue
                cands = suggest(net, X, l, i, j, lib=lib, weight_complexity=weight_complexity)
                ok = [c for c in cands if c.r2 >= r2_threshold]
                if not ok:
                    skipped.append((l, i, j, max((c.r2 for c in cands), default=float("nan"))))
                    continue
                choice = ok[0]
                if network_aware and y is not None and len(ok) > 1:
                    losses = []
                    for c in ok[:n_try]:
                        _apply(net, l, i, j, c)
                        losses.append(_mse(net, X, y))
                    best = min(losses)
                    choice = next(c for c, m in zip(ok, losses) if m <= best * (1 + tolerance) + slack + 1e-14)
                _apply(net, l, i, j, choice)
                snapped.append((l, i, j, choice))
    return {"snapped": snapped, "skipped": skipped}
