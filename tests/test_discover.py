import numpy as np
import sympy

from kanstudio.core.discover import DiscoverConfig, discover, shapes


def _law(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(1, 5, (n, 2))
    return X, 1.5 * X[:, 0] * X[:, 1]


def test_discovers_product_law_exactly_and_deterministically():
    X, y = _law()
    Xt, yt = _law(seed=1)
    d1 = discover(X, y, ["pr", "V"], "E", Xt, yt, DiscoverConfig(seed=0))
    pr, V = sympy.symbols("pr V")
    assert sympy.simplify(d1.formula.plain_expr() - sympy.Rational(3, 2) * pr * V) == 0
    assert d1.formula.r2_test > 0.999999 and d1.formula.exact
    assert d1.pareto() and d1.pareto()[0].complexity <= d1.formula.complexity
    fixed = DiscoverConfig(seed=0, width=[2, (0, 1)])
    d2 = discover(X, y, ["pr", "V"], "E", Xt, yt, fixed)
    d3 = discover(X, y, ["pr", "V"], "E", Xt, yt, fixed)
    assert d2.formula.sympy_str() == d3.formula.sympy_str() == d1.formula.sympy_str()


def test_given_width_skips_the_search_and_shapes_are_sane():
    X, y = _law(300)
    d = discover(X, y, config=DiscoverConfig(width=[2, (0, 1)], steps=20))
    assert [a.width for a in d.attempts] == ["2,1x"]
    assert shapes(1) == [[1, 1], [1, 1, 1], [1, 3, 1]]
    assert [2, (0, 1)] in shapes(2) and [3, 2, (0, 1)] in shapes(3)
