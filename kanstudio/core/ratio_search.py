"""Ratios of two sums of products: ``T(y) = (p0 + sum_k a_k P_k) / (1 + sum_j b_j Q_j)``,
for ``T`` = ``y`` or ``y^2``, with the terms of :mod:`.term_search`'s dictionary.

Relativistic velocity addition ``(u + v) / (1 + u v / c^2)``, the Doppler shift
``f0 (c + v_r) / (c - v_s)``, Atwood's ``g (m1 - m2) / (m1 + m2)`` and the relativistic Doppler
factor ``sqrt((1 + v/c) / (1 - v/c))`` (in ``y^2``) are such ratios, and none is a sum of
products in any transform of ``y``. Multiplying out, ``T = p0 + sum a_k P_k - sum b_j (T Q_j)``
is linear in the weights (the linearisation of rational regression; Padé fitting), so
orthogonal least squares chooses numerator and denominator terms from one dictionary of ``P_k``
and ``-T Q_j``. Smooth terms are nearly collinear, and exact data make the linear problem
exact along many wrong subsets too (numerator and denominator times a common factor), so
subsets come from four places: the joint path (with a wide second step and swaps), one
denominator term at a time with its own numerator path, and, from the best of those, the
numerator searched again given the denominator (``T Q = P``) and the denominator given the
numerator (``P / T = Q``). Each subset is judged on held-out rows in ``y``'s units; a
denominator that changes sign on the data (a pole) is refused. The linearised problem weights
each row by ``Q``, and noise on ``T`` sits in its columns too, so the chosen subset's weights
are refitted on the ratio itself before they are rounded.
"""
from __future__ import annotations

import time

import numpy as np

from .term_search import TermFit, _centred_unit, _complexity, _forward, _inverse, _path, _rounded, \
    candidate_subsets, criterion, nested_subsets, predict_t

RATIO_TRANSFORMS = ("y", "y^2")
MAX_RATIO_FEATURES = 4000  # numerator and denominator columns together (a few seconds a view)
# Smooth terms are nearly collinear ((1 + b)/(1 - b) in y^2 is matched to 1e-7 by three wrong
# terms before either right one), so the second step extends many first terms, within about
# 2.5e8 multiply-adds (n rows x m columns per extended term)
WIDE_FLOPS = 2.5e8
MAX_FORCED = 64  # denominator terms tried alone: the joint path's, and those most correlated with T
FORCED_TERMS, FORCED_BEAM = 4, 2


def _wide(n: int, m: int) -> int:
    return int(min(m, WIDE_FLOPS // max(n * m, 1)))


def _refit(F, Fq, t, w, b, v):
    """The ratio's weights by nonlinear least squares on ``t`` itself, from the linear ones;
    the linear ones where the refit fails or is worse."""
    from scipy.optimize import least_squares

    nw = len(w)

    def resid(p):
        with np.errstate(all="ignore"):
            r = predict_t(F, p[:nw], p[nw], Fq, p[nw + 1:]) - t
        return np.where(np.isfinite(r), r, 1e6)

    x0 = np.concatenate([w, [b], v])
    r0 = float(np.sum(resid(x0) ** 2))
    try:
        sol = least_squares(resid, x0, method="lm", max_nfev=50 * len(x0))
    except Exception:  # a singular or diverging refit: keep the linear weights
        return w, b, v
    if not np.isfinite(sol.x).all() or float(np.sum(sol.fun**2)) > r0:
        return w, b, v
    return sol.x[:nw], float(sol.x[nw]), sol.x[nw + 1:]


def _no_pole(Q: np.ndarray) -> bool:
    return bool(np.isfinite(Q).all() and (np.all(Q > 0) or np.all(Q < 0)) and np.abs(Q).min() > 1e-6 * np.abs(Q).max())


def ratio_fits(F, Fv, terms, levels, y, yv, sign: float, scale: float, k_max: int, beam: int,
               deadline: float | None = None) -> list[TermFit]:
    """The best ratio per transform (at least one denominator term), its weights rounded; what
    is found so far once ``deadline`` (``time.perf_counter()``) passes."""
    # numerator and denominator candidates together: twice the dictionary, so the largest
    # nested level that fits in the budget (a product of three of five columns is not tried)
    sizes = [s for s in sorted(set(levels)) if 2 * int((levels <= s).sum()) <= MAX_RATIO_FEATURES]
    if not sizes:
        return []
    keep = np.flatnonzero(levels <= sizes[-1])
    F, Fv, levels = F[:, keep], Fv[:, keep], levels[keep]
    terms = [terms[c] for c in keep]
    m = F.shape[1]
    n_val = len(yv)

    def late() -> bool:
        return deadline is not None and time.perf_counter() > deadline

    Fn = _centred_unit(F)
    mu = F.mean(0)
    out = []
    for tr in RATIO_TRANSFORMS:
        t = _forward(tr, y)
        if t is None or late():
            continue

        def judge(num, den, w, b, v):
            """(cost, num, den, w, b, v) on the held-out rows, or None (a pole, no value)."""
            if not den or not (_no_pole(1 + F[:, den] @ v) and _no_pole(1 + Fv[:, den] @ v)):
                return None
            pv = _inverse(tr, predict_t(Fv[:, num], w, b, Fv[:, den], v), sign)
            if not np.isfinite(pv).all():
                return None
            rmse = float(np.sqrt(np.mean((pv - yv) ** 2)))
            cx = _complexity([terms[c] for c in num]) + _complexity([terms[c] for c in den]) + 2 + (0 if tr == "y" else 2)
            cost = criterion(rmse, cx, n_val, scale)
            return cost, list(num), list(den), np.asarray(w, float), float(b), np.asarray(v, float), rmse

        def better(a, b_):
            return b_ if b_ is not None and (a is None or b_[0] < a[0]) else a

        # Denominator columns from centred terms: with T f_j itself, any nearly constant f_j gives
        # a column nearly proportional to T, and the path's first step is the degenerate
        # "solution" Q = 1 + b f_j ~ 0 on every row. Centred, Q has mean 1 on the data, and the
        # constant the centring moves is folded back (q0).
        G = -t[:, None] * (F - mu)
        FG = np.concatenate([Fn, _centred_unit(G)], axis=1)
        tc = t - t.mean()
        subsets = []
        for size in sizes:
            if late():
                break
            cols_ = np.flatnonzero(np.concatenate([levels <= size, levels <= size]))
            for p in candidate_subsets(FG[:, cols_], tc, k_max, beam, _wide(len(FG), len(cols_)), swaps=True):
                subsets.append(tuple(int(cols_[c]) for c in p))
        # One denominator term at a time, each with its own numerator path: on narrow ranges the
        # smooth terms are so nearly collinear that the joint path reaches exact fits of ten
        # terms with weights of 1e7 before g (1 - r) / (1 + r).
        Gn = FG[:, m:]
        top = np.argsort(-np.abs(Gn.T @ tc), kind="stable")[:MAX_FORCED]
        for j in sorted({c - m for p in subsets for c in p if c >= m} | set(top.tolist())):
            if late():
                break
            if Gn[:, j].any():
                path, _ = _path(Fn, tc, FORCED_TERMS, FORCED_BEAM, given=Gn[:, j])
                subsets += [p + (m + j,) for p in path]
        best = None
        for sel in dict.fromkeys(tuple(sorted(p)) for p in subsets):
            num, den = [c for c in sel if c < m], [c - m for c in sel if c >= m]
            if not den:  # a plain sum of products: term_search's own case
                continue
            wts, *_ = np.linalg.lstsq(np.column_stack([F[:, num], G[:, den], np.ones(len(F))]), t, rcond=None)
            w, v, b = wts[: len(num)], wts[len(num) : -1], float(wts[-1])
            q0 = 1.0 - float(v @ mu[den])  # Q = q0 + sum v_j f_j: back to a leading 1
            if abs(q0) > 1e-6 * (1.0 + float(np.abs(v * mu[den]).sum())):
                best = better(best, judge(num, den, w / q0, b / q0, v / q0))
        if best is None:
            continue
        # The joint path finds a denominator, but with it in the dictionary its numerator is
        # often mimicked by products (five pair terms for u + v). Given Q, T Q = P is a plain
        # sum of products, and given P, P / T = Q; each is searched as term_search searches.
        _, num, den, w, b, v, _ = best
        tq = t * (1 + F[:, den] @ v)
        for S in map(list, [] if late() else nested_subsets(Fn, levels, tq - tq.mean(), k_max, beam)):
            wts, *_ = np.linalg.lstsq(np.column_stack([F[:, S], np.ones(len(F))]), tq, rcond=None)
            best = better(best, judge(S, den, wts[:-1], wts[-1], v))
        _, num, den, w, b, v, _ = best
        with np.errstate(all="ignore"):
            tp = (F[:, num] @ w + b) / t
        if np.isfinite(tp).all() and not late():
            for S in map(list, nested_subsets(Fn, levels, tp - tp.mean(), k_max, beam)):
                wts, *_ = np.linalg.lstsq(np.column_stack([F[:, S], np.ones(len(F))]), tp, rcond=None)
                q0 = float(wts[-1])
                if abs(q0) > 1e-9 * (1.0 + float(np.abs(wts[:-1] * mu[S]).sum())):
                    best = better(best, judge(num, S, w / q0, b / q0, wts[:-1] / q0))
        _, num, den, w, b, v, _ = best
        w, b, v = _refit(F[:, num], F[:, den], t, w, b, v)
        done = judge(num, den, w, b, v)
        if done is None:
            continue
        cost, num, den, w, b, v, rmse = done
        fit = TermFit(tr, tuple(terms[c] for c in num), tuple(float(x) for x in w), b, rmse, cost,
                      tuple(terms[c] for c in den), tuple(float(x) for x in v))
        out.append(_rounded(fit, Fv[:, num], yv, sign, scale, Fv[:, den]))
    return out
