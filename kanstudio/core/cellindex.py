"""Which knot span each sample falls in, without a binary search (:class:`_CellIndex`): the
span lookup of :class:`~kanstudio.core.spline.KnotTables` for uneven knots."""
from __future__ import annotations

import math

import torch


class _CellIndex:
    """Span lookup without a binary search: each input's knot range is cut into ``Nc`` equal
    cells, narrower than half the smallest knot gap, so a cell holds at most one knot. A sample's
    span is then the span at its cell's left edge plus one if it lies at or past the cell's knot:
    a handful of vectorised elementwise ops instead of a branchy binary search (about 2x faster
    than ``torch.searchsorted`` for 40k samples on CPU, and no transposes).

    Rounding at a cell edge can only move a sample that sits within rounding of a knot to the
    neighbouring span, where the (continuous) basis has the same value to rounding. Knot vectors
    too uneven for a small table (``Nc`` > ``MAX_CELLS``) keep ``torch.searchsorted``.
    """

    MAX_CELLS = 4096

    @classmethod
    def build(cls, knots: torch.Tensor, S: int) -> "_CellIndex | None":
        t = knots.double()
        n, K = t.shape
        gaps = t.diff(dim=1)
        lo, hi = t[:, 0], t[:, -1]
        if K < 2 or not bool((gaps > 0).all()) or not bool(torch.isfinite(t).all()):
            return None
        ratio = float(((hi - lo) / gaps.min(1).values).max())
        Nc = int(math.ceil(2.0 * ratio)) + 1
        if Nc > cls.MAX_CELLS:
            return None
        self = cls()
        dev = knots.device
        inv_w = Nc / (hi - lo)  # cells per unit, (n,)
        # cell c' = floor((x - lo) * inv_w) + 1 in [0, Nc + 1]; 0: left of the knots, Nc + 1: right
        edges = lo[:, None] + (hi - lo)[:, None] * (torch.arange(Nc, dtype=t.dtype, device=dev) / Nc)  # (n, Nc)
        cnt = torch.searchsorted(t.contiguous(), edges.contiguous(), right=True)  # knots <= left edge
        nxt = torch.cat([t, torch.full((n, 1), math.inf, dtype=t.dtype, device=dev)], 1).gather(1, cnt.clamp_max(K))
        right = torch.cat([edges[:, 1:], hi[:, None]], 1)
        # The knot inside the cell, if any; NaN (never <= x, not even for x = +inf) otherwise.
        tin = torch.where(nxt < right, nxt, torch.full_like(nxt, math.nan))
        cnt = torch.cat([torch.zeros(n, 1, dtype=cnt.dtype, device=dev), cnt,
                         torch.full((n, 1), K, dtype=cnt.dtype, device=dev)], 1)
        tin = torch.cat([torch.full((n, 1), math.nan, dtype=t.dtype, device=dev), tin,
                         torch.full((n, 1), math.nan, dtype=t.dtype, device=dev)], 1)
        row = torch.arange(n, device=dev)[:, None]
        self.span = (cnt + row * S).reshape(-1)  # flat (input, span) index at each cell's left edge
        self.knot = tin.reshape(-1).to(knots.dtype)
        # One clamp keeps every later step finite: far below / above the knots -> half a cell
        # outside them (cells 0 and Nc + 1, "outside" cells with zero polynomials).
        self.lo = (lo - 0.5 * (hi - lo) / Nc).to(knots.dtype)
        self.hi = (hi + 0.5 * (hi - lo) / Nc).to(knots.dtype)
        # flat cell index = clamp(floor((x - lo) * Nc / (hi - lo)) + 1, 0, Nc + 1) + input * (Nc + 2);
        # the input offset is added in integers, so float32 keeps its precision for the fraction.
        self.scale = inv_w.to(knots.dtype)
        self.shift = (1.0 - lo * inv_w).to(knots.dtype)
        self.top = Nc + 1
        self.first = row[:, 0] * (Nc + 2)
        return self

    def lookup(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (batch, n_in)`` -> (flat (input, span) index ``(batch * n_in,)``, ``x`` clamped into
        the cells' range). NaN lands in some outside cell (any is fine: its values are NaN anyway)."""
        xc = torch.clamp(x, self.lo, self.hi)
        ci = torch.addcmul(self.shift, xc, self.scale).to(torch.long)
        ci = ci.clamp_(0, self.top).add_(self.first).view(-1)  # the clamp also guards NaN (undefined int)
        return self.span.take(ci) + (xc.view(-1) >= self.knot.take(ci)), xc
