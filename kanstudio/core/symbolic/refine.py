"""Local refinement of the affine fits ``y ≈ c * f(a * x + b) + d`` (see affine.py for the whole
pipeline): Levenberg-Marquardt on ``(a, b)`` with ``(c, d)`` projected out, vectorised over every
start of every candidate function, and the exact least-squares fit of the step function ``sgn``.
All in the normalised units of affine.py (x in [-1, 1], y centred and scaled).

Only the function values and their sample sums are torch work (batch.py evaluates the
functions in as few calls as their families allow); the per-start bookkeeping - 2x2 normal
equations, damping, acceptance - is on (functions, starts) arrays of about a hundred numbers,
where NumPy's per-operation cost is a fraction of torch's.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .batch import Batch

_H = 1e-6  # central-difference step for f'(u)


def _refine(x, y, batch: Batch, a, b, usable, free_a, free_b, a_lo, a_hi, b_lo, b_hi, iters, rtol):
    """Levenberg-Marquardt on (a, b) with (c, d) projected out, for all (F, k) starts at once.

    x, y: (n,) torch, normalised (y centred); a, b, usable: (F, k) numpy; free_*, bounds:
    (F, 1) numpy. A start stops when a step gains less than ``rtol`` of its error. Returns
    numpy a, b, sse, c, fmean, each (F, k); sse = inf where no point valid on every sample was found.
    """
    F, k = a.shape
    n = x.numel()
    syy = float((y * y).sum())
    # state columns: a b sse c fm j11 j12 j22 g1 g2 (JᵀJ and Jᵀr of the current point)
    st = np.zeros((F, k, 10))
    st[..., 0], st[..., 1], st[..., 2] = a, b, math.inf
    lam = np.full((F, k), 1e-3)
    rejects = np.zeros((F, k))  # consecutive rejected steps: a domain edge or a kink
    at, bt = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
    done = ~usable
    offs = torch.tensor([0.0, _H, -_H], dtype=x.dtype).view(1, 3, 1, 1)
    ones = torch.ones_like(x)
    W1 = torch.stack([x, ones, y, x * y], -1)  # (n, 4): moments of f' against these
    W2 = torch.stack([x * x, x, ones], -1)
    W3 = torch.stack([x, ones], -1)
    with np.errstate(all="ignore"):
        for _ in range(iters):
            ia = np.flatnonzero((~done).any(-1))
            if not len(ia):
                break
            U = torch.from_numpy(at[ia])[..., None] * x + torch.from_numpy(bt[ia])[..., None]  # (Fa, k, n)
            out, val = batch.evaluate(U[:, None] + offs, ia, offsets=True)  # f at u, u ± h: (Fa, 3, k, n)
            f = out[:, 0]
            fm_t = f.mean(-1, keepdim=True)
            fc = f - fm_t
            D = (out[:, 1] - out[:, 2]) / (2 * _H)  # f'(u), by central differences
            sff, sfy, sf2 = (fc * fc).sum(-1).numpy(), (fc @ y).numpy(), (f * f).sum(-1).numpy()
            m1, m2, m3 = (D @ W1).numpy(), ((D * D) @ W2).numpy(), ((D * fc) @ W3).numpy()
            fm = fm_t[..., 0].numpy()
            flat = sff <= 1e-10 * sf2  # f constant on the samples: c = 0
            c = np.where(flat, 0.0, sfy / np.where(flat, 1.0, sff))
            sse = np.where(val & np.isfinite(c), np.maximum(syy - c * sfy, 0.0), math.inf)
            cur = st[ia]
            old = cur[..., 2]
            accept = (sse < old) & ~done[ia]
            settled = accept & np.isfinite(old) & (old - sse <= rtol * old + 1e-14 * syy)

            # Kaufman's Jacobian of the projected residual: columns v1 = c f' x, v2 = c f', each
            # projected off span{1, f}; <v, w>_proj = <v, w> - n mean(v) mean(w) - <v,fc><w,fc>/sff.
            # The moments of f' are scaled by c (and c²) here rather than per sample.
            c2 = c * c
            s1x, s1, s1y, s1xy = (c * m1[..., 0], c * m1[..., 1], c * m1[..., 2], c * m1[..., 3])
            s2xx, s2x, s2 = c2 * m2[..., 0], c2 * m2[..., 1], c2 * m2[..., 2]
            s3x, s3 = c * m3[..., 0], c * m3[..., 1]
            isff = 1.0 / np.maximum(sff, 1e-300)
            j11 = s2xx - s1x**2 / n - s3x**2 * isff
            j12 = s2x - s1x * s1 / n - s3x * s3 * isff
            j22 = s2 - s1**2 / n - s3**2 * isff
            g1 = s1xy - c * s3x  # <v1, r>, r = y - c fc is already orthogonal to 1, fc
            g2 = s1y - c * s3
            fa, fb = free_a[ia], free_b[ia]
            new = np.stack([at[ia], bt[ia], sse, c, fm, np.where(fa, j11, 0.0), np.where(fa & fb, j12, 0.0),
                            np.where(fb, j22, 0.0), np.where(fa, g1, 0.0), np.where(fb, g2, 0.0)], -1)
            s = np.where(accept[..., None], np.nan_to_num(new, nan=0.0, posinf=0.0, neginf=0.0), cur)
            s[..., 2] = np.where(accept, sse, old)
            st[ia] = s
            L = np.clip(np.where(accept, lam[ia] * 0.3, lam[ia] * 4.0), 1e-12, 1e16)
            lam[ia] = L
            rejects[ia] = np.where(accept, 0.0, rejects[ia] + 1)

            # next trial from the current point: 2x2 damped normal equations in closed form
            a0, b0, j11, j12, j22, g1, g2 = (s[..., q] for q in (0, 1, 5, 6, 7, 8, 9))
            mu = 1e-12 * (j11 + j22) + 1e-300
            m11, m22 = j11 * (1 + L) + mu, j22 * (1 + L) + mu
            det = m11 * m22 - j12 * j12
            da = np.nan_to_num((m22 * g1 - j12 * g2) / det, nan=0.0, posinf=0.0, neginf=0.0)
            db = np.nan_to_num((m11 * g2 - j12 * g1) / det, nan=0.0, posinf=0.0, neginf=0.0)
            sign = np.where(a0 < 0, -1.0, 1.0)
            na = sign * np.clip(sign * (a0 + da), a_lo[ia], a_hi[ia])  # |a| stays in bounds, sign kept
            nb = np.clip(b0 + db, b_lo[ia], b_hi[ia])
            at[ia], bt[ia] = na, nb
            da, db = na - a0, nb - b0
            # the step's predicted gain under the linear model; below rtol there is nothing to win
            gain = 2 * (da * g1 + db * g2) - (da * da * j11 + 2 * da * db * j12 + db * db * j22)
            still = ((np.abs(da) > 1e-11 * (1 + np.abs(a0))) | (np.abs(db) > 1e-11 * (1 + np.abs(b0)))) & \
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
