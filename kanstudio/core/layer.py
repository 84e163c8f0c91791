"""One KAN layer: a learnable 1-D function on every edge, summed (or multiplied) at the nodes.

Edge (i -> j):  phi_ij(x) = w_b[i,j] * silu(x) + w_s[i,j] * sum_m coef[i,j,m] B_m(x)
or, once snapped to a symbolic function:  phi_ij(x) = c * f(a * x + b) + d.

Node j: a *sum* node outputs ``sum_i phi_ij(x_i) + bias_j``; a *product* node (the last
``n_prod`` outputs, as in KAN 2.0's multiplication nodes, but n-ary) outputs
``node_scale_j * prod_i phi_ij(x_i) + bias_j`` over its live incoming edges.
``bias`` and ``node_scale`` are where pruned edges leave their mean, so pruning does not change
what the network computes.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .edge_weights import edge_weight_grads, edge_weights
from .spline import KnotTables, adaptive_grid, bspline_basis, extend_grid, features, lstsq_coef, uniform_grid


def _symbolic(name: str):
    from .symbolic.library import get_function  # late: the library imports torch-heavy parsing

    return get_function(name)


class _EdgeSum(torch.autograd.Function):
    """A layer's spline+SiLU edges summed at the nodes, as one autograd node with a hand-written
    backward (a tiny network's step is dominated by per-op overhead, not arithmetic), from the
    dense feature block. (Training on the CPU goes through objective.py instead; a compiled
    edge sum here bought nothing there and was removed, see docs/kernels.md.)

    ``F (batch, n_in, M)`` features (basis, then silu; ``M = G+k+1``); weights ``coef (n_in, n_out,
    G+k)``, ``scale_sp``, ``scale_base`` ``(n_in, n_out)``; ``bias (n_out,)``; ``live`` (mask, or
    None when all edges are live splines) and ``node_scale`` (or None when all ones) are constants.

    ``stats=False``: returns ``out = (F_flat @ W) * node_scale + bias`` -- one matmul.
    ``stats=True``: also the edge magnitudes ``mean_b |phi_ij|`` ``(n_in, n_out)``; the activations
    ``(n_in, batch, n_out)`` come from one batched matmul and the output is their sum.
    """

    @staticmethod
    def forward(ctx, Fx, coef, scale_sp, scale_base, bias, live, node_scale, stats):
        b, n, M = Fx.shape
        Wt, sp = edge_weights(coef, scale_sp, scale_base, live)  # (n, M, o)
        ctx.stats, ctx.sp = stats, sp
        ctx.live, ctx.node_scale = live, node_scale
        if stats:
            A = torch.bmm(Fx.transpose(0, 1), Wt)  # (n_in, batch, n_out)
            Y = A.sum(0)
            mags = torch.linalg.vector_norm(A, 1, dim=1).div_(b)
            ctx.save_for_backward(Fx, coef, Wt, torch.sign(A))
        else:
            Wt = Wt.reshape(n * M, -1)
            Y = Fx.view(b, n * M) @ Wt
            ctx.save_for_backward(Fx, coef, Wt)
        out = torch.addcmul(bias, Y, node_scale) if node_scale is not None else Y.add_(bias)
        if stats:
            return out, mags
        return out

    @staticmethod
    def backward(ctx, g_out, g_mag=None):
        live, ns = ctx.live, ctx.node_scale
        gY = g_out if ns is None else g_out * ns
        need_F = ctx.needs_input_grad[0]
        gF = None
        if ctx.stats:
            Fx, coef, Wt, sgn = ctx.saved_tensors
            b = Fx.shape[0]
            dA = gY.unsqueeze(0) if g_mag is None else torch.addcmul(gY.unsqueeze(0), sgn, g_mag.unsqueeze(1), value=1.0 / b)
            if dA.shape[0] != Wt.shape[0]:
                dA = dA.expand(Wt.shape[0], -1, -1)
            gWt = torch.bmm(Fx.permute(1, 2, 0), dA)  # (n_in, M, n_out)
            if need_F:
                gF = torch.bmm(dA, Wt.transpose(1, 2)).transpose(0, 1)
        else:
            Fx, coef, Wt = ctx.saved_tensors
            b, n, M = Fx.shape
            gWt = (Fx.view(b, n * M).T @ gY).view(n, M, -1)
            if need_F:
                gF = (gY @ Wt.T).view(b, n, M)
        g_coef, g_scale_sp, g_scale_base = edge_weight_grads(gWt, coef, ctx.sp, live)
        return gF, g_coef, g_scale_sp, g_scale_base, g_out.sum(0), None, None, None


class KANLayer(nn.Module):
    """``n_in -> n_out`` KAN layer with ``G`` grid intervals of order ``k`` per input.

    Buffers: ``knots (n_in, G+2k+1)``, ``mask (n_in, n_out)`` (1 live, 0 pruned),
    ``sym_mask (n_in, n_out)`` (edge uses its symbolic override), ``node_scale (n_out,)``.
    Parameters: ``coef (n_in, n_out, G+k)``, ``scale_base``, ``scale_sp`` ``(n_in, n_out)``,
    ``bias (n_out,)``, ``sym_params (n_in, n_out, 4)`` = (a, b, c, d) per edge.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        grid: int = 5,
        k: int = 3,
        n_prod: int = 0,
        grid_range: tuple[float, float] = (-1.0, 1.0),
        noise_scale: float = 0.1,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ):
        super().__init__()
        if k < 1 or grid < 1:
            raise ValueError(f"need grid >= 1 and k >= 1, got grid={grid}, k={k}")
        if not 0 <= n_prod <= n_out:
            raise ValueError(f"n_prod={n_prod} must be between 0 and n_out={n_out}")
        self.n_in, self.n_out, self.G, self.k, self.n_prod = n_in, n_out, grid, k, n_prod
        g = generator
        lo = torch.full((n_in,), float(grid_range[0]), dtype=dtype)
        hi = torch.full((n_in,), float(grid_range[1]), dtype=dtype)
        self.register_buffer("knots", extend_grid(uniform_grid(lo, hi, grid), k))
        self.register_buffer("mask", torch.ones(n_in, n_out, dtype=dtype))
        self.register_buffer("sym_mask", torch.zeros(n_in, n_out, dtype=torch.bool))
        self.register_buffer("node_scale", torch.ones(n_out, dtype=dtype))

        m = grid + k
        coef = (torch.rand(n_in, n_out, m, generator=g, dtype=dtype) - 0.5) * noise_scale / grid
        base = (torch.rand(n_in, n_out, generator=g, dtype=dtype) * 2 - 1) / math.sqrt(n_in)
        if n_prod:
            # A product of near-zero factors has near-zero gradients: start product inputs at ~1.
            coef[:, n_out - n_prod :] += 1.0
            base[:, n_out - n_prod :] *= 0.1
        self.coef = nn.Parameter(coef)
        self.scale_base = nn.Parameter(base)
        self.scale_sp = nn.Parameter(torch.full((n_in, n_out), 1 / math.sqrt(n_in), dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(n_out, dtype=dtype))
        self.sym_params = nn.Parameter(
            torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=dtype).repeat(n_in, n_out, 1)
        )
        self.sym_names: list[list[str | None]] = [[None] * n_out for _ in range(n_in)]
        self._tables: tuple | None = None
        self._basis_cache: tuple | None = None
        self._struct: tuple | None = None
        self._no_splines = False  # set with _struct: no live spline edge (all snapped or pruned)

    # ----------------------------------------------------------------- basis (cached)
    def tables(self) -> KnotTables:
        key = (id(self.knots), self.knots._version, self.knots.device, self.k)
        if self._tables is None or self._tables[0] != key:
            self._tables = (key, KnotTables(self.knots, self.k))
        return self._tables[1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, n_in, G+k+1)``: every input's B-spline basis, then ``silu(x)`` (see spline.py).
        For a constant input (the first layer sees the same training tensor at every optimiser
        step) the block is computed once and reused."""
        T = self.tables()
        if x.requires_grad and torch.is_grad_enabled():
            return features(x, T)
        key = (id(x), x._version, id(T))
        c = self._basis_cache
        if c is not None and c[0] == key and c[1] is x:
            return c[2]
        F = features(x, T)
        self._basis_cache = (key, x, F)
        return F

    def basis(self, x: torch.Tensor) -> torch.Tensor:
        """``(n_in, G+k, batch)`` basis (a view of :meth:`features`)."""
        return self.features(x)[:, :, :-1].permute(1, 2, 0)

    def _structure(self) -> tuple[torch.Tensor | None, bool, bool]:
        """(live-edge mask or None when every edge is a live spline, node_scale is all ones, any
        symbolic edge) -- re-read only when mask / sym_mask / node_scale change."""
        key = tuple((id(t), t._version) for t in (self.mask, self.sym_mask, self.node_scale))
        if self._struct is None or self._struct[0] != key:
            live = self.mask * (~self.sym_mask).to(self.mask.dtype)
            self._struct = (key, None if bool((live == 1).all()) else live,
                            bool((self.node_scale == 1).all()), bool(self.sym_mask.any()))
            self._no_splines = bool((live == 0).all())
        return self._struct[1:]

    def _weight_matrix(self, live: torch.Tensor | None) -> torch.Tensor:
        """``(n_in, G+k+1, n_out)``: the weights matching :meth:`features` -- ``coef * scale_sp``
        for the basis rows, ``scale_base`` for the SiLU row -- zero for pruned/symbolic edges."""
        return edge_weights(self.coef, self.scale_sp, self.scale_base, live)[0]

    # ----------------------------------------------------------------- structure
    @property
    def n_sum(self) -> int:
        return self.n_out - self.n_prod

    def is_prod(self, j: int) -> bool:
        return j >= self.n_sum

    def symbolic_edges(self) -> list[tuple[int, int, str]]:
        return [
            (i, j, name)
            for i, row in enumerate(self.sym_names)
            for j, name in enumerate(row)
            if name is not None and self.mask[i, j] > 0
        ]

    # ----------------------------------------------------------------- forward
    def _spline_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        live = self.mask * (~self.sym_mask).to(self.mask.dtype)
        return self.scale_base * live, self.coef * (self.scale_sp * live).unsqueeze(-1)

    def _symbolic_values(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per function name: (rows I, cols J, values (batch, len(I))) of the snapped edges."""
        groups: dict[str, list[tuple[int, int]]] = {}
        for i, j, name in self.symbolic_edges():
            groups.setdefault(name, []).append((i, j))
        out = []
        for name, edges in groups.items():
            I = torch.tensor([e[0] for e in edges], device=x.device)
            J = torch.tensor([e[1] for e in edges], device=x.device)
            p = self.sym_params[I, J]  # (e, 4)
            u = p[:, 0] * x[:, I] + p[:, 1]
            out.append((I, J, p[:, 2] * _symbolic(name).torch_fn(u) + p[:, 3]))
        return out

    def edge_values(self, x: torch.Tensor, basis: torch.Tensor | None = None) -> torch.Tensor:
        """Every edge's activation ``phi_ij(x_i)``: ``(batch, n_in, n_out)``; pruned edges are 0."""
        live, _, has_sym = self._structure()
        if basis is None and self._no_splines:
            acts = x.new_zeros(x.shape[0], self.n_in, self.n_out)
            for I, J, v in self._symbolic_values(x):
                acts[:, I, J] = acts[:, I, J] + v
            return acts
        if basis is None:
            Fx = self.features(x)
        else:  # an explicit (n_in, G+k, batch) basis
            Fx = torch.cat([basis.permute(2, 0, 1), F.silu(x).unsqueeze(-1)], dim=-1)
        acts = torch.bmm(Fx.transpose(0, 1), self._weight_matrix(live)).transpose(0, 1)
        if has_sym:
            acts = acts.clone()
            for I, J, v in self._symbolic_values(x):
                acts[:, I, J] = acts[:, I, J] + v
        return acts

    def combine(self, acts: torch.Tensor) -> torch.Tensor:
        """Node values ``(batch, n_out)`` from edge activations ``(batch, n_in, n_out)``."""
        out = acts[:, :, : self.n_sum].sum(1)
        if self.n_prod:
            m = self.mask[:, self.n_sum :] > 0
            p = torch.where(m, acts[:, :, self.n_sum :], torch.ones_like(acts[:, :, self.n_sum :]))
            out = torch.cat([out, p.prod(1)], dim=1)
        return out * self.node_scale + self.bias

    def forward(self, x: torch.Tensor, return_acts: bool = False):
        """``x (batch, n_in)`` -> ``(batch, n_out)``, and the per-edge activations if asked.

        Without ``return_acts`` and without product nodes no ``(batch, n_in, n_out)`` tensor is
        built: the sum over edges is one autograd node (:meth:`_edge_sum`).
        """
        if return_acts or self.n_prod:
            acts = self.edge_values(x)
            out = self.combine(acts)
            return (out, acts) if return_acts else out
        live, unit_scale, has_sym = self._structure()
        if not has_sym:
            return self._edge_sum(x, live, unit_scale, stats=False)
        if self._no_splines:  # every live edge is snapped (a refit after auto-symbolic): no basis needed
            out = x.new_zeros(x.shape[0], self.n_out)
        else:
            Fx = self.features(x)
            out = Fx.view(x.shape[0], -1) @ self._weight_matrix(live).reshape(-1, self.n_out)
        for I, J, v in self._symbolic_values(x):
            out = out.index_add(1, J, v)
        return out * self.node_scale + self.bias

    def forward_magnitudes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output ``(batch, n_out)`` and every edge's mean ``|phi|`` over the batch ``(n_in, n_out)``
        (the sparsity penalty's input), building the activations once: the output is their sum."""
        live, unit_scale, has_sym = self._structure()
        if self.n_prod or has_sym:
            acts = self.edge_values(x)
            return self.combine(acts), acts.abs().mean(0)
        return self._edge_sum(x, live, unit_scale, stats=True)

    def _edge_sum(self, x: torch.Tensor, live: torch.Tensor | None, unit_scale: bool, stats: bool):
        """A plain spline layer as one autograd node: the dense feature block and matmuls."""
        args = (self.coef, self.scale_sp, self.scale_base, self.bias, live, None if unit_scale else self.node_scale, stats)
        return _EdgeSum.apply(self.features(x), *args)

    # ----------------------------------------------------------------- grids
    def _spline_part(self, x: torch.Tensor) -> torch.Tensor:
        B = bspline_basis(x, self.tables(), self.k)
        return torch.einsum("bim,iom->bio", B, self.coef)

    @staticmethod
    def _fit_points(x: torch.Tensor, n_uniform: int = 64) -> torch.Tensor:
        """Samples plus a uniform sweep of their range, so gaps in the data stay well fitted."""
        lo, hi = x.min(0).values, x.max(0).values
        t = torch.linspace(0, 1, n_uniform, dtype=x.dtype, device=x.device)[:, None]
        return torch.cat([x, lo + (hi - lo) * t], dim=0)

    @torch.no_grad()
    def update_grid(self, x: torch.Tensor, eps: float = 0.02) -> None:
        """Move the knots to the samples ``x (batch, n_in)``, keeping every edge's function."""
        self._regrid(x, self.G, eps)

    @torch.no_grad()
    def extend(self, x: torch.Tensor, grid: int, eps: float = 0.02) -> None:
        """Refit every edge on a finer (or coarser) grid of ``grid`` intervals from samples ``x``."""
        self._regrid(x, grid, eps)

    def _regrid(self, x: torch.Tensor, grid: int, eps: float) -> None:
        pts = self._fit_points(x)
        target = self._spline_part(pts)
        knots = extend_grid(adaptive_grid(x, grid, eps), self.k)
        tables = KnotTables(knots, self.k)  # built once: the refit, the forward pass and the
        coef = lstsq_coef(pts, target, tables, self.k)  # training objective all read it
        self.G = grid
        self.knots = knots
        self._tables = ((id(knots), knots._version, knots.device, self.k), tables)
        coef = coef.to(self.coef.dtype)
        if coef.shape == self.coef.shape:
            self.coef.data.copy_(coef)  # same Parameter object: optimisers keep working
        else:
            self.coef = nn.Parameter(coef)

    # ----------------------------------------------------------------- symbolic slots
    @torch.no_grad()
    def set_symbolic(self, i: int, j: int, name: str, a=1.0, b=0.0, c=1.0, d=0.0) -> None:
        _symbolic(name)  # unknown names fail here, before anything changes
        self.sym_names[i][j] = name
        self.sym_mask[i, j] = True
        self.sym_params[i, j] = torch.tensor([a, b, c, d], dtype=self.sym_params.dtype)

    @torch.no_grad()
    def unset_symbolic(self, i: int, j: int) -> None:
        self.sym_names[i][j] = None
        self.sym_mask[i, j] = False

    # ----------------------------------------------------------------- state that is not a tensor
    def extra_state_dict(self) -> dict:
        return {"G": self.G, "k": self.k, "n_prod": self.n_prod, "sym_names": self.sym_names}

    def load_extra_state_dict(self, state: dict) -> None:
        self.G, self.k, self.n_prod = int(state["G"]), int(state["k"]), int(state["n_prod"])
        self.sym_names = [list(r) for r in state["sym_names"]]

    def resize_for_state(self, state: dict[str, torch.Tensor], prefix: str) -> None:
        """Make parameter shapes match a saved state (a refined grid changes ``coef``'s shape)."""
        c = state[prefix + "coef"]
        if c.shape != self.coef.shape:
            self.coef = nn.Parameter(torch.zeros_like(c))
            self.knots = torch.zeros_like(state[prefix + "knots"])
