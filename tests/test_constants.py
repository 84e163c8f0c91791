"""Exact constants on float32 data: rounding error in the stored targets must not beat pi."""
from __future__ import annotations

import numpy as np
import pytest
import sympy
import torch

from kanstudio.core import constants
from kanstudio.core.constants import precision_floor, tidy


def _float32_data(n: int, seed: int):
    """Like pykan's create_dataset: inputs and labels computed and stored in float32."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 2, generator=g, dtype=torch.float32) * 2 - 1
    y = torch.exp(torch.sin(torch.pi * X[:, 0]) + X[:, 1] ** 2)
    return X.double().numpy(), y.double().numpy()


def test_precision_floor_detects_float32_targets_only():
    _, y32 = _float32_data(500, 0)
    assert precision_floor(y32) == pytest.approx(np.finfo(np.float32).eps * np.sqrt(np.mean(y32**2)))
    y64 = y32 + 1e-12 * np.arange(len(y32))  # no longer float32-representable
    assert precision_floor(y64) == 0.0
    assert precision_floor(np.array([np.nan, np.inf])) == 0.0


def _tidy_pi():
    X, y = _float32_data(1000, 0)
    Xv, yv = _float32_data(1000, 1)
    x0, x1 = sympy.symbols("x0 x1", real=True)
    # What a snapped-and-refitted network hands over: the least-squares constant is float32(pi),
    # the value the labels were computed with.
    expr = sympy.exp(sympy.sin(sympy.Float(float(np.float32(np.pi))) * x0) + sympy.Float(1.0) * x1**2)
    return tidy(expr, [x0, x1], Xv, yv, X, y), sympy.exp(sympy.sin(sympy.pi * x0) + x1**2)


def test_tidy_recovers_pi_on_float32_labels():
    out, truth = _tidy_pi()
    assert sympy.simplify(out - truth) == 0


def test_without_the_floor_float32_rounding_keeps_the_float(monkeypatch):
    # The cause the floor fixes: sin(float32(pi) x) fits float32 labels better than sin(pi x).
    monkeypatch.setattr(constants, "precision_floor", lambda y: 0.0)
    out, truth = _tidy_pi()
    assert out.atoms(sympy.Float) and sympy.simplify(out - truth) != 0


def test_simplify_is_bounded_on_nested_logs():
    """A formula of the shape discovery produced for omega_0/(1 - v/c): SymPy's full simplify ran
    for more than ten minutes on it (logcombine's positivity queries); the bounded one must not."""
    import time

    import sympy

    from kanstudio.core.constants import simplify_expr

    v, w, c = sympy.symbols("v omega_0 c", positive=True)
    e = 6 - sympy.Rational(33, 8) * sympy.log(
        -sympy.pi * v / 8 - sympy.Rational(14, 9) * sympy.log(sympy.Rational(13, 12) * w + 6 / (11 * sympy.pi))
        + sympy.Rational(50, 11) - sympy.Rational(29, 11) / (sympy.Rational(5, 4) * c - sympy.Rational(11, 9)))
    t = time.perf_counter()
    out = simplify_expr(e)
    assert time.perf_counter() - t < 5
    pt = {v: 1.3, w: 2.1, c: 4.0}
    assert abs(float(out.subs(pt)) - float(e.subs(pt))) < 1e-12  # the same function
