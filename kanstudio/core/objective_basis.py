"""The objective's per-layer basis (objective.py): one layer's knot vectors as per-span
polynomial tables, laid out for the compiled loops and for the numpy path, and the numpy
path's feature block built from them; plus the arrays both paths reuse between evaluations."""
from __future__ import annotations

import numpy as np
import torch

from .spline import KnotTables, _span_polynomials


class _Basis:
    """One layer's knot vectors as numpy tables: on span ``s`` of input ``i`` the ``k + 1``
    nonzero basis functions are polynomials in ``u = x - t_s`` (see ``_span_polynomials``).
    Everything per sample is laid out slot-major, ``(k + 2, n*B)``, so each Horner step is one
    contiguous multiply-add instead of a loop over rows of four."""

    def __init__(self, knots: torch.Tensor, k: int, tables: KnotTables | None = None):
        if tables is not None and tables.knots is knots:  # the layer's own: no second recursion
            n, S, R = knots.shape[0], tables.S, k + 1
            C = tables.coef.T.reshape(n, S, R, R).double()
            span_t, start = tables.span_t.reshape(n, S).double(), tables.start.reshape(n, S)
        else:
            C, span_t, start = _span_polynomials(knots, k)
        n, S = span_t.shape
        dtype = knots.detach().cpu().numpy().dtype
        self.k = k
        self.M = knots.shape[1] - k  # G + k basis functions + silu
        self.knots = knots.detach().cpu().numpy()
        self.lo, self.hi = self.knots[:, :1], self.knots[:, -1:]
        self.coef = C.reshape(n * S, (k + 1) ** 2).T.contiguous().numpy().astype(dtype)  # (degree*slot, span)
        self.span_t = span_t.reshape(-1).numpy().astype(dtype)
        self.start = start.reshape(-1).numpy()
        # the same tables span-major, for the compiled loops: (n, S, degree, slot), (n, S), (n, S)
        self.tables = (np.ascontiguousarray(C.numpy(), dtype=np.float64),
                       np.ascontiguousarray(span_t.numpy(), dtype=np.float64), start.numpy().astype(np.int32))
        # Bands for the single search in :meth:`features`: wider than every knot range plus margin.
        lo, hi = self.knots[:, 0], self.knots[:, -1]
        width = float(np.max(hi - lo)) + 1.0
        self.band_lo, self.band_hi = (lo - 0.25 * width)[:, None], (hi + 0.25 * width)[:, None]
        # (float64 whatever the model's dtype, so the shift cannot move a sample across a knot)
        self.band_off = (np.arange(n) * 2.0 * width - lo)[:, None].astype(np.float64)
        self.band_knots = (self.knots + self.band_off).reshape(-1)
        self.slot = np.arange(k + 1)[:, None]
        # Uniform knots (fresh layers; grid_eps=1 updates): every basis function is the same
        # cardinal B-spline shifted, so the k + 1 values need no per-sample coefficient gather.
        K = self.knots.shape[1]
        step = (hi - lo) / (K - 1)
        tol = 1e-9 if dtype == np.float64 else 1e-5
        self.uniform = bool(np.all(step > 0) and np.all(
            np.abs(np.diff(self.knots, axis=1) - step[:, None]) <= tol * step[:, None]))
        if self.uniform:
            self.t0, self.inv_step = self.knots[:, :1], (1.0 / step)[:, None].astype(dtype)
        self._card = None

    @property
    def card(self) -> np.ndarray:
        """The cardinal pieces ``(degree, slot, 1)`` on span ``[t_k, t_k+1)`` of unit knots: only
        the numpy path's uniform shortcut reads them, so they are built on first use."""
        if self._card is None:
            K = self.knots.shape[1]
            unit, _, _ = _span_polynomials(torch.arange(K, dtype=torch.float64)[None], self.k)
            self._card = unit[0, self.k + 1].numpy().astype(self.knots.dtype)[:, :, None]
        return self._card

    def features(self, hT: np.ndarray, need_grad: bool, ws: "_Workspace"):
        """``hT (n, B)`` -> ``F (n, B, M)``, the flat positions in ``F`` of each sample's ``k + 2``
        nonzeros ``(k+2, n*B)``, and their x-derivatives ``(k+2, n*B)`` (None without grad).
        The arrays live in ``ws`` and are overwritten by the next call with the same ``ws``."""
        if self.uniform:
            return self._uniform_features(hT, need_grad, ws)
        n, B = hT.shape
        k, R, N, dt = self.k, self.k + 1, hT.size, hT.dtype
        # One search over all inputs: input i's knots and samples are shifted into their own band.
        # Span 0 / K lies outside the knots, where the tables hold zero polynomials.
        z = np.clip(hT, self.band_lo, self.band_hi, out=ws.get("z", (n, B), np.float64))
        z += self.band_off
        fi = np.searchsorted(self.band_knots, z.reshape(-1), side="right")
        # the flat search also counted the K knots of each earlier input; input i has K + 1 spans
        fi += ws.const(("row", n, B), lambda: np.repeat(np.arange(n), B))
        u = np.clip(hT, self.lo, self.hi, out=ws.get("u", (n, B), dt)).reshape(-1)
        u -= self.span_t.take(fi, out=ws.get("t", (N,), dt))
        C = self.coef.take(fi, axis=1, out=ws.get("C", (R * R, N), dt))  # (degree*slot, n*B)
        vals = ws.get("vals", (R + 1, N), dt)
        L = vals[:R]
        np.multiply(C[k * R :], u, out=L)
        L += C[(k - 1) * R : k * R]
        dvals = ws.get("dvals", (R + 1, N), dt) if need_grad else None
        dL = dvals[:R] if need_grad else None
        if need_grad:
            dL[...] = C[k * R :]
        for d in range(k - 2, -1, -1):  # Horner, the derivative alongside: dL <- dL u + L, L <- L u + C_d
            if need_grad:
                dL *= u
                dL += L
            L *= u
            L += C[d * R : (d + 1) * R]
        self._silu(hT.reshape(-1), vals, dvals, ws)
        base = ws.const(("base", N, self.M), lambda: np.arange(N) * self.M)
        pos = ws.get("pos", (R + 1, N), np.int64)
        self.start.take(fi, out=pos[0])
        pos[0] += base
        for r in range(1, R):
            np.add(pos[0], r, out=pos[r])
        np.add(base, self.M - 1, out=pos[R])
        F = ws.get("F", (n, B, self.M), dt)
        F.fill(0.0)
        F.reshape(-1)[pos] = vals
        return F, pos, dvals

    def _uniform_features(self, hT: np.ndarray, need_grad: bool, ws: "_Workspace"):
        """:meth:`features` on uniform knots. ``F`` gets one extra, always-zero column after the
        silu column: values of basis functions that do not exist near the ends (and of samples
        outside the knots) are written there as 0, so every sample keeps k + 2 distinct slots."""
        n, B = hT.shape
        k, R, N, dt, M = self.k, self.k + 1, hT.size, hT.dtype, self.M
        K = self.knots.shape[1]
        z = np.subtract(hT, self.t0, out=ws.get("z", (n, B), dt))
        z *= self.inv_step
        np.fmax(z, -1.0, out=z)  # fmax/fmin also send NaN to -1: outside, like the table path
        np.fmin(z, K - 1.0, out=z)
        j = np.floor(z)
        z -= j  # the fractional part: u in [0, 1)
        u = z.reshape(-1)
        m0 = j.reshape(-1).astype(np.int64)
        m0 -= k  # first of the k + 1 functions on the span
        card = self.card
        vals = ws.get("vals", (R + 1, N), dt)
        L = vals[:R]
        np.multiply(card[k], u, out=L)
        L += card[k - 1]
        dvals = ws.get("dvals", (R + 1, N), dt) if need_grad else None
        dL = dvals[:R] if need_grad else None
        if need_grad:
            dL[...] = card[k]
        for d in range(k - 2, -1, -1):
            if need_grad:
                dL *= u
                dL += L
            L *= u
            L += card[d]
        pos = ws.get("pos", (R + 1, N), np.int64)
        cols = pos[:R]
        np.add(m0, self.slot, out=cols)
        valid = (cols >= 0) & (cols <= M - 2)
        L *= valid
        if need_grad:
            dL *= valid
            dL *= ws.const(("inv_step", n, B), lambda: np.repeat(self.inv_step[:, 0], B))
        base = ws.const(("base", N, M + 1), lambda: np.arange(N) * (M + 1))
        np.copyto(cols, M, where=~valid)  # the zero column
        cols += base
        np.add(base, M - 1, out=pos[R])
        self._silu(hT.reshape(-1), vals, dvals, ws)
        F = ws.get("F", (n, B, M + 1), dt)
        F.fill(0.0)
        F.reshape(-1)[pos] = vals
        return F, pos, dvals

    def _silu(self, x: np.ndarray, vals: np.ndarray, dvals, ws: "_Workspace") -> None:
        """silu(x) into the last row of ``vals`` (and its derivative into ``dvals``)."""
        R = self.k + 1
        sig = ws.get("sig", x.shape, x.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            np.negative(x, out=sig)
            np.exp(sig, out=sig)
        sig += 1.0
        np.reciprocal(sig, out=sig)
        np.multiply(x, sig, out=vals[R])
        if dvals is not None:  # silu' = sig * (1 + x * (1 - sig))
            g = dvals[R]
            np.subtract(1.0, sig, out=g)
            g *= x
            g += 1.0
            g *= sig


class _Workspace:
    """Arrays reused from one evaluation to the next. Allocating fresh ones every time costs
    more than the arithmetic: glibc hands out large blocks as fresh pages, and faulting them in
    was half of an evaluation of a [10,10,10,1] network on 4000 rows."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple, dtype) -> np.ndarray:
        a = self.arrays.get(name)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = self.arrays[name] = np.empty(shape, dtype=dtype)
        return a

    def const(self, name, make) -> np.ndarray:
        a = self.arrays.get(name)
        if a is None:
            a = self.arrays[name] = make()
        return a
