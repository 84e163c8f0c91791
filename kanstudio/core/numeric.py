"""SymPy expressions as NumPy closures, without code generation.

``sympy.lambdify`` prints each expression to Python source and compiles it: 5-10 ms a call.
Constant tidying judges dozens of candidate formulas per law, each once, so that printing was
most of tidying's time. Walking the tree once into nested closures costs tens of microseconds
and computes the same operations. Anything outside the covered nodes (complex constants,
Piecewise, special functions) falls back to lambdify, so the two never disagree on meaning.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import sympy

_UNARY = {
    sympy.sin: np.sin, sympy.cos: np.cos, sympy.tan: np.tan,
    sympy.asin: np.arcsin, sympy.acos: np.arccos, sympy.atan: np.arctan,
    sympy.sinh: np.sinh, sympy.cosh: np.cosh, sympy.tanh: np.tanh,
    sympy.asinh: np.arcsinh, sympy.acosh: np.arccosh, sympy.atanh: np.arctanh,
    sympy.exp: np.exp, sympy.log: np.log, sympy.Abs: np.abs, sympy.sign: np.sign,
}


class _Unsupported(Exception):
    pass


def _is_reciprocal(t) -> bool:
    return t.is_Pow and t.exp.is_Number and t.exp.is_negative


def _node(e, index: dict) -> Callable[[Sequence[np.ndarray]], np.ndarray | float]:
    if e in index:
        k = index[e]
        return lambda a: a[k]
    if e.is_Number or e.is_NumberSymbol:
        if not e.is_real or not e.is_finite:
            raise _Unsupported(e)
        v = float(e)
        return lambda a: v
    if e.is_Add:
        parts = [_node(t, index) for t in e.args]
        first, rest = parts[0], parts[1:]

        def add(a):
            s = first(a)
            for p in rest:
                s = s + p(a)
            return s
        return add
    if e.is_Mul:
        # Negative powers divide, as lambdify's printed x/y does: x * (1/y) differs in the last bit.
        num = [_node(t, index) for t in e.args if not _is_reciprocal(t)]
        den = [_node(1 / t, index) for t in e.args if _is_reciprocal(t)]

        def mul(a):
            s = num[0](a) if num else 1.0
            for p in num[1:]:
                s = s * p(a)
            if den:
                d = den[0](a)
                for p in den[1:]:
                    d = d * p(a)
                s = s / d
            return s
        return mul
    if e.is_Pow:
        base, ex = _node(e.base, index), e.exp
        if ex == sympy.S.Half:
            return lambda a: np.sqrt(base(a))
        if ex == -sympy.S.Half:
            return lambda a: 1.0 / np.sqrt(base(a))
        if ex.is_Integer:
            n = int(ex)
            if n == -1:
                return lambda a: 1.0 / base(a)
            # Float powers: an integer power of a NumPy int scalar would overflow or refuse.
            return lambda a: np.power(np.asarray(base(a), dtype=np.float64), n)
        power = _node(ex, index)
        return lambda a: np.power(np.asarray(base(a), dtype=np.float64), power(a))
    if e.func in _UNARY and len(e.args) == 1:
        f, arg = _UNARY[e.func], _node(e.args[0], index)
        return lambda a: f(np.asarray(arg(a), dtype=np.float64))
    imp = getattr(e.func, "_imp_", None)
    if imp is not None:  # an unsnapped edge: its own spline
        args = [_node(t, index) for t in e.args]
        return lambda a: imp(*[t(a) for t in args])
    raise _Unsupported(e)


def numeric_function(symbols: Sequence[sympy.Symbol], expr) -> Callable[..., np.ndarray]:
    """``f(*columns)`` computing ``expr`` with NumPy, the columns bound to ``symbols`` in order;
    lambdify's function where the expression holds nodes this module does not cover."""
    expr = sympy.sympify(expr)
    index = {s: k for k, s in enumerate(symbols)}
    try:
        root = _node(expr, index)
    except _Unsupported:
        return sympy.lambdify(list(symbols), expr, modules=["numpy"], dummify=True)
    return lambda *cols: root(cols)
