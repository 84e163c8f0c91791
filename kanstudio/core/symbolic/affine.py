"""Affine fit of one edge to every candidate at once: ``y ≈ c * f(a * x + b) + d``.

Pipeline (``F`` functions, ``P = grid_points²`` grid points each, ``n`` samples):

1. Drop non-finite samples; scale x to ``[-1, 1]`` and y to mean 0, std 1. Every search below
   happens in these units, so huge or tiny magnitudes cost nothing; results are mapped back.
2. Coarse grid: ``u = a x + b`` as ``(F, P, m)`` blocks on an ``m <= 64`` point subsample
   spread over the sorted x (extremes included); ``(c, d)`` by closed-form 1-D least squares,
   i.e. ``R² = corr(f(u), y)²``, per grid point. A point whose ``u`` leaves ``f``'s domain
   (``valid``) at any of these samples gets ``R² = -inf``.
3. Starts: the best ``STARTS`` local or row maxima of each function's ``R²`` grid.
4. Refinement (refine.py): Levenberg-Marquardt on ``(a, b)`` with ``(c, d)`` eliminated (variable
   projection, Kaufman's Jacobian, central-difference slopes), vectorised over all ``F * STARTS``
   starts in float64 - first on the subsample, then the best start per function on all samples.
   A step is kept only if it lowers the error and ``u`` stays in the domain on every sample.
   The final check is repeated in the caller's units, so every returned candidate is defined
   on every (finite) sample.

Redundancy is removed per family instead of searched: for powers, poles, abs and sgn
``f(a x + b) = g(a) f(x + b/a)``, so ``a = 1`` and only the shift ``b`` is searched (densely next
to a pole); roots and log take ``a = ±1`` and ``b`` from the domain edge outwards; ``exp`` takes
``b = 0``; ``sgn`` gets the exact best split; odd, even and sigmoid-like built-ins search
``a > 0`` only, periodic ones one period of ``b``, arcsin/arccos/arctanh only ``|a|, |b| <= 1``.
``'x'`` is the plain linear fit (``a = 1, b = 0``), ``'0'`` the constant ``y ≈ d``.
``|a| >= 0.1`` (normalised units) everywhere: as ``a -> 0`` every smooth ``f`` becomes a line (or
a parabola), which would let any function "fit" linear data perfectly.

The whole fit runs on one torch thread (restored afterwards, see ``_one_thread``): its tensors
are small, and a thread pool on a busy 2-core machine costs far more than it gives.

``a_range`` / ``b_range`` bound the general search in the normalised units of step 1 (x scaled
to [-1, 1]); returned ``a, b, c, d`` are in the caller's units, written in the family's canonical
form (``a = 1`` for powers, ``b = 0`` for exp, ``b`` within half a period for sin/cos/tan, ...).
"""
from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as nnf

from .library import LIBRARY, SymbolicFunction, default_names, get_function
from .parse import parse_function
from .batch import Batch
from .refine import _refine, _step_fit

__all__ = ["Candidate", "fit_affine", "fit_one", "score"]

R2_FLOOR = 1e-10  # below this, 1 - R² is rounding noise, not a better law
A_MIN = 0.1
GRID_SAMPLES = 64  # samples in the coarse grid and the first refinement phase
GRID_SIDE = 15  # default grid points per axis
STARTS = 4
ITERS_SUB, ITERS_FULL = 12, 4  # LM iterations on the subsample, then on all samples
_CHUNK = 32768  # elements per grid block: cache-sized (faster than one big block)

_SHIFT = {"x^2": 2, "x^3": 3, "x^4": 4, "x^5": 5, "1/x": -1, "1/x^2": -2, "1/x^3": -3, "abs": None}
_SIGNED_SHIFT = {"sqrt": 0.5, "1/sqrt": -0.5, "x^1.5": 1.5, "log": None}
# general built-ins: (max |a|, b interval searched) where the domain or period says more than
# the caller's ranges; all of them are odd/even/affinely symmetric, so a > 0 suffices
_GENERAL_HINTS = {
    "sin": (None, (-math.pi, math.pi)), "cos": (None, (-math.pi, math.pi)),
    "tan": (math.pi / 2, (-math.pi / 2, math.pi / 2)),
    "arcsin": (1.0, (-1.0, 1.0)), "arccos": (1.0, (-1.0, 1.0)), "arctanh": (1.0, (-1.0, 1.0)),
    "tanh": (None, None), "arctan": (None, None), "gaussian": (None, None), "sigmoid": (None, None),
}


@dataclass(frozen=True)
class Candidate:
    """One ranked fit ``y ≈ c * f(a * x + b) + d`` (caller's units). Lower ``score`` is better."""

    name: str
    a: float
    b: float
    c: float
    d: float
    r2: float
    complexity: int
    score: float


# How common a function is among the laws people write, within its complexity class (0 = the
# most common). At a (near) tie in R² and complexity the more common one wins: x^2 over cos.
# sin and cos share a rank, so between them only the shift tie decides (sin(x) over cos(x - pi/2)).
COMMONNESS = {
    "x^2": 0, "sin": 1, "cos": 1, "exp": 1, "sqrt": 2, "1/x": 2, "log": 2,
    "x^3": 0, "tanh": 1, "gaussian": 1, "1/x^2": 1, "1/sqrt": 2, "x^1.5": 2, "tan": 2, "abs": 2, "sgn": 2,
    "x^4": 0, "arctan": 1, "sigmoid": 1, "arcsin": 1, "arccos": 1, "1/x^3": 2, "arctanh": 2,
    "x": 0, "x^5": 0, "0": 0,
}
COMMON_STEP = 0.02  # per rank: a factor 10**0.02 ~ 1.05 in unexplained variance
# Once some candidate is near-perfect (R² >= NEAR_PERFECT), one that leaves FAR_RATIO times more
# variance unexplained than the best ranks after every candidate that does not: the dead edge '0'
# (R² 0, score 0) must not beat arctan at R² 0.9999 just because arctan costs 4 complexity.
NEAR_PERFECT = 0.98
FAR_RATIO = 50.0


def score(r2: float, complexity: int, weight_complexity: float = 1.0,
          b: float = 0.0, c: float = 1.0, d: float = 0.0, name: str | None = None) -> float:
    """``log10(1 - R² + 1e-10) + weight_complexity * complexity + tie``, lower is better.

    One unit of complexity is worth a factor 10 in unexplained variance (with the default
    weight): a much better R² beats a simpler function, and among fits that are all perfect
    (1 - R² at the 1e-10 floor) the simpler one wins. ``tie <= 0.006`` only separates fits of
    equal quality, preferring the unshifted, positive form: sin(pi x) over cos(pi x - pi/2),
    arccos(x) over pi/2 - arcsin(x). ``'0'`` has R² = 0, so its score is 0: an edge whose best
    function explains less than ``1 - 10**-complexity`` of the variance ranks below the dead edge,
    unless a near-perfect candidate exists (see ``FAR_RATIO``, applied in the ranking). ``name``
    adds ``COMMON_STEP`` per ``COMMONNESS`` rank (user functions: rank 2), so a near tie goes to
    the more common function.
    """
    s = lambda t: abs(t) / (1.0 + abs(t))
    tie = 0.002 * s(b) + 0.002 * s(d) + 0.001 * (c < 0)
    if name is not None:
        tie += COMMON_STEP * COMMONNESS.get(name, 2)
    r2 = min(max(float(r2), 0.0), 1.0)
    return math.log10(1.0 - r2 + R2_FLOOR) + weight_complexity * complexity + tie


# ---------------------------------------------------------------------------------------------
# per-function search plans


@dataclass
class _Plan:
    fn: SymbolicFunction
    kind: str  # general | shift | signed_shift | scale | step | linear | zero
    builtin: bool
    a: np.ndarray  # grid (P,)
    b: np.ndarray
    pad: np.ndarray  # (P,) True where the grid was padded to the common size
    free_a: bool
    free_b: bool
    a_lo: float  # |a| bounds
    a_hi: float
    b_lo: float
    b_hi: float


def _kind(fn: SymbolicFunction) -> str:
    if LIBRARY.get(fn.name) is not fn:
        return "general"
    name = fn.name
    if name in ("x", "0"):
        return {"x": "linear", "0": "zero"}[name]
    if name == "sgn":
        return "step"
    if name in _SHIFT:
        return "shift"
    if name in _SIGNED_SHIFT:
        return "signed_shift"
    if name == "exp":
        return "scale"
    return "general"


def _pad(a: np.ndarray, b: np.ndarray, P: int):
    n = len(a)
    pad = np.zeros(P, dtype=bool)
    if n < P:
        pad[n:] = True
        a = np.concatenate([a, np.full(P - n, a[0])])
        b = np.concatenate([b, np.full(P - n, b[0])])
    return a[:P], b[:P], pad


def _edge_gaps(hi: float, n: int) -> np.ndarray:
    """Distances from a domain edge: 0, then geometric from 1e-4 up to ``hi``."""
    return np.concatenate([[0.0], np.geomspace(1e-4, max(hi, 1e-3), n - 1)])


def _plan(fn: SymbolicFunction, side: int, a_range, b_range) -> _Plan:
    P = side * side
    kind = _kind(fn)
    a_hi = max(abs(a_range[0]), abs(a_range[1]), A_MIN)
    b_lo, b_hi = float(min(b_range)), float(max(b_range))
    free_a, free_b = True, True
    if kind == "general":
        builtin = LIBRARY.get(fn.name) is fn
        cap, b_int = _GENERAL_HINTS.get(fn.name, (None, None)) if builtin else (None, None)
        if cap is not None:
            a_hi = min(a_hi, cap)
        lo_b, hi_b = b_int if b_int is not None else (b_lo, b_hi)
        periodic = builtin and fn.name in ("sin", "cos", "tan")
        bs = np.linspace(lo_b, hi_b, side, endpoint=not periodic)
        if b_int is not None and not periodic:
            b_lo, b_hi = lo_b, hi_b
        if builtin:
            mags = np.geomspace(A_MIN, a_hi, side)
            a_vals = mags
        else:  # unknown symmetry: both signs, as a_range allows
            signs = [s for s in (-1.0, 1.0) if (a_range[0] < 0 if s < 0 else a_range[1] > 0)] or [1.0]
            mags = np.geomspace(A_MIN, a_hi, max(side // len(signs), 2))
            a_vals = np.concatenate([s * mags for s in signs])
        A, B = np.meshgrid(a_vals, bs, indexing="ij")
        a, b = A.ravel(), B.ravel()
    elif kind == "shift":
        if fn.name == "abs":  # a kink outside the data is just a line, which 'x' already is
            b_lo, b_hi = -1.0, 1.0
        if _SHIFT[fn.name] is not None and _SHIFT[fn.name] < 0:
            # a pole must sit outside the data (|b| > 1): dense near it, where the shape changes fast
            gap = _edge_gaps(b_hi - 1.0, P // 2)
            b = np.concatenate([1.0 + gap, -1.0 - gap])
        else:
            b = np.linspace(b_lo, b_hi, P)
        a = np.ones(len(b))
        free_a = False
    elif kind == "signed_shift":
        # u = ±x + b >= 0 on x in [-1, 1] needs b >= 1; the shape changes fastest near b = 1
        half = 1.0 + _edge_gaps(b_hi - 1.0, P // 2)
        a, b = np.concatenate([np.ones(P // 2), -np.ones(P // 2)]), np.concatenate([half, half])
        free_a = False
    elif kind == "scale":
        mags = np.geomspace(A_MIN, a_hi, P // 2)
        a, b = np.concatenate([mags, -mags]), np.zeros(P - P % 2)
        free_b = False
    else:  # linear, zero, step: solved directly
        a, b = np.ones(1), np.zeros(1)
    a, b, pad = _pad(np.asarray(a, float), np.asarray(b, float), P)
    return _Plan(fn, kind, LIBRARY.get(fn.name) is fn, a, b, pad, free_a, free_b, A_MIN, a_hi, b_lo, b_hi)


# ---------------------------------------------------------------------------------------------
# stages


def _grid_r2(xs, ys, batch: Batch, A, B, bad):
    """R² of the best (c, d) at every grid point.

    xs, ys: (m,) normalised samples (ys centred); A, B: (F, P); bad: (F, P) padded points.
    Returns (F, P) with -inf where u leaves the domain on some sample. ``u`` is built as
    (chunk, P, m) blocks of about ``_CHUNK`` elements, several functions per block.
    """
    F, P = A.shape
    m = xs.numel()
    syy = (ys * ys).sum()
    r2 = torch.empty(F, P, dtype=xs.dtype)
    ok = ~bad.numpy()
    step = max(1, _CHUNK // (P * m))
    for lo in range(0, F, step):
        hi = min(F, lo + step)
        U = A[lo:hi, :, None] * xs + B[lo:hi, :, None]  # (chunk, P, m)
        FU, valid = batch.evaluate(U, np.arange(lo, hi))
        ok[lo:hi] &= valid
        s1 = FU.sum(-1)
        s2 = (FU * FU).sum(-1)
        sfy = (FU * ys).sum(-1)
        varn = s2 - s1 * s1 / m
        flat = varn <= 1e-10 * s2  # f constant over the samples: rounding, not signal
        r2[lo:hi] = torch.where(flat, 0.0, sfy * sfy / (varn * syy))
    ok = torch.from_numpy(ok) & torch.isfinite(r2)
    return torch.where(ok, r2.clamp(0.0, 1.0), -math.inf)


def _starts(r2, side, k):
    """Diverse good starts: the top-k of each (side, side) R² grid's local maxima and row maxima
    (the best b for each a). Row maxima catch a basin that sits beside a rising ridge, such as
    the exponential tail of x*exp(-x), which has no local maximum of its own on a coarse grid.
    Returns indices (F, k) and a usable mask (F, k)."""
    F = r2.shape[0]
    g = r2.view(F, 1, side, side)
    peak = (g == nnf.max_pool2d(g, 3, stride=1, padding=1)).view(F, -1)
    rowmax = (g == g.amax(-1, keepdim=True)).view(F, -1)
    cand = torch.where(peak | rowmax, r2, torch.full_like(r2, -math.inf))
    val, idx = cand.topk(min(k, cand.shape[1]), dim=-1)
    return idx, torch.isfinite(val)


# ---------------------------------------------------------------------------------------------
# units and canonical forms


def _to_user_units(kind, name, a, b, c, d, mx, sx, my, sy):
    """Map normalised (a, b, c, d) back to the caller's units, in the family's canonical form.

    Falls back to the plain mapping where the canonical one overflows; may return non-finite
    values at the edge of float range (the caller drops those)."""
    a_u, b_u = a / sx, b - a * mx / sx
    c_u, d_u = sy * c, my + sy * d
    try:
        canon = _canonical(kind, name, a_u, b_u, c_u, d_u)
    except (OverflowError, ValueError, ZeroDivisionError):
        canon = None
    if canon is not None and all(math.isfinite(v) for v in canon):
        return canon
    return a_u, b_u, c_u, d_u


def _canonical(kind, name, a_u, b_u, c_u, d_u):
    canon = None
    if kind == "zero":
        canon = (1.0, 0.0, 0.0, d_u)
    elif kind == "linear":
        canon = (1.0, 0.0, c_u * a_u, c_u * b_u + d_u)
    elif kind == "shift":
        p = _SHIFT[name]
        g = abs(a_u) if p is None else a_u**p
        canon = (1.0, b_u / a_u, c_u * g, d_u)
    elif kind == "step":
        canon = (1.0, b_u / a_u, c_u * math.copysign(1.0, a_u), d_u)
    elif kind == "signed_shift":
        p, s, m = _SIGNED_SHIFT[name], math.copysign(1.0, a_u), abs(a_u)
        if p is None:  # log(m (s x + b/m)) = log m + log(s x + b/m)
            canon = (s, b_u / m, c_u, d_u + c_u * math.log(m))
        else:
            canon = (s, b_u / m, c_u * m**p, d_u)
    elif kind == "scale":
        if abs(b_u) < 700:
            canon = (a_u, 0.0, c_u * math.exp(b_u), d_u)
    elif name in ("sin", "cos", "tan"):  # one period, b in (-pi/2, pi/2]; sin, cos flip sign per pi
        turns = math.ceil((b_u - math.pi / 2) / math.pi)
        flip = -1.0 if (turns % 2 and name != "tan") else 1.0
        canon = (a_u, b_u - turns * math.pi, c_u * flip, d_u)
    return canon


def _inside_domain(fn: SymbolicFunction, x: torch.Tensor, a: float, b: float) -> float | None:
    """``b``, moved by a few ulps if rounding in the change of units pushed a sample that sat on
    the domain's edge (sqrt at 0, arcsin at 1) just outside; None if no such b is valid."""
    if bool(fn.valid(a * x + b).all()):
        return b
    ulp = 4 * np.finfo(float).eps * (abs(b) + abs(a) * float(x.abs().max()))
    for step in (ulp, 4 * ulp, 16 * ulp, 64 * ulp):
        for nb in (b + step, b - step):
            if bool(fn.valid(a * x + nb).all()):
                return nb
    return None


def _as_1d(v) -> np.ndarray:
    if torch.is_tensor(v):
        v = v.detach().cpu().numpy()
    return np.asarray(v, dtype=np.float64).reshape(-1)


def _resolve(functions) -> list[SymbolicFunction]:
    out = []
    for f in default_names() if functions is None else functions:
        if not isinstance(f, SymbolicFunction):
            try:
                f = get_function(f)
            except KeyError as err:
                try:  # an expression such as 'x*exp(-x)' is a function too
                    f = parse_function(f)
                except ValueError as perr:
                    raise KeyError(f"{err.args[0]} (and as an expression: {perr})") from None
        if not any(f is g for g in out):  # 'x2' and 'x^2' are one candidate
            out.append(f)
    return out


# ---------------------------------------------------------------------------------------------
# public API


def _openmp_backend() -> bool:
    try:
        return "parallel backend: OpenMP" in torch.__config__.parallel_info()
    except Exception:  # a build without the query: leave threads alone
        return False


_OPENMP = _openmp_backend()


@contextlib.contextmanager
def _one_thread():
    """Run torch single-threaded inside the fit, then restore the caller's setting.

    Every tensor here is small (<= 32k elements), where threads gain little; but torch opens a
    parallel region for sin/exp/... even on 1000 elements, and on a 2-core machine shared with
    other work each region can wait a scheduler tick for its second thread. Measured under load
    (other processes busy): one 1000-sample fit 0.3-1.9 s on 2 threads, 20-47 ms on 1. With the
    OpenMP backend ``set_num_threads`` sets the calling thread's OpenMP/MKL settings, so other
    threads keep theirs; other backends are left alone.
    """
    n = torch.get_num_threads()
    if n == 1 or not _OPENMP:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def fit_affine(x, y, functions: Sequence[str | SymbolicFunction] | None = None, *,
               weight_complexity: float = 1.0, a_range=(-10, 10), b_range=(-10, 10),
               grid_points: int = GRID_SIDE, refine: bool = True) -> list[Candidate]:
    """Rank candidates for one edge: best ``y ≈ c * f(a * x + b) + d`` per function.

    x, y: (n,) numpy arrays or torch tensors (any shape with n elements). functions: names,
    aliases, expression strings or :class:`SymbolicFunction` objects (default: the 26 built-ins).
    grid_points: grid points per axis of the coarse (a, b) search (``grid_points**2`` per
    function). Returns one :class:`Candidate` per function with a valid fit, best first by
    :func:`score`. Never raises on finite input; non-finite samples are dropped; fewer than one
    sample gives ``[]``.
    """
    fns = _resolve(functions)
    x, y = _as_1d(x), _as_1d(y)
    if x.size != y.size:
        raise ValueError(f"x and y must have the same number of samples, got {x.size} and {y.size}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size == 0 or not fns:
        return []
    with _one_thread():
        return _rank(x, y, fns, weight_complexity, a_range, b_range, max(3, int(grid_points)), refine)


def _rank(x, y, fns, weight_complexity, a_range, b_range, side, refine) -> list[Candidate]:
    # halves before sums and y pre-scaled by max|y|: no overflow even near 1e308
    lo, hi = float(x.min()), float(x.max())
    mx, sx = 0.5 * lo + 0.5 * hi, 0.5 * hi - 0.5 * lo
    ymax = float(np.abs(y).max()) or 1.0
    ys = y / ymax
    my_s, sy_s = float(ys.mean()), float(ys.std())
    my, sy = my_s * ymax, sy_s * ymax
    x_const = not sx > 1e-12 * max(abs(mx), 1e-300)
    y_const = not sy_s > 1e-12 * max(abs(my_s), 1e-300)
    if x_const:
        sx = 1.0
    xt = torch.from_numpy((x - mx) / sx)
    yt = torch.from_numpy((ys - my_s) / sy_s if not y_const else np.zeros_like(y))
    yt = yt - yt.mean()

    plans, batch = _plans_for(fns, side, a_range, b_range)
    if x_const or y_const:  # index -> (a, b, c, d, r2), normalised units
        fits = _degenerate(xt, plans, 1.0 if y_const else 0.0, mx, sx)
    else:
        fits = _fit_all(xt, yt, plans, batch, side, refine)

    out = []
    x_user = torch.from_numpy(x)
    for i, (a, b, c, d, r2) in sorted(fits.items()):
        p = plans[i]
        a_u, b_u, c_u, d_u = _to_user_units(p.kind, p.fn.name if p.builtin else None, a, b, c, d,
                                            mx, sx, my, sy if not y_const else 0.0)
        if not all(math.isfinite(v) for v in (a_u, b_u, c_u, d_u, r2)):
            continue
        b_u = _inside_domain(p.fn, x_user, a_u, b_u)
        if b_u is None:
            continue
        sc = score(r2, p.fn.complexity, weight_complexity, b_u, c_u, d_u, name=p.fn.name)
        if _is_slice(p.fn.name, a_u * lo + b_u, a_u * hi + b_u):
            sc += SLICE_PENALTY * weight_complexity
        out.append((i, Candidate(p.fn.name, a_u, b_u, c_u, d_u, float(r2), int(p.fn.complexity), sc)))
    out = _demote_far_below(out)
    out.sort(key=lambda t: (t[1].score, t[0]))
    return [cand for _, cand in out]


def _demote_far_below(out: list) -> list:
    """With a near-perfect candidate present, move those far below the best R² after all others
    (their scores are raised by one common amount, so their own order is kept)."""
    if not out:
        return out
    best = max(c.r2 for _, c in out)
    if not best >= NEAR_PERFECT:
        return out
    limit = FAR_RATIO * max(1.0 - best, R2_FLOOR)
    far = [(1.0 - c.r2) > limit for _, c in out]
    if not any(far) or all(far):
        return out
    top_ok = max(c.score for (_, c), f in zip(out, far) if not f)
    low_far = min(c.score for (_, c), f in zip(out, far) if f)
    lift = max(0.0, top_ok - low_far) + 0.01
    return [(i, replace(c, score=c.score + lift) if f else c) for (i, c), f in zip(out, far)]


# A function used on a sliver of its argument is just its Taylor polynomial there: cos(0.05 x)
# "fits" x**2 and cos(0.05 y + 3) "fits" 1/y as well as the real thing. Such fits pay extra
# complexity so the honest polynomial or pole wins. Periodic and saturating functions have a
# natural absolute scale (radians); powers, roots, poles and log a relative one.
SLICE_PENALTY = 2.0
_ABSOLUTE_SCALE = {"sin", "cos", "tan", "tanh", "arctan", "arcsin", "arccos", "arctanh", "gaussian",
                   "sigmoid", "exp"}
_RELATIVE_SCALE = {"x^2", "x^3", "x^4", "x^5", "1/x", "1/x^2", "1/x^3", "sqrt", "1/sqrt", "x^1.5", "log"}


def _is_slice(name: str, u_lo: float, u_hi: float) -> bool:
    """Does the argument a*x+b span only a sliver of the function's natural scale?"""
    if name in _ABSOLUTE_SCALE:
        return abs(u_hi - u_lo) < 0.5
    if name in _RELATIVE_SCALE and u_lo * u_hi > 0:
        lo, hi = sorted((abs(u_lo), abs(u_hi)))
        return hi < 1.2 * lo
    return False


def fit_one(x, y, function: str | SymbolicFunction, **kwargs) -> Candidate | None:
    """:func:`fit_affine` for a single function; ``None`` when it has no valid fit."""
    res = fit_affine(x, y, [function], **kwargs)
    return res[0] if res else None


def _degenerate(xt, plans, r2, mx, sx):
    """Constant y (or x): every function fits equally (c = 0); keep any (a, b) in the domain,
    preferring u = x in the caller's units."""
    fits = {}
    for i, p in enumerate(plans):
        for a, b in ((sx, mx), (0.5, 0.0), (1.0, 2.0), (-1.0, 2.0), (0.1, 0.0)):
            if bool(p.fn.valid(a * xt + b).all()):
                fits[i] = (a, b, 0.0, 0.0, r2)
                break
    return fits


_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def _plans_for(fns, side, a_range, b_range):
    """Plans, and the stacked grid of the searched ones, cached per function list."""
    key = (tuple(fns), int(side), tuple(a_range), tuple(b_range))
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is None:
        plans = [_plan(fn, int(side), a_range, b_range) for fn in fns]
        idx = [i for i, p in enumerate(plans) if p.kind not in ("zero", "linear", "step")]
        batch = None
        if idx:
            def col(attr, dt=torch.float64):  # (F, P) grids
                return torch.tensor(np.stack([getattr(plans[i], attr) for i in idx]), dtype=dt)

            def par(attr, dt=np.float64):  # (F, 1) per-function limits
                return np.array([getattr(plans[i], attr) for i in idx], dtype=dt)[:, None]

            batch = (idx, col("a"), col("b"), col("pad", torch.bool),
                     (par("free_a", bool), par("free_b", bool),
                      par("a_lo"), par("a_hi"), par("b_lo"), par("b_hi")),
                     Batch([plans[i].fn for i in idx]))
        hit = (plans, batch)
        with _CACHE_LOCK:
            if len(_CACHE) >= 64:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = hit
    return hit


def _fit_all(xt, yt, plans, batch, side, refine):
    n = xt.numel()
    syy = float((yt * yt).sum())
    fits = {}
    for i, p in enumerate(plans):
        if p.kind == "zero":
            fits[i] = (1.0, 0.0, 0.0, 0.0, 0.0)
        elif p.kind == "linear":
            sxy, sxx = float((xt - xt.mean()) @ yt), float(((xt - xt.mean()) ** 2).sum())
            c = sxy / sxx
            fits[i] = (1.0, 0.0, c, -c * float(xt.mean()), min(1.0, c * sxy / syy))
        elif p.kind == "step":
            res = _step_fit(xt, yt)
            if res is not None:
                fits[i] = res
    if batch is None:
        return fits
    searched, A, B, pad, limits, ev = batch

    # coarse grid on a subsample spread over the sorted x (extremes included)
    order = torch.argsort(xt, stable=True)
    m = min(n, GRID_SAMPLES)
    sub = order[torch.linspace(0, n - 1, m, dtype=torch.float64).round().long()]
    xs, ys = xt[sub], yt[sub] - yt[sub].mean()
    with torch.no_grad():
        r2 = _grid_r2(xs, ys, ev, A, B, pad)
        idx, usable = _starts(r2, side, STARTS if refine else 1)
        a, b, usable = A.gather(1, idx).numpy(), B.gather(1, idx).numpy(), usable.numpy()
        if refine:  # most iterations on the subsample, then polish the best start on all samples
            a, b, sse, _, _ = _refine(xs, ys, ev, a, b, usable, *limits, ITERS_SUB, 1e-3)
            pick = sse.argmin(-1)[:, None]
            a, b = np.take_along_axis(a, pick, 1), np.take_along_axis(b, pick, 1)
            usable = np.isfinite(np.take_along_axis(sse, pick, 1))
        a, b, sse, c, fm = _refine(xt, yt, ev, a, b, usable, *limits, ITERS_FULL if refine else 1, 1e-4)
    best = sse.argmin(-1)
    for j, i in enumerate(searched):
        t = int(best[j])
        e = float(sse[j, t])
        if not math.isfinite(e):
            continue
        cj = float(c[j, t])
        fits[i] = (float(a[j, t]), float(b[j, t]), cj, -cj * float(fm[j, t]), min(1.0, max(0.0, 1.0 - e / syy)))
    return fits
