"""B-splines on per-input knot vectors, and the least-squares fits that move edges between grids.

Shapes: ``batch`` samples, ``n_in`` inputs, ``n_out`` outputs, ``G`` grid intervals,
order ``k``; an extended knot vector has ``G + 2k + 1`` knots and carries ``G + k`` coefficients.
"""
from __future__ import annotations

import torch

from .cellindex import _CellIndex

__all__ = [
    "uniform_grid",
    "adaptive_grid",
    "extend_grid",
    "bspline_basis",
    "bspline_basis_T",
    "bspline_basis_dense",
    "features",
    "KnotTables",
    "spline_eval",
    "lstsq_coef",
]


def uniform_grid(lo: torch.Tensor, hi: torch.Tensor, G: int) -> torch.Tensor:
    """Interior knots ``(n_in, G + 1)`` equally spaced on ``[lo, hi]`` per input."""
    t = torch.linspace(0.0, 1.0, G + 1, dtype=lo.dtype, device=lo.device)
    return lo[:, None] + (hi - lo)[:, None] * t[None, :]


def adaptive_grid(x: torch.Tensor, G: int, eps: float = 0.02, margin: float = 0.0) -> torch.Tensor:
    """Interior knots ``(n_in, G + 1)`` from samples ``x (batch, n_in)``.

    ``eps * uniform + (1 - eps) * quantile``: quantile knots put resolution where the data is,
    the uniform share keeps knots apart when samples pile up (duplicates, discrete inputs).
    """
    xs = torch.sort(x, dim=0).values
    n = xs.shape[0]
    idx = torch.linspace(0, n - 1, G + 1, device=x.device).round().long()
    quant = xs[idx].T  # (n_in, G + 1)
    lo, hi = xs[0], xs[-1]
    span = (hi - lo).clamp_min(1e-4 * (1.0 + lo.abs()))  # a constant input still gets a real grid
    lo = lo - margin * span
    hi = lo + span * (1 + 2 * margin)
    uni = uniform_grid(lo, hi, G)
    quant = torch.cat([lo[:, None], quant[:, 1:-1], hi[:, None]], dim=1)
    return eps * uni + (1 - eps) * quant


def extend_grid(grid: torch.Tensor, k: int) -> torch.Tensor:
    """Add ``k`` knots on each side at the spacing of the first/last interval: ``(n_in, G + 2k + 1)``."""
    if k == 0:
        return grid
    h_lo = (grid[:, 1] - grid[:, 0])[:, None]
    h_hi = (grid[:, -1] - grid[:, -2])[:, None]
    steps = torch.arange(1, k + 1, dtype=grid.dtype, device=grid.device)[None, :]
    left = grid[:, :1] - h_lo * steps.flip(1)
    right = grid[:, -1:] + h_hi * steps
    return torch.cat([left, grid, right], dim=1)


class KnotTables:
    """Everything about one knot vector that does not depend on ``x``, computed once per grid.

    * ``inv[p-1]`` = ``1 / (t[m+p] - t[m])`` per recursion level (zero spans get 0, the Cox-de Boor
      convention for 0/0), for the dense reference recursion :func:`bspline_basis_dense`;
    * the *local* form used everywhere else: on the span ``t_j <= x < t_{j+1}`` only the ``k + 1``
      functions ``B_{j-k} .. B_j`` are nonzero, and each is a degree-``k`` polynomial in
      ``u = x - t_j``. ``coef`` holds those polynomials for every span, so evaluating the basis is
      a span search, one table gather and ``k`` fused multiply-adds (Horner) instead of ``k``
      levels of recursion over all ``G + k`` functions.

    Local tables (``S = K + 1`` spans per input, ``s = searchsorted(knots, x, right=True)``; spans
    ``0`` and ``K`` lie outside the knots, where every function is 0), flat over ``(input, span)``:
    ``span_t`` = ``t_{s-1}``; ``coef ((k+1) [degree] * (k+1) [slot], n_in * S)``; ``start`` the
    basis index of slot 0.
    Near the ends the window of ``k + 1`` slots is shifted inward so it always lies inside the
    ``G + k`` functions (slots for functions that do not exist there hold zero polynomials): the
    window is always the ``k + 1`` consecutive columns ``start .. start + k``, so writing the
    dense block and reading its gradient need one index per sample, not one per value.
    ``cells``: the span lookup (:class:`_CellIndex`); ``uniform``: the arithmetic shortcut for
    equally spaced knots (:class:`_UniformGrid`), or None.
    """

    def __init__(self, knots: torch.Tensor, k: int):
        self.knots, self.k = knots, k
        self.inv = []
        for p in range(1, k + 1):
            den = knots[:, p:] - knots[:, :-p]  # (n_in, K - p)
            self.inv.append(torch.where(den > 0, 1.0 / den.clamp_min(1e-300), torch.zeros_like(den)))
        n, K = knots.shape
        self.n_in, self.n_basis = n, K - k - 1
        self.sorted = knots.contiguous()
        self.lo, self.hi = self.sorted[:, 0], self.sorted[:, -1]
        C, tj, c0 = _span_polynomials(knots, k)  # float64
        S = self.S = K + 1
        self.span_t = tj.reshape(n * S).to(knots.dtype)
        # (degree * slot, n_in * S): gathering columns gives contiguous rows per (degree, slot).
        self.coef = C.reshape(n * S, (k + 1) ** 2).T.contiguous().to(knots.dtype)
        self.start = c0.reshape(n * S).contiguous()
        self.row = (torch.arange(n, device=knots.device) * S)[:, None]  # (n_in, 1)
        self.cells = _CellIndex.build(knots, S)
        self.uniform = _UniformGrid.detect(knots, k)


class _UniformGrid:
    """Equally spaced knots (fresh layers, ``grid_eps = 1`` updates): the span is arithmetic and
    every basis function is a shifted copy of one cardinal B-spline, so on every interior span the
    ``k + 1`` local values are the *same* ``k + 1`` polynomials in the fraction ``f`` of the span.
    No span search, no coefficient gather: a multiply-add, a floor, the powers of ``f`` and a
    ``(k+1) x (k+1)`` matrix of constant coefficients (``A``; ``D`` for the derivatives).

    Only samples inside the grid range ``[t_k, t_{G+k})`` take it (there every window is complete
    and unshifted); the rest (extension spans, outside, NaN) go through the tables. Knots count as
    uniform when every knot is within a few ulps of the arithmetic progression through the first
    and last: the shortcut then differs from the tables by rounding only.
    """

    ULPS = 4

    @classmethod
    def detect(cls, knots: torch.Tensor, k: int) -> "_UniformGrid | None":
        t = knots.double()
        n, K = t.shape
        G = K - 2 * k - 1
        if G < 1 or not bool(torch.isfinite(t).all()):
            return None
        h = (t[:, -1] - t[:, 0]) / (K - 1)  # (n,)
        if not bool((h > 0).all()):
            return None
        line = t[:, :1] + h[:, None] * torch.arange(K, dtype=t.dtype, device=t.device)
        tol = cls.ULPS * torch.finfo(knots.dtype).eps * t.abs().amax(1).clamp_min(h)
        if not bool(((t - line).abs().amax(1) <= tol).all()):
            return None
        self = cls()
        dt, R = knots.dtype, k + 1
        self.G = G
        # t' = (x - t_k) / h: the interior spans are 0 <= t' < G, span index = window start
        self.scale = (1.0 / h).to(dt)
        self.shift = (-(t[:, 0] + k * h) / h).to(dt)
        # The cardinal pieces: the local tables of unit knots -k .. k+1, at their one interior span.
        unit = torch.arange(-k, k + 2, dtype=torch.float64, device=t.device)[None]
        A = _span_polynomials(unit, k)[0][0, k + 1].T  # (slot, degree): polynomials in f
        self.A = A.to(dt).contiguous()
        D = A[:, 1:] * torch.arange(1, R, dtype=A.dtype, device=A.device)  # d/df
        self.D = D.to(dt).contiguous()
        return self


def _span_polynomials(knots: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per input and span ``s``: the ``k + 1`` nonzero basis functions as polynomials in
    ``u = x - t_{s-1}``: ``C (n_in, K+1, k+1 [degree], k+1 [function])`` and ``t_{s-1} (n_in, K+1)``.

    The local Cox-de Boor recursion ``N^p_r = w_{j-p+r} N^{p-1}_{r-1} + (1 - w_{j-p+r+1}) N^{p-1}_r``
    with ``w_m = (x - t_m) / (t_{m+p} - t_m)`` (linear in ``u``), run on coefficient arrays. Knots
    beyond the ends are padded so every span has the same stencil; the functions this invents
    (index < 0 or >= G + k) are zeroed, and the real ones only ever use real knots, so they are exact.
    """
    t = knots.double()
    n, K = t.shape
    m, R = K - k - 1, k + 1
    dev = t.device
    h_lo = (t[:, 1] - t[:, 0]).clamp_min(1e-3)[:, None]
    h_hi = (t[:, -1] - t[:, -2]).clamp_min(1e-3)[:, None]
    steps = torch.arange(1, k + 1, dtype=t.dtype, device=dev)[None, :]
    tp = torch.cat([t[:, :1] - h_lo * steps.flip(1), t, t[:, -1:] + h_hi * steps], dim=1)  # t_q = tp[q + k]
    J = K - 1  # interior spans j = 0 .. K-2
    j = torch.arange(J, device=dev)
    tj = tp[:, j + k]  # (n, J)
    N = torch.zeros(n, J, 1, R, dtype=t.dtype, device=dev)  # (n, span, function, degree)
    N[..., 0, 0] = 1.0
    for p in range(1, k + 1):
        mm = j[:, None] - p + torch.arange(1, p + 1, device=dev)[None, :]  # (J, p): m = j - p + s
        t_m, t_mp = tp[:, mm + k], tp[:, mm + p + k]  # (n, J, p)
        den = t_mp - t_m
        inv = torch.where(den > 0, 1.0 / den.clamp_min(1e-300), torch.zeros_like(den))
        a0, a1 = ((tj[..., None] - t_m) * inv)[..., None], inv[..., None]
        shifted = torch.cat([torch.zeros_like(N[..., :1]), N[..., :-1]], dim=-1)  # u * N
        A = a0 * N + a1 * shifted  # w_{j-p+s} * N^{p-1}_{s-1}, s = 1..p
        Bv = N - A  # (1 - w_{j-p+s}) * N^{p-1}_{s-1}
        N = torch.zeros(n, J, p + 1, R, dtype=t.dtype, device=dev)
        N[:, :, :p] += Bv
        N[:, :, 1:] += A
    # Window of span j: basis indices c0 .. c0 + k with c0 = clamp(j - k, 0, m - 1 - k); the
    # recursion produced functions j - k + r, so function r moves to slot r + (j - k - c0).
    c0 = (j - k).clamp(0, m - 1 - k)  # (J,)
    idx = j[:, None] - k + torch.arange(R, device=dev)[None, :]  # (J, R) basis index of function r
    N = N * ((idx >= 0) & (idx < m)).to(t.dtype)[None, :, :, None]
    slot = (idx - c0[:, None]).clamp(-1, R)  # (J, R); -1 / R: not in the window (then N == 0)
    W = torch.zeros(n, J, R + 2, R, dtype=t.dtype, device=dev)
    W.scatter_(2, (slot + 1)[None, :, :, None].expand(n, J, R, R), N)
    C = torch.zeros(n, K + 1, R, R, dtype=t.dtype, device=dev)
    C[:, 1:K] = W[:, :, 1:-1].transpose(2, 3)  # (n, span, degree, slot)
    span_t = torch.zeros(n, K + 1, dtype=t.dtype, device=dev)
    span_t[:, 1:K] = tj
    start = torch.zeros(n, K + 1, dtype=torch.long, device=dev)
    start[:, 1:K] = c0
    return C, span_t, start


def _gather_columns(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``table[:, idx]`` for a short, wide table, by the fastest CPU kernel for its dtype
    (``index_select`` along dim 1 is only vectorised for float32; ``gather`` with a broadcast
    index is 3x faster for float64)."""
    if table.dtype == torch.float32:
        return table.index_select(1, idx)
    return table.gather(1, idx.expand(table.shape[0], -1))


def _table_values(xc: torch.Tensor, fi: torch.Tensor, T: KnotTables, need_grad: bool, out=None):
    """Local values by table lookup: samples ``xc (N,)`` (already clamped into the knot range) on
    flat spans ``fi (N,)`` -> ``(vals (k+1, N), dvals (k+1, N) or None)``.

    Horner on ``(k+1, N)`` rows (all slots of a degree at once), the derivative alongside.
    ``out``: optional ``(vals, dvals)`` destinations for the last step."""
    k = T.k
    ov, od = out if out is not None else (None, None)
    u = (xc - T.span_t.take(fi)).unsqueeze(0)  # (1, N)
    C = _gather_columns(T.coef, fi).view(k + 1, k + 1, -1)  # (degree, slot, N)
    L, dL = C[k], None
    for d in range(k - 1, -1, -1):
        if need_grad:
            dL = L if dL is None else torch.addcmul(L, dL, u, out=od if d == 0 else None)
        L = torch.addcmul(C[d], L, u, out=ov if d == 0 else None)
    if need_grad and k == 1 and od is not None:
        od.copy_(dL)
    return L, dL


def _local_features(x: torch.Tensor, T: KnotTables, with_silu: bool, need_grad: bool):
    """The nonzeros of every row of the feature block.

    ``x (batch, n_in)`` -> ``vals (k+1 [+1], batch*n_in)`` (the ``k + 1`` local basis values, then
    silu), ``dvals`` (their x-derivatives, same shape, or None) and ``c0 (batch*n_in,)`` (long):
    the local values go to columns ``c0 .. c0 + k``, silu to column ``G + k``. Rows are
    batch-major (row ``b * n_in + i``)."""
    b, n = x.shape
    k, R, N = T.k, T.k + 1, x.numel()
    vals = x.new_empty(R + with_silu, N)
    dvals = x.new_empty(R + with_silu, N) if need_grad else None
    U = T.uniform
    if U is not None:
        t = torch.addcmul(U.shift, x, U.scale)  # (b, n): x in knot intervals from t_k
        lo, hi = torch.aminmax(t)
        rest = None
        if not bool((lo >= 0) & (hi < U.G)):  # some sample outside the grid range, or NaN
            inside = (t >= 0) & (t < U.G)
            rest = torch.nonzero(~inside.view(-1)).squeeze(1)
            t = torch.where(inside, t, torch.zeros((), dtype=t.dtype, device=t.device))
        j = t.floor()
        f = (t - j).view(1, N)
        c0 = j.view(N).to(torch.long)
        # Powers of f, then (slot x degree) @ (degree x sample): one small matmul writes all the
        # values (and one the derivatives), fewer passes than Horner on the (k+1, N) block.
        P = x.new_empty(R, N)
        P[0].fill_(1.0)
        P[1].copy_(f[0])
        for d in range(2, R):
            torch.mul(P[d - 1], f[0], out=P[d])
        torch.mm(U.A, P, out=vals[:R])
        if need_grad:
            torch.mm(U.D, P[:k], out=dvals[:R])
            dvals[:R].view(R, b, n).mul_(U.scale)  # d/dx = (1/h) d/df
        if rest is not None and rest.numel():
            _table_rows(x.view(N), rest, T, vals, dvals, c0)
    else:
        if T.cells is not None:
            fi, xc = T.cells.lookup(x)  # (batch * n_in,) flat (input, span), batch-major
        else:
            s = torch.searchsorted(T.sorted, x.T.contiguous(), right=True)  # (n_in, batch) in [0, K]
            fi = (s + T.row).T.reshape(-1)
            xc = torch.clamp(x, T.lo, T.hi)
        # x is clamped so u stays finite for huge or infinite inputs (outside: zero polynomials).
        _table_values(xc.reshape(N), fi, T, need_grad, out=(vals[:R], dvals[:R] if need_grad else None))
        c0 = T.start.take(fi)
    if with_silu:
        xf = x.reshape(N)
        torch.ops.aten.silu.out(xf, out=vals[R])
        if need_grad:
            torch.ops.aten.silu_backward.grad_input(xf.new_ones(()).expand_as(xf), xf, grad_input=dvals[R])
    return vals, dvals, c0


def _table_rows(xf: torch.Tensor, rows: torch.Tensor, T: KnotTables, vals, dvals, c0) -> None:
    """Overwrite ``rows`` of the uniform shortcut's results with the table evaluation (samples
    outside the grid range, where windows are shifted or empty). The span is found arithmetically,
    with exact comparisons at the two end knots so that outside stays exactly 0."""
    n, K = T.n_in, T.knots.shape[1]
    U = T.uniform
    i = rows % n
    xs = xf.take(rows)
    lo, hi = T.lo.take(i), T.hi.take(i)
    ts = torch.clamp((xs - lo) * U.scale.take(i), -1.0, float(K))  # NaN stays NaN
    s = ts.floor().add_(1).nan_to_num_(0.0).to(torch.long).clamp_(0, K)
    s = torch.where(xs < lo, 0, torch.where(xs >= hi, K, s))
    fi = i * T.S + s
    v, dv = _table_values(torch.minimum(torch.maximum(xs, lo), hi), fi, T, dvals is not None)
    R = T.k + 1
    vals[:R].index_copy_(1, rows, v)
    if dvals is not None:
        dvals[:R].index_copy_(1, rows, dv)
    c0.index_copy_(0, rows, T.start.take(fi))


def _assemble(vals: torch.Tensor, c0: torch.Tensor, b: int, n: int, width: int, k: int,
              out: torch.Tensor | None = None, base: torch.Tensor | None = None):
    """Dense block ``(b, n, width)`` from the local values ``vals (k+1 [+1], b*n)`` and window
    starts ``c0 (b*n,)``; also the flat position of each row's first local value ``p (b*n,)``.

    One scatter per slot with a single ``(b*n,)`` index: the slots of a row are consecutive, so
    slot ``s`` is the same scatter into the block shifted by ``s``. ``out``: a flat buffer of at
    least ``b*n*width`` to fill instead of a new block; ``base``: ``arange(0, >= b*n*width, width)``
    when the caller has it."""
    N = b * n
    F = vals.new_zeros(N * width) if out is None else out[: N * width].zero_()
    if base is None:
        base = torch.arange(0, N * width, width, device=vals.device)
    p = base[:N] + c0
    for s in range(k + 1):
        F[s:].scatter_(0, p, vals[s])
    if vals.shape[0] > k + 1:  # silu in the last column
        F.view(N, width)[:, -1] = vals[k + 1]
    return F.view(b, n, width), p


def _grad_x(grad: torch.Tensor, p: torch.Tensor, dL: torch.Tensor, with_silu: bool) -> torch.Tensor:
    """``d/dx`` of ``sum(grad * F)`` for a block ``F`` built by :func:`_assemble` (positions ``p``,
    derivatives ``dL (k+1 [+1], b*n)``): ``grad (b, n, width)`` (any layout) -> ``(b, n)``."""
    R = dL.shape[0] - with_silu
    b, n, width = grad.shape
    if grad.stride(-1) != 1:
        grad = grad.contiguous()
    if grad.is_contiguous():
        flat, pos = grad.view(-1), p
    else:  # e.g. the (n_in, batch) layout of a batched matmul, transposed: same rows, other offsets
        sb, sn, _ = grad.stride()
        base = torch.arange(0, b * n * width, width, device=p.device)
        rows = (torch.arange(b, device=p.device) * sb)[:, None] + torch.arange(n, device=p.device) * sn
        pos = rows.view(-1) + (p - base)
        flat = grad.as_strided(((b - 1) * sb + (n - 1) * sn + width,), (1,))
    # Slot r of every sample sits at pos + r: the same 1-D gather on the gradient shifted by r
    # (contiguous (b*n,) reads and multiply-adds; faster than one (b*n, k+1) gather on CPU).
    gx = flat.index_select(0, pos).mul_(dL[0])
    tmp = torch.empty_like(gx)
    for r in range(1, R):
        gx.addcmul_(torch.index_select(flat[r:], 0, pos, out=tmp), dL[r])
    gx = gx.view(b, n)
    if with_silu:
        gx.addcmul_(grad[:, :, -1], dL[R].view(b, n))
    return gx


def _features_impl(x: torch.Tensor, T: KnotTables, with_silu: bool, need_grad: bool):
    """Dense ``(batch, n_in, G+k [+1])`` feature block ``F``; ``cols (batch*n_in, k+1 [+1])`` the
    column of each local value (then silu's); ``dvals (k+1 [+1], batch*n_in)`` their x-derivatives
    (None without ``need_grad``)."""
    x = x.contiguous()
    b, n = x.shape
    vals, dvals, c0 = _local_features(x, T, with_silu, need_grad)
    width = T.n_basis + with_silu
    F, _ = _assemble(vals, c0, b, n, width, T.k)
    cols = c0[:, None] + torch.arange(T.k + 1 + with_silu, device=x.device)
    if with_silu:
        cols[:, -1] = T.n_basis
    return F, cols, dvals


class _Features(torch.autograd.Function):
    """Dense feature block ``(batch, n_in, G+k [+1])``: the B-spline basis of every input and,
    optionally, ``silu(x)`` in the last column. The forward also evaluates the derivatives of the
    ``k + 1`` local polynomials (and of SiLU), so the backward is one gather of ``k + 1``
    consecutive gradient entries per sample and ``k + 1`` multiply-adds: no recursion, no graph
    of small ops."""

    @staticmethod
    def forward(ctx, x, tables, with_silu):
        x = x.contiguous()
        b, n = x.shape
        vals, dvals, c0 = _local_features(x, tables, with_silu, need_grad=True)
        ctx.with_silu = with_silu
        F, p = _assemble(vals, c0, b, n, tables.n_basis + with_silu, tables.k)
        ctx.save_for_backward(p, dvals)
        return F

    @staticmethod
    def backward(ctx, grad):
        p, dL = ctx.saved_tensors
        return _grad_x(grad, p, dL, ctx.with_silu), None, None


def features(x: torch.Tensor, tables: KnotTables, with_silu: bool = True) -> torch.Tensor:
    """``x (batch, n_in)`` -> ``(batch, n_in, G+k+1)``: basis functions, then ``silu(x)``.
    Differentiable in ``x``. This is the layout the layers multiply with their weights."""
    if x.requires_grad and torch.is_grad_enabled():
        return _Features.apply(x, tables, with_silu)
    x = x.contiguous()
    vals, _, c0 = _local_features(x, tables, with_silu, need_grad=False)
    return _assemble(vals, c0, x.shape[0], x.shape[1], tables.n_basis + with_silu, tables.k)[0]



def _tables_for(knots: torch.Tensor | KnotTables, k: int, dtype: torch.dtype) -> KnotTables:
    if isinstance(knots, KnotTables):
        if knots.knots.dtype == dtype:
            return knots
        knots = knots.knots
    return KnotTables(knots.to(dtype), k)


def bspline_basis(x: torch.Tensor, knots: torch.Tensor | KnotTables, k: int) -> torch.Tensor:
    """All order-``k`` B-spline basis functions at ``x (batch, n_in)`` -> ``(batch, n_in, G + k)``.

    On the extended knot vector ``knots (n_in, G + 2k + 1)`` (or its precomputed
    :class:`KnotTables`). Spans are half-open ``[t_i, t_{i+1})``, matching
    scipy.interpolate.BSpline; outside the extended knots every basis function is 0, so an edge
    there reduces to its SiLU residual. Differentiable in ``x``. Evaluated in the local form (see
    :class:`KnotTables`); :func:`bspline_basis_dense` is the plain recursion, kept as a reference.
    """
    if not x.dtype.is_floating_point:
        x = x.to(knots.knots.dtype if isinstance(knots, KnotTables) else knots.dtype)
    return features(x, _tables_for(knots, k, x.dtype), with_silu=False)


def bspline_basis_T(xT: torch.Tensor, knots: torch.Tensor | KnotTables, k: int) -> torch.Tensor:
    """The same basis in the layout ``xT (n_in, batch)`` -> ``(n_in, G + k, batch)`` (a view)."""
    return bspline_basis(xT.T, knots, k).permute(1, 2, 0)


def _basis_levels(xT: torch.Tensor, T: KnotTables) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Dense Cox-de Boor recursion: order-k basis ``(n_in, m, batch)`` of ``xT (n_in, batch)`` and
    the order-(k-1) basis; no autograd graph."""
    t = T.knots.unsqueeze(-1)  # (n_in, K, 1)
    xe = xT.unsqueeze(1)  # (n_in, 1, batch)
    B = ((xe >= t[:, :-1]) & (xe < t[:, 1:])).to(xT.dtype)
    prev = None
    for p in range(1, T.k + 1):
        w = (xe - t[:, :-p]) * T.inv[p - 1].unsqueeze(-1)  # w[m] = (x - t_m) / (t_{m+p} - t_m)
        prev = B
        B = w[:, :-1] * B[:, :-1] + (1 - w[:, 1:]) * B[:, 1:]
    return B, prev


def bspline_basis_dense(x: torch.Tensor, knots: torch.Tensor, k: int) -> torch.Tensor:
    """Reference: the full Cox-de Boor recursion over all functions, ``(batch, n_in, G + k)``
    (no gradient). :func:`bspline_basis` must agree with it to rounding."""
    return _basis_levels(x.T.contiguous(), KnotTables(knots, k))[0].permute(2, 0, 1)


def spline_eval(x: torch.Tensor, knots: torch.Tensor, coef: torch.Tensor, k: int) -> torch.Tensor:
    """Per-edge spline values ``(batch, n_in, n_out)`` for ``coef (n_in, n_out, G + k)``."""
    return torch.einsum("bim,iom->bio", bspline_basis(x, knots, k), coef)


def lstsq_coef(
    x: torch.Tensor, y: torch.Tensor, knots: "torch.Tensor | KnotTables", k: int, ridge: float = 1e-8
) -> torch.Tensor:
    """Coefficients ``(n_in, n_out, G + k)`` whose splines best match ``y (batch, n_in, n_out)``.

    Solved per input as regularised normal equations in float64. The penalty is a small
    second-difference (smoothness) term plus a tiny ridge: the system is always positive definite,
    and knot spans without samples are bridged smoothly instead of dipping to zero (duplicate
    samples, a constant input, too few points all still solve). If the Cholesky factorisation
    still fails, a pseudo-inverse answers. Never raises on finite input.
    """
    B = bspline_basis(x, knots, k).double().permute(1, 0, 2)  # (n_in, batch, m)
    Y = y.double().permute(1, 0, 2)  # (n_in, batch, n_out)
    m = B.shape[-1]
    BtB = B.transpose(1, 2) @ B
    scale = BtB.diagonal(dim1=1, dim2=2).mean(-1).clamp_min(1e-12)[:, None, None]
    eye = torch.eye(m, dtype=B.dtype, device=B.device)
    D = eye[2:] - 2 * eye[1:-1] + eye[:-2] if m > 2 else eye[:0]
    A = BtB + ridge * scale * (D.T @ D + 1e-3 * eye)
    rhs = B.transpose(1, 2) @ Y
    sol, info = torch.linalg.cholesky_ex(A)
    if bool((info == 0).all()):
        coef = torch.cholesky_solve(rhs, sol)
    else:
        coef = torch.linalg.pinv(A) @ rhs
    coef = torch.nan_to_num(coef, nan=0.0, posinf=0.0, neginf=0.0)
    return coef.permute(0, 2, 1).to(y.dtype)  # (n_in, n_out, m)
