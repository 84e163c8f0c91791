"""SymPy expressions as NumPy closures: the same numbers as lambdify (to the last bit or two:
a sum may be added in another order), and lambdify's meaning where a node is not covered."""
import numpy as np
import pytest
import sympy

from kanstudio.core.numeric import numeric_function

x, y = sympy.symbols("x y")
EXPRS = [
    sympy.exp(sympy.sin(sympy.pi * x) + y**2),
    sympy.sqrt(x) / y,
    3 / (x * y**2),
    sympy.Rational(3, 2) * x ** sympy.Rational(3, 2) - y**3 / 7,
    sympy.Abs(x) ** 0.3,
    2**x,
    sympy.log(x * y) + sympy.atan(y),
    x / (1 - y**2),
    1 / sympy.sqrt(x) * y,
    sympy.Integer(3),
    sympy.tanh(x) - sympy.cosh(y) + sympy.asinh(x * y),
]


@pytest.mark.parametrize("expr", EXPRS, ids=str)
def test_same_values_as_lambdify(expr):
    X = np.random.default_rng(0).uniform(-2, 2, (500, 2))
    ref = sympy.lambdify([x, y], expr, modules=["numpy"])
    with np.errstate(all="ignore"):
        want = np.broadcast_to(np.asarray(ref(X[:, 0], X[:, 1]), dtype=float), (500,))
        got = np.broadcast_to(np.asarray(numeric_function([x, y], expr)(X[:, 0], X[:, 1]), dtype=float), (500,))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15, equal_nan=True)


def test_uncovered_nodes_fall_back_to_lambdify():
    expr = sympy.Max(x, y) + sympy.Piecewise((x, x > 0), (-x, True))
    f = numeric_function([x, y], expr)
    np.testing.assert_allclose(f(np.array([0.5, -2.0]), np.array([1.0, -3.0])), [1.5, 0.0])


def test_implemented_functions_call_their_implementation():
    from sympy.utilities.lambdify import implemented_function

    phi = implemented_function("phi", lambda u: 2 * u + 1)
    f = numeric_function([x, y], phi(x) * y)
    np.testing.assert_allclose(f(np.array([1.0, 2.0]), np.array([3.0, 4.0])), [9.0, 20.0])
