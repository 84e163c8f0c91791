"""The structure tests (kanstudio.core.structure) on laws whose structure is known: each finds
what holds, and a law without that structure gets no such finding."""
import numpy as np
import pytest
import sympy

from kanstudio.core.structure import analyze
from kanstudio.core.views import View


def _run(f, ranges, n=900, seed=0):
    rng = np.random.default_rng(seed)
    names = list(ranges)
    X = np.column_stack([rng.uniform(lo, hi, n) for lo, hi in ranges.values()])
    y = f(*X.T)
    k = int(0.8 * n)
    return analyze(X[:k], y[:k], View.identity(names), X[k:], y[k:], seed=0), names


def _cols(st):
    return {sympy.simplify(c) for c in st.view.columns}


S = sympy.symbols


def test_a_difference_and_a_ratio_are_found():
    st, _ = _run(lambda x, mu, z: np.sin(x - mu) * z, {"x": (1, 3), "mu": (0, 2), "z": (1, 2)})
    x, mu, z = S("x mu z")
    assert x - mu in _cols(st) or mu - x in _cols(st)
    assert st.multiplicative is not None  # sin(x - mu) * z
    st, _ = _run(lambda v, c, m: m * np.exp(-v / c), {"v": (1, 3), "c": (2, 4), "m": (1, 2)})
    v, c = S("v c")
    assert any(sympy.simplify(col - v / c) == 0 or sympy.simplify(col - c / v) == 0 for col in _cols(st))


def test_a_sum_of_squares_is_found():
    st, _ = _run(lambda x, y: np.cos(x**2 + y**2), {"x": (-1.5, 1.5), "y": (-1.5, 1.5)})
    x, y = S("x y")
    assert _cols(st) == {x**2 + y**2}


def test_a_column_the_law_does_not_use_is_dropped():
    st, _ = _run(lambda a, b, z: np.sin(a) * b + b**2, {"a": (0, 3), "b": (1, 2), "z": (0, 5)})
    assert all(str(s) != "z" for c in st.view.columns for s in c.free_symbols)
    assert any(s.kind == "drop" for s in st.steps)


def test_separability_additive_and_multiplicative():
    st, names = _run(lambda a, b: np.sin(a) + b**2, {"a": (0, 3), "b": (0.5, 2)})
    assert st.additive == [[0], [1]]
    st, names = _run(lambda a, b: a**2 * np.exp(np.sin(b)), {"a": (1, 2), "b": (0, 3)})
    assert st.multiplicative == [[0], [1]]
    st, names = _run(lambda a, b: np.sin(a * b + a), {"a": (0.5, 2), "b": (0.5, 2)})
    assert st.additive is None and st.multiplicative is None


def test_homogeneity_with_equal_weights():
    """1/sigma * G((x)/sigma): y(l x, l sigma) = y / l."""
    st, _ = _run(lambda x, s: np.exp(-(x / s) ** 2 / 2) / s, {"x": (0.2, 3), "s": (1, 2)})
    x, s = S("x s")
    assert any(f.kind == "homogeneous" for f in st.steps)
    assert len(st.view.columns) == 1
    # one column left, either x/s with factor 1/s or s/x with factor 1/x
    assert sympy.simplify(st.view.factor * s) == 1 or sympy.simplify(st.view.factor * x) == 1


def test_homogeneity_with_unequal_weights_reduces_a_heat_kernel_to_one_column():
    """exp(-x^2/(4 s))/sqrt(s): y(l x, l^2 s) = y / l, so y = s^(-1/2) G(x^2/s); x crosses 0."""
    st, _ = _run(lambda x, s: np.exp(-x**2 / (4 * s)) / np.sqrt(s), {"x": (-2, 2), "s": (1, 9)})
    x, s = S("x s")
    assert [sympy.simplify(c) for c in st.view.columns] == [x**2 / s]
    assert sympy.simplify(st.view.factor - 1 / sympy.sqrt(s)) == 0


def test_unequal_weights_for_a_2d_gaussian_with_a_width():
    st, _ = _run(lambda x, y, sg: np.exp(-(x**2 + y**2) / (2 * sg**2)) / sg**2,
                 {"x": (-2, 2), "y": (-2, 2), "sg": (1, 2)})
    x, y, sg = S("x y sg")
    assert [sympy.simplify(c) for c in st.view.columns] == [sympy.simplify((x**2 + y**2) / sg**2)]
    assert sympy.simplify(st.view.factor * sg**2) == 1


def test_a_power_product_gets_no_weighted_homogeneity():
    """a^2 b^3 is homogeneous for every weight pair (a plane of null vectors): none is reported,
    while the heat kernel's exact gradients give exactly one."""
    from kanstudio.core.structure import _weighted_homogeneity

    rng = np.random.default_rng(1)
    a, b = rng.uniform(1, 2, 500), rng.uniform(1, 2, 500)
    F = a**2 * b**3
    A, B = S("a b")
    assert _weighted_homogeneity(2 * F, 3 * F, F, (0, 1), A, B, (True, True), 0.01) == []
    x, s = rng.uniform(-2, 2, 500), rng.uniform(1, 9, 500)
    F = np.exp(-x**2 / (4 * s)) / np.sqrt(s)
    gx, gs = -x / (2 * s) * F, (x**2 / (4 * s**2) - 1 / (2 * s)) * F
    X_, S_ = S("x s")
    (f,) = _weighted_homogeneity(x * gx, s * gs, F, (0, 1), X_, S_, (False, True), 0.01)
    assert f.new == (X_**2 / S_,) and f.factor == S_ ** sympy.Rational(-1, 2)


def test_a_law_without_the_symmetry_gets_no_such_finding():
    st, _ = _run(lambda x, s: np.exp(-x**2 / (4 * s)) / np.sqrt(s) + 0.3 * s, {"x": (-2, 2), "s": (1, 9)})
    assert not any(f.kind == "homogeneous" for f in st.steps)
