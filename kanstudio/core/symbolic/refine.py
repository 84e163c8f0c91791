"""Local refinement of the affine fits ``y ≈ c * f(a * x + b) + d`` (see affine.py for the whole
pipeline): Levenberg-Marquardt on ``(a, b)`` with ``(c, d)`` projected out, vectorised over every
start of every candidate function, and the exact least-squares fit of the step function ``sgn``.
All in the normalised units of affine.py (x in [-1, 1], y centred and scaled)."""
from __future__ import annotations

import math

import torch

from .library import _finite

_H = 1e-6  # central-difference step for f'(u)


def _refine(x, y, fns, a, b, usable, free_a, free_b, a_lo, a_hi, b_lo, b_hi, iters, rtol):
    """Levenberg-Marquardt on (a, b) with (c, d) projected out, for all (F, k) starts at once.

    x, y: (n,) normalised (y centred); a, b, usable: (F, k); free_*, bounds: (F, 1).
    A start stops when a step gains less than ``rtol`` of its error. Returns a, b, sse, c, fmean,
    each (F, k); sse = inf where no point valid on every sample was found.
    """
    F, k = a.shape
    n = x.numel()
    syy = float((y * y).sum())
    # state columns: a b sse c fm j11 j12 j22 g1 g2 (JᵀJ and Jᵀr of the current point)
    st = torch.zeros(F, k, 10, dtype=x.dtype)
    st[..., 0], st[..., 1], st[..., 2] = a, b, math.inf
    lam = torch.full_like(a, 1e-3)
    rejects = torch.zeros_like(a)  # consecutive rejected steps: a domain edge or a kink
    at, bt = a.clone(), b.clone()
    done = ~usable
    offs = torch.tensor([0.0, _H, -_H], dtype=x.dtype).view(3, 1, 1)
    ones = torch.ones_like(x)
    W1 = torch.stack([x, ones, y, x * y], -1)  # (n, 4): moments of c f' against these
    W2 = torch.stack([x * x, x, ones], -1)
    W3 = torch.stack([x, ones], -1)
    for _ in range(iters):
        active = (~done).any(-1).nonzero().flatten().tolist()
        if not active:
            break
        ia = torch.tensor(active)
        U = at[ia, :, None] * x + bt[ia, :, None]  # (Fa, k, n)
        out = torch.empty(U.shape[0], 3, k, n, dtype=x.dtype)  # f at u and u ± h, for the slope
        val = torch.ones(U.shape[:2], dtype=torch.bool)
        for j, i in enumerate(active):
            out[j] = fns[i].torch_fn(U[j] + offs)
            if fns[i].valid is not _finite:  # u is finite by construction
                val[j] = fns[i].valid(U[j]).all(-1)
        f = out[:, 0]
        fm = f.mean(-1, keepdim=True)
        fc = f - fm
        sff = (fc * fc).sum(-1)
        sfy = fc @ y
        flat = sff <= 1e-10 * (f * f).sum(-1)  # f constant on the samples: c = 0
        c = torch.where(flat, 0.0, sfy / torch.where(flat, 1.0, sff))
        sse = torch.where(val & torch.isfinite(c), (syy - c * sfy).clamp(min=0.0), math.inf)
        old = st[ia][..., 2]
        accept = (sse < old) & ~done[ia]
        settled = accept & torch.isfinite(old) & (old - sse <= rtol * old + 1e-14 * syy)

        # Kaufman's Jacobian of the projected residual: columns v1 = c f' x, v2 = c f', each
        # projected off span{1, f}; <v, w>_proj = <v, w> - n mean(v) mean(w) - <v,fc><w,fc>/sff
        cd = c[..., None] * (out[:, 1] - out[:, 2]) / (2 * _H)
        m1 = cd @ W1  # sum cd*x, cd, cd*y, cd*x*y
        m2 = (cd * cd) @ W2  # sum cd²x², cd²x, cd²
        m3 = (cd * fc) @ W3  # sum cd*x*fc, cd*fc
        isff = 1.0 / sff.clamp(min=1e-300)
        j11 = m2[..., 0] - m1[..., 0] ** 2 / n - m3[..., 0] ** 2 * isff
        j12 = m2[..., 1] - m1[..., 0] * m1[..., 1] / n - m3[..., 0] * m3[..., 1] * isff
        j22 = m2[..., 2] - m1[..., 1] ** 2 / n - m3[..., 1] ** 2 * isff
        g1 = m1[..., 3] - c * m3[..., 0]  # <v1, r>, r = y - c fc is already orthogonal to 1, fc
        g2 = m1[..., 2] - c * m3[..., 1]
        fa, fb = free_a[ia], free_b[ia]
        new = torch.stack([at[ia], bt[ia], sse, c, fm[..., 0], torch.where(fa, j11, 0.0),
                           torch.where(fa & fb, j12, 0.0), torch.where(fb, j22, 0.0),
                           torch.where(fa, g1, 0.0), torch.where(fb, g2, 0.0)], -1)
        s = torch.where(accept[..., None], new.nan_to_num(0.0, 0.0, 0.0), st[ia])
        s[..., 2] = torch.where(accept, sse, old)
        st[ia] = s
        L = torch.where(accept, lam[ia] * 0.3, lam[ia] * 4.0).clamp(1e-12, 1e16)
        lam[ia] = L
        rejects[ia] = torch.where(accept, 0.0, rejects[ia] + 1)

        # next trial from the current point: 2x2 damped normal equations in closed form
        a0, b0, j11, j12, j22, g1, g2 = s[..., 0], s[..., 1], s[..., 5], s[..., 6], s[..., 7], s[..., 8], s[..., 9]
        mu = 1e-12 * (j11 + j22) + 1e-300
        m11, m22 = j11 * (1 + L) + mu, j22 * (1 + L) + mu
        det = m11 * m22 - j12 * j12
        da = ((m22 * g1 - j12 * g2) / det).nan_to_num(0.0, 0.0, 0.0)
        db = ((m11 * g2 - j12 * g1) / det).nan_to_num(0.0, 0.0, 0.0)
        sign = torch.where(a0 < 0, -1.0, 1.0)
        na = sign * (sign * (a0 + da)).clamp(a_lo[ia], a_hi[ia])  # |a| stays in bounds, sign kept
        nb = (b0 + db).clamp(b_lo[ia], b_hi[ia])
        at[ia], bt[ia] = na, nb
        da, db = na - a0, nb - b0
        # the step's predicted gain under the linear model; below rtol there is nothing to win
        gain = 2 * (da * g1 + db * g2) - (da * da * j11 + 2 * da * db * j12 + db * db * j22)
        still = ((da.abs() > 1e-11 * (1 + a0.abs())) | (db.abs() > 1e-11 * (1 + b0.abs()))) & \
                (gain > rtol * s[..., 2] + 1e-14 * syy)
        done[ia] |= ~still | settled | (rejects[ia] >= 4)
    return st[..., 0], st[..., 1], st[..., 2], st[..., 3], st[..., 4]


def _step_fit(x, y):
    """Exact best ``c * sgn(x + b) + d`` over all splits of the sorted samples (normalised)."""
    xs, order = torch.sort(x)
    ys = y[order]
    n = xs.numel()
    cs = torch.cumsum(ys, 0)[:-1]
    nl = torch.arange(1, n, dtype=x.dtype)
    nr = n - nl
    tot = ys.sum()
    between = (cs / nl - (tot - cs) / nr) ** 2 * nl * nr / n
    between = torch.where(xs[1:] > xs[:-1], between, torch.full_like(between, -1.0))  # no ties split
    if n < 2 or between.max() < 0:
        return None
    j = int(torch.argmax(between))
    ml, mr = float(cs[j] / nl[j]), float((tot - cs[j]) / nr[j])
    b = -0.5 * float(xs[j] + xs[j + 1])
    syy = float((ys * ys).sum())
    return 1.0, b, 0.5 * (mr - ml), 0.5 * (mr + ml), float(between[j]) / syy
