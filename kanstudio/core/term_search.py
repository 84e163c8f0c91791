"""A direct search for laws that are sums of a few products of one-variable functions, of ``y``
or of a simple transform of it: ``T(y) = w0 + sum_k w_k prod_{i in S_k} p_ki(x_i)``.

Many laws are of this form once the right side of the equation is chosen: ``x0 + v0 t + a t^2/2``
and ``b0 (1 + alpha cos theta)`` as they stand, a norm ``sqrt(R^2 + (w L - 1/(w C))^2)`` in
``y^2``, Compton's ``E / (1 + E/(m c^2) (1 - cos theta))`` and the relativistic
``m / sqrt(1 - v^2/c^2)`` in ``1/y`` or ``1/y^2``, Gaussians and Boltzmann factors in ``log y``.
A network reaches these only when its shape and a lucky training agree; as a linear least-squares
problem over a dictionary of products (FFX, McConaghy 2011; SINDy) they take well under a second.

The dictionary: per column the primitives of :data:`PRIMITIVES` that are defined on its data,
and products of up to three of them on distinct columns. Terms are chosen by orthogonal least
squares (each step adds the term that lowers the residual most), with a small beam so that one
greedy mistake does not end the path. Every subset on the path is then judged in ``y``'s own
units on held-out rows; the best is compiled into a snapped KAN (``[n, Kx, 1]`` and, for a
transform, one more edge for its inverse), so that, like every attempt, its formula comes from
the same network as its forward pass. Where no sum of products is exact, :mod:`.ratio_search`
also tries ratios of two of them.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from .model import KAN

# (library name, inner sign, complexity): c * f(sign * x)
PRIMITIVES = (("x", 1, 1), ("x^2", 1, 2), ("x^3", 1, 3), ("1/x", 1, 2), ("1/x^2", 1, 3), ("sqrt", 1, 2),
              ("1/sqrt", 1, 3), ("log", 1, 2), ("exp", 1, 2), ("exp", -1, 3), ("sin", 1, 2), ("cos", 1, 2))
TRIPLE_PRIMITIVES = {"x", "x^2", "1/x", "1/x^2", "sqrt", "1/sqrt", "sin", "cos"}
MAX_FEATURES = 20000  # 800 rows x 20 000 float64 columns: 128 MB, and a few ms per selection step
MAX_TERMS = 6  # terms in a returned law
FORWARD = 12  # the forward path goes further, then steps back (see _backward)
BEAM = 4
MAX_ROWS = 1000
RATIO_BELOW = 1e-9  # held-out RMSE / std(y) of a sum of products that makes ratios pointless

# what the sum of products may stand for (see _forward, _inverse and compile_model's output edge)
TRANSFORMS = ("y", "1/y", "y^2", "1/y^2", "log y", "log -y")


@dataclass(frozen=True)
class TermFit:
    transform: str
    terms: tuple  # ((column, primitive index), ...) per term
    weights: tuple  # per term
    intercept: float
    val_rmse: float  # in y's units, on the held-out rows
    cost: float  # the criterion the search ranked by (lower is better)
    # a ratio T(y) = (intercept + sum w_k P_k) / (1 + sum v_j Q_j) when given (ratio_search)
    den_terms: tuple = ()
    den_weights: tuple = ()


_VALUES = {"x": lambda x: x, "x^2": lambda x: x * x, "x^3": lambda x: x**3, "1/x": lambda x: 1 / x,
           "1/x^2": lambda x: 1 / (x * x), "sqrt": np.sqrt, "1/sqrt": lambda x: 1 / np.sqrt(x), "log": np.log,
           "exp": np.exp, "sin": np.sin, "cos": np.cos}


def _primitive(k: int, x: np.ndarray) -> np.ndarray:
    name, sign, _ = PRIMITIVES[k]
    with np.errstate(all="ignore"):
        return _VALUES[name](sign * x if sign != 1 else x)


def _prim_values(k: int, x: np.ndarray) -> np.ndarray | None:
    """Primitive ``k`` on column ``x``, or None where it is undefined there or constant."""
    name = PRIMITIVES[k][0]
    a = np.abs(x)
    mx = float(a.max()) if len(a) else 0.0
    clear = bool((a >= 1e-3 * (mx or 1.0)).all() and (np.all(x > 0) or np.all(x < 0)))
    if name in ("1/x", "1/x^2") and not clear:
        return None
    if name == "sqrt" and (x < 0).any():
        return None
    if name in ("1/sqrt", "log") and not (clear and np.all(x > 0)):
        return None
    if name in ("exp", "sin", "cos") and mx > 30:
        return None
    v = _primitive(k, x)
    return v if np.isfinite(v).all() and np.ptp(v) > 1e-12 * (np.abs(v).max() or 1.0) else None


def dictionary(X: np.ndarray) -> tuple[np.ndarray, list[tuple]]:
    """Feature matrix and, per column, its term ``((column, primitive), ...)``."""
    n, d = X.shape
    prims = {i: [(k, v) for k in range(len(PRIMITIVES)) if (v := _prim_values(k, X[:, i])) is not None]
             for i in range(d)}
    cols, terms = [], []
    for i in range(d):
        for k, v in prims[i]:
            cols.append(v)
            terms.append(((i, k),))
    for i, j in itertools.combinations(range(d), 2):
        for (k1, v1), (k2, v2) in itertools.product(prims[i], prims[j]):
            cols.append(v1 * v2)
            terms.append(((i, k1), (j, k2)))
    tri = {i: [(k, v) for k, v in prims[i] if PRIMITIVES[k][0] in TRIPLE_PRIMITIVES] for i in range(d)}
    n_tri = sum(len(tri[a]) * len(tri[b]) * len(tri[c]) for a, b, c in itertools.combinations(range(d), 3))
    if len(cols) + n_tri <= MAX_FEATURES:
        for a, b, c in itertools.combinations(range(d), 3):
            for (k1, v1), (k2, v2), (k3, v3) in itertools.product(tri[a], tri[b], tri[c]):
                cols.append(v1 * v2 * v3)
                terms.append(((a, k1), (b, k2), (c, k3)))
    F = np.column_stack(cols) if cols else np.zeros((n, 0))
    return F, terms


def _forward(name: str, y: np.ndarray) -> np.ndarray | None:
    a = np.abs(y)
    clear = bool((a >= 1e-3 * (a.max() or 1.0)).all())
    with np.errstate(all="ignore"):
        if name == "y":
            t = y
        elif name == "1/y":
            t = 1 / y if clear and (np.all(y > 0) or np.all(y < 0)) else None
        elif name == "y^2":
            t = y * y if (np.all(y >= 0) or np.all(y <= 0)) else None
        elif name == "1/y^2":
            t = 1 / (y * y) if clear and (np.all(y > 0) or np.all(y < 0)) else None
        elif name == "log y":
            t = np.log(y) if np.all(y > 0) else None
        else:
            t = np.log(-y) if np.all(y < 0) else None
    return t if t is not None and np.isfinite(t).all() else None


def _inverse(name: str, t: np.ndarray, sign: float) -> np.ndarray:
    with np.errstate(all="ignore"):
        if name == "y":
            return t
        if name == "1/y":
            return 1 / t
        if name == "y^2":
            return sign * np.sqrt(t)
        if name == "1/y^2":
            return sign / np.sqrt(t)
        if name == "log y":
            return np.exp(t)
        return -np.exp(t)


def _path(F: np.ndarray, t: np.ndarray, k_max: int, beam: int, wide: int = 0,
          given: np.ndarray | None = None) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """Orthogonal least squares with a beam: (every subset reached, up to ``k_max`` terms; the
    beam's last subsets). ``wide``: how many one-term states the second step extends (default
    ``beam``); every pair's gain is then computed, not only the greedy first term's. ``given``:
    a unit-norm, centred column in every subset from the start (not listed in them).

    ``F`` has centred, unit-norm columns and ``t`` is centred, so the intercept is implicit."""
    n, m = F.shape
    if given is None:
        states = [((), np.zeros((n, 0)), t.copy(), np.zeros((0, m)))]
    else:
        states = [((), given[:, None], t - given * (given @ t), (given @ F)[None, :])]
    out = []
    for step in range(min(k_max, m)):
        keep = max(beam, wide) if step == 0 else beam
        cands = []
        for sel, Q, r, P in states:
            nrm = 1.0 - (P * P).sum(0)
            gain = (F.T @ r) ** 2 / np.maximum(nrm, 1e-12)
            gain[nrm < 1e-8] = -np.inf
            if sel:
                gain[list(sel)] = -np.inf
            top = np.argpartition(-gain, min(keep, m - 1))[:keep]
            rss = float(r @ r)
            for j in top:
                if np.isfinite(gain[j]):
                    cands.append((rss - gain[j], sel, Q, r, P, int(j)))
        cands.sort(key=lambda c: c[0])
        seen, nxt = set(), []
        for _, sel, Q, r, P, j in cands:
            key = frozenset(sel + (j,))
            if key in seen:
                continue
            seen.add(key)
            q = F[:, j] - Q @ P[:, j]
            q /= np.linalg.norm(q) or 1.0
            nxt.append((sel + (j,), np.column_stack([Q, q]), r - q * (q @ r), np.vstack([P, q @ F])))
            if len(nxt) == keep:
                break
        if not nxt:
            break
        states = nxt
        out += [s[0] for s in states[:beam]]
    return out, [s[0] for s in states]


def _backward(F: np.ndarray, t: np.ndarray, sel: tuple[int, ...], k_max: int) -> list[tuple[int, ...]]:
    """From ``sel`` down to one term, each time dropping the term whose loss raises the residual
    least. A greedy forward path often takes a term that mimics the target before the true
    terms (1/(E c) cos(theta) for Compton's 1/y); once it has taken them all too, the exact fit
    gives the mimic no weight, so stepping back drops it first."""
    out, cur = [], list(sel)
    while len(cur) > 1:
        best = None
        for r in range(len(cur)):
            rest = cur[:r] + cur[r + 1 :]
            A = F[:, rest]
            w, *_ = np.linalg.lstsq(A, t, rcond=None)
            rss = float(np.sum((A @ w - t) ** 2))
            if best is None or rss < best[0]:
                best = (rss, rest)
        cur = best[1]
        if len(cur) <= k_max:
            out.append(tuple(cur))
    return out


def _swapped(F: np.ndarray, t: np.ndarray, sel: tuple[int, ...], sweeps: int = 3) -> tuple[int, ...]:
    """``sel`` after swaps: each term in turn replaced by the column that lowers the residual
    most with the others kept, while any swap lowers it. Nearly collinear terms let the path
    settle on a mimic (exp(u/878) for u) that no forward or backward step removes, since
    removing it alone costs more than keeping it; one swap does. Same conventions as
    :func:`_path`: ``F`` centred with unit-norm columns, ``t`` centred."""
    cur = list(sel)

    def rss(cols):
        A = F[:, cols]
        w, *_ = np.linalg.lstsq(A, t, rcond=None)
        return float(np.sum((A @ w - t) ** 2))

    best = rss(cur)
    for _ in range(sweeps):
        improved = False
        for r in range(len(cur)):
            rest = cur[:r] + cur[r + 1 :]
            if rest:
                Q, _ = np.linalg.qr(F[:, rest])
                res = t - Q @ (Q.T @ t)
                P = Q.T @ F
                nrm = 1.0 - (P * P).sum(0)
            else:
                res, nrm = t, np.ones(F.shape[1])
            gain = (F.T @ res) ** 2 / np.maximum(nrm, 1e-12)
            gain[nrm < 1e-8] = -np.inf
            gain[cur] = -np.inf
            j = int(np.argmax(gain))
            if not np.isfinite(gain[j]):
                continue
            trial = rest[:r] + [j] + rest[r:]
            e = rss(trial)
            if e < best * (1 - 1e-9):
                cur, best, improved = trial, e, True
        if not improved:
            break
    return tuple(cur)


def candidate_subsets(F: np.ndarray, t: np.ndarray, k_max: int, beam: int, wide: int = 0,
                      swaps: bool = False) -> list[tuple[int, ...]]:
    """The subsets worth judging: the forward path's (greedy beam, and with ``wide`` also the
    one that extends many first terms), the backward steps from their ends, and with ``swaps``
    the best subset of each size after :func:`_swapped`."""
    out = []
    for w in dict.fromkeys((0, wide) if wide > beam else (0,)):
        path, ends = _path(F, t, FORWARD, beam, w)
        out += [q for q in path if len(q) <= k_max] + [b for e in ends for b in _backward(F, t, e, k_max)]
    if swaps:
        best: dict[int, tuple[float, tuple]] = {}
        for p in out:
            A = F[:, list(p)]
            w_, *_ = np.linalg.lstsq(A, t, rcond=None)
            e = float(np.sum((A @ w_ - t) ** 2))
            if len(p) not in best or e < best[len(p)][0]:
                best[len(p)] = (e, p)
        out += [_swapped(F, t, p) for _, p in best.values()]
    return out


def nested_subsets(Fn: np.ndarray, levels: np.ndarray, tc: np.ndarray, k_max: int, beam: int) -> list[tuple[int, ...]]:
    """:func:`candidate_subsets` in nested dictionaries (one-variable terms, then pairs, then
    all), sorted and without repeats: in the full one a product of three columns can mimic a
    sum of five logs better than any single log does, and the greedy path never recovers."""
    subsets = []
    for size in sorted(set(levels)):
        cols_ = np.flatnonzero(levels <= size)
        for p in candidate_subsets(Fn[:, cols_], tc, k_max, beam):
            subsets.append(tuple(int(cols_[c]) for c in p))
    return list(dict.fromkeys(tuple(sorted(p)) for p in subsets))


def _complexity(terms) -> int:
    return sum(1 + sum(PRIMITIVES[k][2] for _, k in term) for term in terms)


def search(X, y, Xv, yv, k_max: int = MAX_TERMS, beam: int = BEAM, ratios: bool | None = None,
           deadline: float | None = None) -> list[TermFit]:
    """The best fits, one per transform that gives any, best first. ``ratios``: True, only
    ratios (:mod:`.ratio_search`); False, only sums; None, sums, and ratios where no sum is
    exact. ``deadline`` (``time.perf_counter()``) ends the ratio search early."""
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    Xv = np.asarray(Xv, dtype=np.float64).reshape(len(Xv), -1)
    yv = np.asarray(yv, dtype=np.float64).reshape(-1)
    if len(X) > MAX_ROWS:
        idx = np.linspace(0, len(X) - 1, MAX_ROWS).round().astype(int)
        X, y = X[idx], y[idx]
    F, terms = dictionary(X)
    if F.shape[1] == 0:
        return []
    Fv = dictionary_like(Xv, terms)
    levels = np.array([len(t) for t in terms])
    Fn = _centred_unit(F) if ratios is not True else None  # ratio_search centres its own subset
    sign = 1.0 if np.all(y >= 0) else -1.0
    n_val = len(yv)
    scale = float(np.std(yv)) or 1.0
    out = []
    for tr in TRANSFORMS if ratios is not True else ():
        t = _forward(tr, y)
        if t is None:
            continue
        tc = t - t.mean()
        best = None
        for sel in nested_subsets(Fn, levels, tc, k_max, beam):
            cols = list(sel)
            A = np.column_stack([F[:, cols], np.ones(len(F))])
            w, *_ = np.linalg.lstsq(A, t, rcond=None)
            pv = _inverse(tr, Fv[:, cols] @ w[:-1] + w[-1], sign)
            if not np.isfinite(pv).all():
                continue
            rmse = float(np.sqrt(np.mean((pv - yv) ** 2)))
            cx = _complexity([terms[c] for c in cols]) + (0 if tr == "y" else 2)
            cost = criterion(rmse, cx, n_val, scale)
            if best is None or cost < best[0].cost:
                best = (TermFit(tr, tuple(terms[c] for c in cols), tuple(float(v) for v in w[:-1]), float(w[-1]),
                                rmse, cost), cols)
        if best is not None:
            fit, cols = best
            out.append(_rounded(fit, Fv[:, cols], yv, sign, scale))
    # A ratio costs a few seconds more and can only win where no sum of products is exact
    if ratios or (ratios is None and not any(f.val_rmse <= RATIO_BELOW * scale for f in out)):
        from .ratio_search import ratio_fits

        out += ratio_fits(F, Fv, terms, levels, y, yv, sign, scale, k_max, beam, deadline)
    out.sort(key=lambda f: f.cost)
    return out


def criterion(rmse: float, cx: int, n_val: int, scale: float) -> float:
    """BIC-like: held-out error against complexity, the error floored at 1e-12 of ``y``'s scale
    (below it every fit is exact and only complexity counts)."""
    return n_val * math.log(max(rmse**2, (1e-12 * scale) ** 2)) + math.log(max(n_val, 2)) * cx


def _centred_unit(F: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit norm; a constant column becomes 0 (never chosen)."""
    Fc = F - F.mean(0)
    norm = np.linalg.norm(Fc, axis=0)
    ok = norm > 1e-12 * (np.abs(F).max(0) * math.sqrt(len(F)) + 1e-300)
    return np.where(ok, Fc / np.where(ok, norm, 1.0), 0.0)


def predict_t(Fv: np.ndarray, w, b: float, Gv: np.ndarray | None = None, v=()) -> np.ndarray:
    """The sum of products ``b + Fv @ w``, over ``1 + Gv @ v`` for a ratio."""
    t = Fv @ np.asarray(w, dtype=np.float64) + b
    if Gv is not None and len(v):
        with np.errstate(all="ignore"):
            t = t / (1.0 + Gv @ np.asarray(v, dtype=np.float64))
    return t


def _rounded(fit: TermFit, Fv: np.ndarray, yv: np.ndarray, sign: float, scale: float,
             Gv: np.ndarray | None = None) -> TermFit:
    """Each weight (and the intercept) replaced by the nearest exact number (8*pi/3, 1/2, 0)
    where the held-out error does not grow by more than 1 %: least squares gives 8.3775804,
    and after the network and simplification it would no longer be recognisable. ``Gv``: a
    ratio's denominator terms on the held-out rows; its weights follow the numerator's."""
    from .constants import nice_values

    n_num = len(fit.weights)

    def err(w, b):
        pv = _inverse(fit.transform, predict_t(Fv, w[:n_num], b, Gv, w[n_num:]), sign)
        return float(np.sqrt(np.mean((pv - yv) ** 2))) if np.isfinite(pv).all() else math.inf

    w, b = list(fit.weights) + list(fit.den_weights), fit.intercept
    cur = err(w, b)
    limit = cur * 1.01 + 1e-10 * scale
    for k in range(len(w) + 1):
        v = w[k] if k < len(w) else b
        opts = [float(c) for c in nice_values(v, rel=0.01)]
        for c in ([0.0] if k == len(w) else []) + [c for c in opts if c != 0.0]:
            trial_w, trial_b = list(w), b
            if k < len(w):
                trial_w[k] = c
            else:
                trial_b = c
            e = err(trial_w, trial_b)
            if e <= limit:
                w, b, cur = trial_w, trial_b, e
                break
    return TermFit(fit.transform, fit.terms, tuple(w[:n_num]), b, cur, fit.cost, fit.den_terms, tuple(w[n_num:]))


def dictionary_like(X: np.ndarray, terms) -> np.ndarray:
    """The columns of ``terms`` on other rows ``X``."""
    cache: dict = {}
    cols = []
    for term in terms:
        v = np.ones(len(X))
        for i, k in term:
            if (i, k) not in cache:
                cache[(i, k)] = _primitive(k, X[:, i])
            v = v * cache[(i, k)]
        cols.append(v)
    return np.column_stack(cols) if cols else np.zeros((len(X), 0))


# the inverse of each transform as the compiled output edge: library name, and whether its sign
# is y's (a square root's branch) or fixed
_OUTPUT_EDGE = {"1/y": ("1/x", 1.0), "y^2": ("sqrt", None), "1/y^2": ("1/sqrt", None), "log y": ("exp", 1.0),
                "log -y": ("exp", -1.0)}


@torch.no_grad()
def compile_model(fit: TermFit, X, y, names, target, seed: int = 0) -> KAN:
    """A snapped KAN computing ``fit``: ``[n, Kx, 1]`` (one product node per term, the sum node's
    bias the intercept), and for a transform one more edge, its inverse."""
    if fit.den_terms:
        return _compile_ratio(fit, X, y, names, target, seed)
    n = np.asarray(X).reshape(len(X), -1).shape[1]
    K = len(fit.terms)
    width = [n, (0, K), 1] + ([] if fit.transform == "y" else [1])
    m = KAN(width, seed=seed)
    m.feature_names_, m.target_name_ = list(names), target
    m.set_data(X, y)
    net = m.net
    s_out, m_out = float(net.out_scale[0]), float(net.out_shift[0])  # y = net * s + m
    L1 = net.layers[1]
    _product_layer(net, fit.terms, fit.weights)
    if fit.transform == "y":
        for j in range(K):
            L1.set_symbolic(j, 0, "x", 1.0, 0.0, 1.0 / s_out, 0.0)
        L1.bias[0] = (fit.intercept - m_out) / s_out
    else:
        for j in range(K):
            L1.set_symbolic(j, 0, "x", 1.0, 0.0, 1.0, 0.0)
        L1.bias[0] = fit.intercept
        name, c = _OUTPUT_EDGE[fit.transform]
        if c is None:
            c = 1.0 if np.all(np.asarray(y) >= 0) else -1.0
        net.layers[2].set_symbolic(0, 0, name, 1.0, 0.0, c / s_out, -m_out / s_out)
    return m


def _product_layer(net, terms, weights) -> None:
    """The first layer as one product node per term, the term's weight on its first factor;
    every bias 0 and every node scale 1."""
    s_in, m_in = net.in_scale.tolist(), net.in_shift.tolist()  # edge input h = (x - m) * s
    L0 = net.layers[0]
    L0.mask.zero_()
    for j, (term, w) in enumerate(zip(terms, weights)):
        for r, (i, k) in enumerate(term):
            name, sgn, _ = PRIMITIVES[k]
            # f(sgn * x) with x = h / s + m
            L0.mask[i, j] = 1.0
            L0.set_symbolic(i, j, name, sgn / s_in[i], sgn * m_in[i], w if r == 0 else 1.0, 0.0)
    for layer in net.layers:
        layer.bias.zero_()
        layer.node_scale.fill_(1.0)


@torch.no_grad()
def _compile_ratio(fit: TermFit, X, y, names, target, seed: int) -> KAN:
    """``[n, (Kp+Kq)x, 2, 1x]``: the terms' product nodes, a numerator and a denominator sum node
    (biases the intercept and 1), and a product node of P and 1/Q; for ``y^2`` one more edge,
    the square root."""
    n = np.asarray(X).reshape(len(X), -1).shape[1]
    Kp, Kq = len(fit.terms), len(fit.den_terms)
    width = [n, (0, Kp + Kq), 2, (0, 1)] + ([] if fit.transform == "y" else [1])
    m = KAN(width, seed=seed)
    m.feature_names_, m.target_name_ = list(names), target
    m.set_data(X, y)
    net = m.net
    s_out, m_out = float(net.out_scale[0]), float(net.out_shift[0])  # y = net * s + m
    _product_layer(net, fit.terms + fit.den_terms, fit.weights + fit.den_weights)
    L1, L2 = net.layers[1], net.layers[2]
    L1.mask.zero_()
    for j in range(Kp + Kq):
        node = 0 if j < Kp else 1
        L1.mask[j, node] = 1.0
        L1.set_symbolic(j, node, "x", 1.0, 0.0, 1.0, 0.0)
    L1.bias[0], L1.bias[1] = fit.intercept, 1.0
    L2.set_symbolic(0, 0, "x", 1.0, 0.0, 1.0, 0.0)
    L2.set_symbolic(1, 0, "1/x", 1.0, 0.0, 1.0, 0.0)
    if fit.transform == "y":
        L2.node_scale[0], L2.bias[0] = 1.0 / s_out, -m_out / s_out
    else:
        c = 1.0 if np.all(np.asarray(y) >= 0) else -1.0
        net.layers[3].set_symbolic(0, 0, "sqrt", 1.0, 0.0, c / s_out, -m_out / s_out)
    return m
