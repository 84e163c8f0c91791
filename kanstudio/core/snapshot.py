"""An immutable picture of a network for views: structure, every edge's curve, scores, status.

Built vectorised (one forward pass over a per-input sweep per layer), so a [10,10,10,1]
network snapshots in milliseconds and a training thread can publish one on a timer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .network import KANNetwork


@dataclass(frozen=True)
class NetworkSnapshot:
    """Per edge layer ``l``: ``curve_x[l] (n_pts, n_in)``, ``curve_y[l] (n_pts, n_in, n_out)``
    (edge i->j is ``curve_y[l][:, i, j]`` against ``curve_x[l][:, i]``), ``edge_score[l]``,
    ``edge_live[l]`` ``(n_in, n_out)`` and ``edge_symbolic[l][i][j]`` (function name or None).
    Per node layer: ``node_labels``, ``node_live``, ``node_is_prod``."""

    version: int
    dims: list[int]
    node_labels: list[list[str]]
    node_live: list[np.ndarray]
    node_is_prod: list[np.ndarray]
    curve_x: list[np.ndarray]
    curve_y: list[np.ndarray]
    edge_score: list[np.ndarray]
    edge_live: list[np.ndarray]
    edge_symbolic: list[list[list[str | None]]]

    @property
    def n_edges(self) -> int:
        return int(sum(int(m.sum()) for m in self.edge_live))

    def edge_importance(self) -> list[np.ndarray]:
        """Scores scaled to [0, 1] over the whole network (for opacity/width)."""
        top = max((float(s[m].max()) for s, m in zip(self.edge_score, self.edge_live) if m.any()), default=1.0)
        return [np.where(m, s / top if top > 0 else 0.0, 0.0) for s, m in zip(self.edge_score, self.edge_live)]


@torch.no_grad()
def snapshot_network(net: KANNetwork, X: torch.Tensor, input_names: list[str], target_names: list[str],
                     version: int = 0, n_pts: int = 48, max_rows: int = 2000) -> NetworkSnapshot:
    """Scores and ranges come from at most ``max_rows`` evenly spaced rows of ``X``, so a live
    refresh costs the same for a million-row dataset as for a small one."""
    if X.shape[0] > max_rows:
        X = X[torch.linspace(0, X.shape[0] - 1, max_rows, device=X.device).long()]
    trace = net.trace(X)
    scores = [s.numpy() for s in trace.edge_scale()]
    curve_x, curve_y = [], []
    for l, layer in enumerate(net.layers):
        h = trace.inputs[l]
        lo, hi = h.min(0).values, h.max(0).values
        t = torch.linspace(0, 1, n_pts, dtype=h.dtype)[:, None]
        sweep = (lo + (hi - lo) * t).to(net.device, net.dtype)
        curve_x.append(sweep.cpu().numpy())
        curve_y.append(layer.edge_values(sweep).cpu().numpy())
    dims = net.dims
    labels = [list(input_names)] + [[""] * d for d in dims[1:-1]] + [list(target_names)]
    prod = [np.zeros(dims[0], dtype=bool)] + [
        np.arange(d) >= layer.n_sum for d, layer in zip(dims[1:], net.layers)
    ]
    return NetworkSnapshot(
        version=version,
        dims=dims,
        node_labels=labels,
        node_live=[n.numpy() for n in net.live_nodes()],
        node_is_prod=prod,
        curve_x=curve_x,
        curve_y=curve_y,
        edge_score=scores,
        edge_live=[m.cpu().numpy() for m in net.live_edges()],
        edge_symbolic=[[list(r) for r in layer.sym_names] for layer in net.layers],
    )
