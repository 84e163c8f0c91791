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


@pytest.mark.parametrize("value, exact", [
    (1 / np.sqrt(2 * np.pi), 1 / sympy.sqrt(2 * sympy.pi)),
    (np.sqrt(2), sympy.sqrt(2)),
    (np.e, sympy.E),
    (np.pi**2 / 6, sympy.pi**2 / 6),
    (3 / np.sqrt(np.pi), 3 / sympy.sqrt(sympy.pi)),
    (2 * np.sqrt(3), 2 * sympy.sqrt(3)),
])
def test_nice_values_know_the_constants_of_physics(value, exact):
    assert sympy.simplify(exact) in [sympy.simplify(c) for c in constants.nice_values(float(value))]


def test_special_constants_must_match_closely():
    # 0.4 is 0.27 % from 1/sqrt(2 pi): close enough for 2/5, not for a Gaussian normalisation
    assert not any(c.has(sympy.sqrt(2 * sympy.pi)) or c.has(sympy.sqrt(sympy.pi)) for c in constants.nice_values(0.4))


def _recover(f, expr, ranges, noise, seed=0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.uniform(a, b, 1500) for a, b in ranges])
    y = f(X)
    y = y + noise * np.std(y) * rng.standard_normal(len(y))
    syms = sympy.symbols(f"x0:{X.shape[1]}", real=True)
    Xf, yf, Xv, yv = X[:1000], y[:1000], X[1000:], y[1000:]
    return tidy(expr(syms), list(syms), Xv, yv, Xf, yf), syms


def test_tidy_gives_the_gaussian_normalisation_exactly():
    got, (x,) = _recover(lambda X: np.exp(-X[:, 0] ** 2 / 2) / np.sqrt(2 * np.pi),
                         lambda s: sympy.Float(0.3989420) * sympy.exp(sympy.Float(-0.5000003) * s[0] ** 2), [(-3, 3)], 0.0)
    assert sympy.simplify(got - sympy.exp(-x**2 / 2) / sympy.sqrt(2 * sympy.pi)) == 0


def test_noisy_offsets_are_dropped_before_rounding():
    # A fitted x^2 edge on 1 % noise: the offsets compensate a wrong rounding of the scale
    # (5/3 instead of pi^2/6) unless they go first.
    got, (x,) = _recover(lambda X: np.pi**2 / 6 * X[:, 0] ** 2,
                         lambda s: sympy.Float(1.65443) * (sympy.Float(0.9999995) * s[0] - sympy.Float(0.0116352)) ** 2
                         + sympy.Float(0.0345287), [(1, 3)], 0.01)
    assert sympy.simplify(got - sympy.pi**2 / 6 * x**2) == 0


def test_a_real_offset_is_kept():
    got, (x,) = _recover(lambda X: 2 * X[:, 0] + 0.3, lambda s: sympy.Float(2.0003) * s[0] + sympy.Float(0.2998),
                         [(0, 1)], 0.0)
    assert sympy.simplify(got - (2 * x + sympy.Rational(3, 10))) == 0


def test_tidy_starts_nothing_past_its_deadline():
    import time

    rng = np.random.default_rng(0)
    X = rng.uniform(1, 3, (400, 1))
    y = 2 * X[:, 0] ** 2 + 1
    (x,) = syms = [sympy.Symbol("x", positive=True)]
    start = sympy.Float(2.0004) * x ** sympy.Float(2.0001) + sympy.Float(0.9997)
    assert tidy(start, syms, X, y, X, y, deadline=time.perf_counter()) == start  # out of time: as given
    far = tidy(start, syms, X, y, X, y, deadline=time.perf_counter() + 600)
    assert far == tidy(start, syms, X, y, X, y) and sympy.simplify(far - (2 * x**2 + 1)) == 0
