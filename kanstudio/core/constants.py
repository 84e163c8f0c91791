"""Simplification and exact constants, each accepted only if held-out error stays within tolerance.

Work is bounded by counts (expression size, number of constants, solver evaluations), not by
the clock, so the same model always gives the same formula, however busy the machine. The one
exception is a ``deadline`` (the search's time limit): past it no further trial starts, so a
tidy that would outlast the user's budget ends with what it has by then.

A change to the formula (simplify, refit the floats, replace a float by 0, an integer, a simple
fraction or a rational multiple of pi) is kept when the held-out RMSE stays within
``rel_tol`` of the *unrounded* formula's RMSE (plus a tiny absolute slack for noise-free data),
so rounding can never trade accuracy for looks beyond that bound.

The bound also allows for the precision the targets were stored in (:func:`precision_floor`): on
float32 data (pykan's ``create_dataset``) the labels carry about one unit in the last place of
rounding error, and were computed with float32's pi (8.7e-8 above pi), so ``sin(3.1415927 x)``
fits them about 12 % better (RMSE 1.2e-7 vs 1.4e-7) than ``sin(pi x)`` does. A difference that
small says nothing about the law, and ``pi`` must win.
"""
from __future__ import annotations

import math
import time
from fractions import Fraction

import numpy as np
import sympy
from scipy.optimize import least_squares

from .formula import evaluate
from .numeric import numeric_function

MAX_DEN = 12


# Constants of physical laws beyond rational multiples of pi: Gaussian normalisations
# (1/sqrt(2 pi)), diagonals (sqrt 2, sqrt 3), e, pi squared. They are less common than plain
# fractions, so they must match more closely and take only small denominators: a float near
# none of them then costs a few judged trials, not dozens.
_SPECIAL = tuple(m for b in (sympy.sqrt(2), sympy.sqrt(3), sympy.sqrt(5), sympy.cbrt(2), sympy.sqrt(sympy.pi),
                             sympy.sqrt(2 * sympy.pi), sympy.E, sympy.pi**2, sympy.pi**sympy.Rational(3, 2),
                             sympy.sqrt(2) * sympy.pi)
                 for m in (b, 1 / b))
SPECIAL_DEN = 6
SPECIAL_REL = 1e-3


def nice_values(v: float, rel: float = 0.02) -> list[sympy.Expr]:
    """Exact numbers near ``v``: 0, integers, p/q (q <= 12), p/q*pi, p/(q*pi); then, closer
    still, p/q (q <= 6) times sqrt(2), sqrt(3), sqrt(5), 2**(1/3), sqrt(pi), sqrt(2 pi), e,
    pi**2, pi**(3/2), sqrt(2) pi or their inverses. Shortest first."""
    out: list[sympy.Expr] = []
    if abs(v) < 2e-2:
        out.append(sympy.Integer(0))
    if v == 0:
        return out
    close = lambda c, r=rel: abs(float(c) - v) <= r * abs(v)  # noqa: E731
    r = round(v)
    if r != 0 and close(r):
        out.append(sympy.Integer(r))
    fr = Fraction(v).limit_denominator(MAX_DEN)
    if fr.denominator > 1 and fr.numerator != 0 and close(fr):
        out.append(sympy.Rational(fr.numerator, fr.denominator))
    for mult in (sympy.pi, 1 / sympy.pi):
        fr = Fraction(v / float(mult)).limit_denominator(MAX_DEN)
        if fr.numerator != 0 and close(fr * float(mult)):
            out.append(sympy.Rational(fr.numerator, fr.denominator) * mult)
    special_rel = min(rel, SPECIAL_REL)
    for mult in _SPECIAL:
        fr = Fraction(v / float(mult)).limit_denominator(SPECIAL_DEN)
        if fr.numerator != 0 and abs(fr.numerator) <= 12 and close(fr * float(mult), special_rel):
            out.append(sympy.Rational(fr.numerator, fr.denominator) * mult)
    seen, uniq = set(), []
    for c in out:
        if c not in seen:
            seen.add(c)
            uniq.append(c)
    # Shortest to write first, then closest: pi before 22/7, 1/2 before 6/12-like detours.
    return sorted(uniq, key=lambda c: (len(str(c)), abs(float(c) - v)))


def _floats(expr: sympy.Expr) -> list[sympy.Float]:
    # A total order (ties by value, then text): set order follows SymPy's cache, and the
    # parameter order changes the least-squares path, so it must not depend on history.
    return sorted(expr.atoms(sympy.Float), key=lambda f: (-abs(float(f)), float(f), str(f)))


def precision_floor(y) -> float:
    """RMS error already in targets stored at float32 precision: about one unit in the last
    place (float32 epsilon times the targets' RMS), from storing and, usually, from computing
    them in float32. 0 for data that is not float32-representable (float64 measurements)."""
    y = np.asarray(y, dtype=np.float64).ravel()
    y = y[np.isfinite(y)]
    if not len(y) or not np.array_equal(y.astype(np.float32).astype(np.float64), y):
        return 0.0
    return float(np.finfo(np.float32).eps * np.sqrt(np.mean(y * y)))


class _Judge:
    """Held-out RMSE of candidate formulas against the bound set by the unrounded one (plus the
    targets' own storage precision, see :func:`precision_floor`)."""

    def __init__(self, symbols, X, y, base_err: float, rel_tol: float):
        self.symbols, self.X, self.y = symbols, X, y
        scale = float(np.std(y)) or 1.0
        self.bound = base_err * (1 + rel_tol) + 1e-9 * scale + precision_floor(y)

    def err(self, expr) -> float:
        try:
            p = evaluate(expr, self.symbols, self.X)
        except Exception:  # a formula that cannot be evaluated is simply not accepted
            return math.inf
        if not np.isfinite(p).all():
            return math.inf
        return float(np.sqrt(np.mean((p - self.y) ** 2)))

    def accept(self, expr) -> tuple[bool, float]:
        e = self.err(expr)
        return e <= self.bound, e


class _OutOfTime(Exception):
    pass


def refit_floats(expr, symbols, X, y, max_nfev: int = 200, deadline: float | None = None):
    """Least-squares refit of every float constant of ``expr`` on ``(X, y)``; ``expr`` as given
    when ``deadline`` passes during the refit (dozens of floats: seconds)."""
    floats = _floats(expr)
    if not floats or len(floats) >= len(y):
        return expr
    params = sympy.symbols(f"_p0:{len(floats)}")
    templ = expr.xreplace(dict(zip(floats, params)))
    f = numeric_function(list(symbols) + list(params), templ)
    # Contiguous copies: NumPy's summation order depends on memory layout, and this problem can be
    # ill-conditioned enough for that last-bit difference to change the result.
    cols = [np.ascontiguousarray(X[:, i]) for i in range(X.shape[1])]
    y = np.ascontiguousarray(y)

    def resid(p):
        if deadline is not None and time.perf_counter() > deadline:
            raise _OutOfTime
        with np.errstate(all="ignore"):
            v = np.asarray(f(*cols, *p))
            if np.iscomplexobj(v):  # sqrt or log of a negative value: no real prediction there
                v = np.where(np.abs(v.imag) <= 1e-12 * (1 + np.abs(v.real)), v.real, np.nan)
            r = np.broadcast_to(v.astype(np.float64), y.shape) - y
        return np.where(np.isfinite(r), r, 1e6)

    x0 = np.array([float(v) for v in floats])
    try:
        sol = least_squares(resid, x0, method="lm" if len(y) > len(x0) else "trf", max_nfev=max_nfev)
    except Exception:
        return expr
    if not np.isfinite(sol.x).all():
        return expr
    return templ.xreplace({p: sympy.Float(float(v)) for p, v in zip(params, sol.x)})


# A formula with more floats than this is a network's spline-like fit, not a law with a stray
# offset; each try costs a least-squares refit of all its floats (a [3,7,1] network's formula:
# tens of seconds), so only small formulas get the pass.
DROP_MAX_FLOATS = 10


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.perf_counter() > deadline


def drop_constants(expr, judge: _Judge, fit, max_floats: int = 40, deadline: float | None = None):
    """Try 0 for each float, smallest first, the others refitted. On noisy data an offset comes
    out 0.01-0.03 instead of 0, and rounding the large constants first lets the offsets
    compensate a wrong rounding (5/3 (x - 1/(12 pi))**2 + 1/(4 pi) for pi**2/6 x**2): a parameter
    the law does not have goes before any other constant is made exact."""
    cur, tried = expr, set()
    for _ in range(max_floats):
        todo = [f for f in sorted(_floats(cur), key=lambda f: (abs(float(f)), float(f), str(f))) if f not in tried]
        if not todo or _past(deadline):
            break
        f = todo[0]
        tried.add(f)
        trial = cur.xreplace({f: sympy.Integer(0)})
        if trial.atoms(sympy.Float):
            trial = refit_floats(trial, *fit, deadline=deadline)
        if judge.accept(trial)[0]:
            cur = trial
    return cur


def round_constants(expr, judge: _Judge, fit=None, max_floats: int = 40, deadline: float | None = None):
    """Replace floats by nice numbers one at a time. With ``fit = (symbols, X, y)`` the other
    floats are refitted after each replacement before judging it, so constants that compensated
    each other (1.005 (E - 0.012)(q - 0.02) + 0.05 on noisy data) can all become exact."""
    few = len(_floats(expr)) <= DROP_MAX_FLOATS
    cur = drop_constants(expr, judge, fit, max_floats, deadline) if fit is not None and few else expr
    tried = set()
    for _ in range(max_floats):
        # Walk the *current* floats: a refit replaces the others with new values.
        todo = [f for f in _floats(cur) if f not in tried]
        if not todo or _past(deadline):
            break
        f = todo[0]
        tried.add(f)
        for cand in nice_values(float(f)):
            if _past(deadline):
                break
            trial = cur.xreplace({f: cand})
            ok, _ = judge.accept(trial)
            if not ok and fit is not None and trial.atoms(sympy.Float):
                trial = refit_floats(trial, *fit, deadline=deadline)
                ok, _ = judge.accept(trial)
            if ok:
                cur = trial
                break
    return cur


def _monic(add: sympy.Expr):
    """``(c, add / c)`` with c the largest float coefficient of the sum's terms, or None."""
    coeffs = [t.as_coeff_Mul()[0] for t in add.args]
    if not any(isinstance(c, sympy.Float) for c in coeffs):
        return None
    c = max(coeffs, key=lambda v: abs(float(v)))
    if c == 0 or c == 1:
        return None
    return c, sympy.Add(*[t / c for t in add.args])


def canonical(expr: sympy.Expr, symbols) -> sympy.Expr:
    """Value-preserving rewrites that expose constants to rounding: a float factor is pulled out
    of every sum that is multiplied or raised to a number ((0.997 s + 0.997)**-1 -> 1.003 (s + 1)**-1,
    so it merges with the outer coefficient), and a numeric coefficient mixing floats and pi
    (0.00806 pi**2) becomes one float (0.0796) that can round to 1/(4 pi)."""
    syms = list(symbols)

    def norm(e):
        if e.is_Atom:
            return e
        args = [norm(a) for a in e.args]
        if e.is_Mul:
            coef, out = sympy.Integer(1), []
            for a in args:
                base, ex = (a.base, a.exp) if (a.is_Pow and a.exp.is_Number) else (a, sympy.Integer(1))
                m = _monic(base) if base.is_Add else None
                if m is not None:
                    coef *= m[0] ** ex
                    out.append(m[1] ** ex)
                else:
                    out.append(a)
            e = sympy.Mul(coef, *out)
        elif e.is_Pow and e.base.is_Add and e.exp.is_Number and (m := _monic(args[0])) is not None:
            e = m[0] ** e.exp * m[1] ** e.exp
        else:
            e = e.func(*args)
        if e.is_Mul:
            c, rest = e.as_independent(*syms, as_Add=False)
            if c != 1 and c.atoms(sympy.Float) and len(c.atoms(sympy.Number, sympy.NumberSymbol)) > 1:
                e = sympy.Float(float(c.evalf())) * rest
        return e

    try:
        return norm(expr)
    except Exception:  # a rewrite is an optimisation; never let it cost the formula
        return expr


def simplify_expr(expr, max_ops: int = 40):
    """SymPy simplification, bounded so that it always takes well under a second: cheap,
    deterministic rewrites (logs, powers, common factors) always; the full ``simplify`` only for
    small expressions without trigonometric, hyperbolic or logarithmic functions: its ``trigsimp``
    pass can take tens of seconds, and its ``logcombine`` asks whether each log's argument is
    positive, which for a rational function of the inputs means root isolation of its numerator
    (an unfinished 10-minute run on a 25-operation formula with nested logs)."""
    try:
        e = sympy.powsimp(sympy.expand_log(expr, force=True), force=True)
        e = sympy.factor_terms(e)
        slow = e.has(sympy.sin, sympy.cos, sympy.tan, sympy.tanh, sympy.sinh, sympy.cosh, sympy.log)
        if not slow and sympy.count_ops(e) <= max_ops:
            e = sympy.simplify(e)
        return e
    except Exception:
        return expr


def tidy(expr, symbols, X_val, y_val, X_fit, y_fit, *, simplify: bool = True, exact_constants: bool = True,
         rel_tol: float = 0.02, deadline: float | None = None):
    """Refit -> round -> simplify, twice, each step kept only when the judge accepts it; past
    ``deadline`` (a ``time.perf_counter()`` value) no further step starts."""
    base = _Judge(symbols, X_val, y_val, 0.0, rel_tol)
    judge = _Judge(symbols, X_val, y_val, base.err(expr), rel_tol)
    cur = expr

    def keep(trial):
        return trial if (trial != cur and judge.accept(trial)[0]) else cur

    for _ in range(3):
        prev = cur
        if exact_constants and not _past(deadline):
            trial = refit_floats(cur, symbols, X_fit, y_fit, deadline=deadline)
            if trial is not cur and judge.err(trial) <= judge.err(cur):
                cur = trial
            cur = keep(canonical(cur, symbols))
            cur = round_constants(cur, judge, (symbols, X_fit, y_fit), deadline=deadline)
        if simplify and not _past(deadline):
            cur = keep(simplify_expr(cur))
            cur = keep(canonical(cur, symbols))
        if cur == prev or _past(deadline):
            break
    return cur
