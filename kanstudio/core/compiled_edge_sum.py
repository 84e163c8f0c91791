"""A layer's spline + SiLU edges summed at the nodes, forward and backward in compiled loops
(``csrc/edge_sum.c``), for CPU float32 / float64 layers.

The torch path (layer.py's ``_EdgeSum``) multiplies the dense feature block ``(batch, n_in,
G+k+1)`` with the weights; ``k + 2`` entries per row of it are nonzero, and building it, its
gradient block and the input gradient from that cost more than the matmuls. Here each sample's
basis is recomputed where it is needed and only the weight rows of its ``k + 2`` nonzero
functions are touched, so no block is ever built. 64 -> 64, batch 4096, float32, forward +
backward (benchmarks/layer_forward_backward.py): 6.2-8.1x an nn.Linear + SiLU layer, against
11.4-11.7x through the block. layer.py decides when to use it (:func:`edge_sum_ok`); tests
check it against the torch path and with gradcheck.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from .compiled_block import _kernels
from .edge_weights import edge_weight_grads, edge_weights
from .spline import KnotTables


def edge_sum_ok(x: torch.Tensor, *params: torch.Tensor) -> bool:
    return (_kernels is not None and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
            and x.dim() == 2 and x.shape[0] > 0 and all(p.device.type == "cpu" and p.dtype == x.dtype for p in params))


def _tables(T: KnotTables, dtype: torch.dtype) -> tuple[np.ndarray, ...]:
    """The knot tables as the loops read them, built once per KnotTables and dtype: knots (n, K),
    per-span polynomials (n, S, degree, slot), span_t (n, S), start (n, S) int32."""
    cache = T.derived.setdefault("edge_sum", {})
    if dtype not in cache:
        n, S = T.n_in, T.S
        f = lambda t: np.ascontiguousarray(t.detach().to(dtype).cpu().numpy())  # noqa: E731
        cache[dtype] = (f(T.knots), f(T.coef.T.reshape(n, S, -1)), f(T.span_t.reshape(n, S)),
                        np.ascontiguousarray(T.start.reshape(n, S).cpu().numpy(), dtype=np.int32))
    return cache[dtype]


def _threads(b: int, n: int, o: int) -> int:
    """All of torch's threads (csrc/omp_team.c runs the jobs on its OpenMP team) once the work
    is worth a fork-join: ~0.1 ms and up."""
    return min(torch.get_num_threads(), 8) if b * n * max(o, 8) >= 1 << 18 else 1


class CompiledEdgeSum(torch.autograd.Function):
    """``out = (sum_i phi_ij(x_i)) * node_scale + bias`` with ``phi_ij = scale_base * silu +
    scale_sp * spline``: the same function and arguments as layer.py's ``_EdgeSum`` (``live``
    and ``node_scale`` constants, None when all ones; ``stats``: also the edge magnitudes
    ``mean_b |phi_ij|``), from ``x (batch, n_in)`` and the layer's :class:`KnotTables` instead
    of a feature block. The magnitudes' gradient adds ``g_mag / batch * sign(phi)`` to each
    edge's; the loops recompute ``phi`` for it rather than keep ``(batch, n_in, n_out)`` signs."""

    @staticmethod
    def forward(ctx, x, tables, coef, scale_sp, scale_base, bias, live, node_scale, stats=False):
        x = x.detach().contiguous()
        b, n = x.shape
        o = coef.shape[1]
        Wt, sp = edge_weights(coef.detach(), scale_sp.detach(), scale_base.detach(), live)
        Wt = Wt.contiguous()
        arrays = _tables(tables, x.dtype)
        Y = x.new_empty(b, o)
        mags = x.new_empty(n, o) if stats else None
        nt = _threads(b, n, o)
        _kernels.edge_sum_forward(n, b, o, arrays[0].shape[1], tables.k, x.element_size(), x.numpy(), *arrays,
                                  Wt.numpy(), Y.numpy(), None if mags is None else mags.numpy(), nt)
        ctx.save_for_backward(x, coef, Wt)
        ctx.tables, ctx.sp, ctx.live, ctx.node_scale, ctx.nt = tables, sp, live, node_scale, nt
        out = torch.addcmul(bias, Y, node_scale) if node_scale is not None else Y.add_(bias)
        return (out, mags) if stats else out

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, g_mag=None):
        x, coef, Wt = ctx.saved_tensors
        b, n = x.shape
        o = coef.shape[1]
        ns = ctx.node_scale
        gY = (g_out if ns is None else g_out * ns).to(x.dtype).contiguous()
        r = None if g_mag is None else (g_mag / b).to(x.dtype).contiguous()
        gWt = torch.empty_like(Wt)
        gx = x.new_empty(b, n) if ctx.needs_input_grad[0] else None
        arrays = _tables(ctx.tables, x.dtype)
        _kernels.edge_sum_backward(n, b, o, arrays[0].shape[1], ctx.tables.k, x.element_size(), x.numpy(), *arrays,
                                   Wt.numpy(), gY.numpy(), None if r is None else r.numpy(), gWt.numpy(),
                                   None if gx is None else gx.numpy(), ctx.nt)
        g_coef, g_sp, g_sb = edge_weight_grads(gWt, coef, ctx.sp, ctx.live)
        return gx, None, g_coef, g_sp, g_sb, g_out.sum(0), None, None, None
