"""The term search (sums of products of one-variable functions, of y or a transform of it):
exact on laws of that form, compiled into a network whose forward pass is its formula."""
import numpy as np
import pytest
import sympy

from kanstudio.core import term_search as T
from kanstudio.core.formula import build_formula


def _data(f, ranges, n=1000, seed=0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.uniform(lo, hi, n) for lo, hi in ranges])
    return X, f(*X.T)


LAWS = {
    "uniform acceleration": (lambda x0, v0, t, a: x0 + v0 * t + a * t**2 / 2, [(1, 5)] * 4, "x0 v0 t a",
                             "x0 + v0*t + a*t**2/2", "y"),
    "Compton (in 1/y)": (lambda E, m, c, th: E / (1 + E / (m * c**2) * (1 - np.cos(th))), [(1, 3)] * 4, "E m c th",
                         "E/(1 + E/(m*c**2)*(1 - cos(th)))", "1/y"),
    "relativistic mass (in 1/y^2)": (lambda m, v, c: m / np.sqrt(1 - v**2 / c**2), [(1, 5), (1, 2), (3, 10)], "m v c",
                                     "m/sqrt(1 - v**2/c**2)", "1/y^2"),
    "Bohr energy, negative (in log -y)": (lambda m, q, h, n: -m * q**4 / (h**2 * n**2), [(1, 5)] * 4, "m q h n",
                                          "-m*q**4/(h**2*n**2)", "log -y"),
    "Gaussian beam (in log y)": (lambda I, r, w: I * np.exp(-2 * r**2 / w**2), [(1, 3), (0, 2), (1, 2)], "I r w",
                                 "I*exp(-2*r**2/w**2)", "log y"),
}


@pytest.mark.parametrize("name", list(LAWS))
def test_laws_of_its_form_come_back_exactly_and_the_network_is_the_formula(name):
    f, ranges, names, truth, transform = LAWS[name]
    names = names.split()
    X, y = _data(f, ranges)
    fits = T.search(X[:800], y[:800], X[800:], y[800:])
    best = fits[0]
    assert best.transform == transform
    assert best.val_rmse < 1e-9 * np.std(y)
    _assert_exact_and_network_is_formula(best, X, y, f, ranges, names, truth, rtol=1e-9)


def _assert_exact_and_network_is_formula(fit, X, y, f, ranges, names, truth, rtol):
    m = T.compile_model(fit, X[:800], y[:800], names, "y")
    form = build_formula(m, X[800:], y[800:])
    syms = {n: sympy.Symbol(n, positive=True) for n in names}
    diff = sympy.simplify(form.expr.xreplace({s: syms[s.name] for s in form.expr.free_symbols})
                          - sympy.sympify(truth, locals=syms))
    assert diff == 0, form.sympy_str()
    # forward pass == exported formula, on rows neither saw
    Xn, _ = _data(f, ranges, 300, seed=5)
    np.testing.assert_allclose(m.predict(Xn), form.evaluate(Xn), rtol=rtol, atol=1e-3 * rtol)


def test_a_law_outside_its_form_is_not_fitted_exactly():
    X, y = _data(lambda a, b: np.sin(a * b) / (1 + a), [(0.5, 3), (0.5, 3)])
    fits = T.search(X[:800], y[:800], X[800:], y[800:])
    assert all(fit.val_rmse > 1e-4 * np.std(y) for fit in fits)


def test_deterministic():
    f, ranges, *_ = LAWS["Compton (in 1/y)"]
    X, y = _data(f, ranges)
    a = T.search(X[:800], y[:800], X[800:], y[800:])
    b = T.search(X[:800], y[:800], X[800:], y[800:])
    assert a == b


def test_nested_dictionaries_find_a_sum_of_logs_a_product_would_mimic():
    """log(-y) of a five-variable power product is a sum of five logs; in the full dictionary a
    product of three columns correlates better with it than any one log."""
    X, y = _data(lambda m, q, h, n, e: -m * q**4 / (e**2 * h**2 * n**2), [(1, 5)] * 5)
    best = T.search(X[:800], y[:800], X[800:], y[800:])[0]
    assert best.transform == "log -y" and sorted(best.terms) == [((i, T.PRIMITIVES.index(("log", 1, 2))),) for i in range(5)]


RATIOS = {
    "velocity addition": (lambda u, v, c: (u + v) / (1 + u * v / c**2), [(1, 5), (1, 5), (3, 10)], "u v c",
                          "(u + v)/(1 + u*v/c**2)", "y"),
    "relativistic Doppler (in y^2)": (lambda f, v, c: f * np.sqrt((1 + v / c) / (1 - v / c)), [(1, 5), (1, 2), (3, 10)],
                                      "f v c", "f*sqrt((1 + v/c)/(1 - v/c))", "y^2"),
    "Kepler orbit": (lambda d, a, t1, t2: d * (1 - a**2) / (1 + a * np.cos(t1 - t2)), [(1, 3), (0, 0.9), (0, 6), (0, 6)],
                     "d a t1 t2", "d*(1 - a**2)/(1 + a*cos(t1 - t2))", "y"),
}


@pytest.mark.parametrize("name", list(RATIOS))
def test_ratios_of_sums_come_back_exactly_and_the_network_is_the_formula(name):
    f, ranges, names, truth, transform = RATIOS[name]
    names = names.split()
    X, y = _data(f, ranges)
    best = T.search(X[:800], y[:800], X[800:], y[800:])[0]
    assert (best.transform, bool(best.den_terms)) == (transform, True)
    assert best.val_rmse < 1e-7 * np.std(y)
    # the network keeps the fitted weights, the formula their exact values: equal to 1e-6
    _assert_exact_and_network_is_formula(best, X, y, f, ranges, names, truth, rtol=1e-6)


def test_a_ratio_has_no_pole_on_the_data():
    X, y = _data(lambda a, b: np.sin(a * b) / (1 + a), [(0.5, 3), (0.5, 3)])
    for fit in T.search(X[:800], y[:800], X[800:], y[800:]):
        if fit.den_terms:
            Q = 1 + T.dictionary_like(X, fit.den_terms) @ np.asarray(fit.den_weights)
            assert np.all(Q > 0) or np.all(Q < 0)
