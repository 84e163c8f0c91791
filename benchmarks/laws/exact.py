"""Is a found formula exactly the true law? Bounded in time, also for 9-variable laws.

1. Constants: a float within 1e-6 (relative) of a simple number becomes that number. Simple
   numbers are kanstudio's ``nice_values`` (integers, p/q, p/q*pi, p/(q*pi), q <= 12) plus
   p/q times sqrt(2), sqrt(3), sqrt(pi), sqrt(2*pi), pi**2, pi**3 or their inverses (so that
   0.398942280401433 is 1/sqrt(2*pi)); 0 only for |float| <= 1e-9.
2. Numeric screen: 64 random points of the box, rtol 1e-9 (as before). Almost every wrong
   formula stops here, and SymPy never sees it: simplify can run for minutes on a wrong one.
3. Symbolic proof, only when both sides are small (count_ops <= SIZE_GUARD) and each call
   bounded by a SIGALRM timer: simplify(true - found) == 0, else simplify(found / true) == 1.
4. If SymPy could not decide (too big, timed out, or it simply did not find the rewrite) and the
   found formula has no floating-point constant left, a numeric proof: 1000 random points in
   30-digit arithmetic (mpmath), |true - found| <= 1e-20 * max(|true|, RMS(true)) at each point.
   Two formulas with exact constants that differ cannot agree to 20 digits on 1000 random points
   unless they are the same function on the box; a formula still holding a float (a constant
   that step 1 could not name) is never exact, as in step 3.

``legacy=True`` is the rule of the earlier feynman.py, kept to compare figures with earlier
sessions: step 1 took the first of ``nice_values(v, rel=1e-6)``, which is 0 for every
|v| < 0.02 (so a spurious ``0.01*x`` term vanished) and knew no square roots; no step 4.

``exact_check`` says which step decided ("symbolic" or "numeric"); ``exact_match`` is the bool.
"""
from __future__ import annotations

import contextlib
import signal
import threading

SIZE_GUARD = 200  # count_ops(true) + count_ops(found) above this: skip simplify
SIMPLIFY_SECONDS = 20.0
MAX_FOUND_OPS = 300


class _Timeout(BaseException):
    """Not an Exception, so SymPy's own ``except Exception`` blocks cannot swallow it."""


@contextlib.contextmanager
def _time_bound(seconds: float):
    if threading.current_thread() is not threading.main_thread():
        raise _Timeout  # no timer off the main thread: let the caller skip the unbounded step

    def _raise(signum, frame):
        raise _Timeout

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _symbols(ranges):
    import sympy

    return {n: sympy.Symbol(n, positive=True) if lo > 0 else sympy.Symbol(n, real=True) for n, lo, _ in ranges}


def _points(ranges, n: int, seed: int):
    import numpy as np

    return np.random.default_rng(seed).uniform([lo for _, lo, _ in ranges], [hi for _, _, hi in ranges],
                                               (n, len(ranges)))


def _legacy_nice(v: float):
    from kanstudio.core.constants import nice_values

    vals = nice_values(v, rel=1e-6)
    return vals[0] if vals else None


def nice_constant(v: float, rel: float = 1e-6):
    """The simplest exact number within ``rel`` (relative) of ``v``, or None."""
    from fractions import Fraction

    import sympy

    from kanstudio.core.constants import nice_values

    if abs(v) <= 1e-9:
        return sympy.Integer(0)
    cands = [c for c in nice_values(v, rel=rel) if c != 0]
    for base in (sympy.sqrt(2), sympy.sqrt(3), sympy.sqrt(sympy.pi), sympy.sqrt(2 * sympy.pi), sympy.pi**2, sympy.pi**3):
        for mult in (base, 1 / base):
            fr = Fraction(v / float(mult)).limit_denominator(12)
            if fr.numerator and abs(float(fr) * float(mult) - v) <= rel * abs(v):
                cands.append(sympy.Rational(fr.numerator, fr.denominator) * mult)
    return min(cands, key=lambda c: (len(str(c)), abs(float(c) - v))) if cands else None


def _symbolic_equal(true, found, seconds: float) -> bool | None:
    """True/False when SymPy decided in time, None when it could not."""
    import sympy

    try:
        with _time_bound(seconds):
            if sympy.simplify(true - found) == 0:
                return True
        with _time_bound(seconds):
            return True if sympy.simplify(found / true) == 1 else None
    except _Timeout:
        return None


def _numeric_proof(true, found, syms: list, ranges) -> bool:
    import mpmath
    import sympy

    pts = _points(ranges, 1000, seed=2)
    with mpmath.workdps(30):
        ft = sympy.lambdify(syms, true, "mpmath")
        ff = sympy.lambdify(syms, found, "mpmath")
        a, b = [], []
        for p in pts:
            args = [mpmath.mpf(float(v)) for v in p]
            try:
                a.append(mpmath.mpmathify(ft(*args)))
                b.append(mpmath.mpmathify(ff(*args)))
            except (ValueError, ZeroDivisionError, TypeError):
                return False
        if any(not mpmath.isfinite(x) or mpmath.im(x) != 0 for x in a + b):
            return False
        rms = mpmath.sqrt(mpmath.fsum(x * x for x in a) / len(a))
        return all(abs(x - y) <= mpmath.mpf("1e-20") * max(abs(x), rms) for x, y in zip(a, b))


def exact_check(true_str: str, found_str: str, ranges, simplify_seconds: float = SIMPLIFY_SECONDS,
                legacy: bool = False) -> str | None:
    """"symbolic" / "numeric" when ``found_str`` is exactly ``true_str`` on the box, else None."""
    import numpy as np
    import sympy
    from sympy.parsing.sympy_parser import parse_expr

    syms = _symbols(ranges)
    true = parse_expr(true_str, local_dict=dict(syms))
    found = parse_expr(found_str, local_dict=dict(syms))
    if not found.free_symbols <= set(syms.values()):
        return None
    rep = {}
    for f in found.atoms(sympy.Float):
        c = _legacy_nice(float(f)) if legacy else nice_constant(float(f))
        if c is not None:
            rep[f] = c
    found = found.xreplace(rep)
    if sympy.count_ops(found) > MAX_FOUND_OPS:
        return None
    names = [n for n, _, _ in ranges]
    order = [syms[n] for n in names]
    pts = _points(ranges, 64, seed=1)
    ft = sympy.lambdify(order, true, "numpy")
    ff = sympy.lambdify(order, found, "numpy")
    with np.errstate(all="ignore"):
        a, b = np.broadcast_to(ft(*pts.T), 64), np.broadcast_to(ff(*pts.T), 64)
    if not (np.all(np.isfinite(b)) and np.allclose(a, b, rtol=1e-9, atol=1e-12)):
        return None
    has_float = bool(found.atoms(sympy.Float))
    if sympy.count_ops(true) + sympy.count_ops(found) <= SIZE_GUARD:
        verdict = _symbolic_equal(true, found, simplify_seconds)
        if verdict:
            return "symbolic"
    if has_float or legacy:
        return None
    return "numeric" if _numeric_proof(true, found, order, ranges) else None


def exact_match(true_str: str, found_str: str, ranges) -> bool:
    return exact_check(true_str, found_str, ranges) is not None
