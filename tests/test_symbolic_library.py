"""The candidate library and user expressions: four views of each function agree, training-safe."""
import math

import numpy as np
import pytest
import sympy
import torch

from kanstudio.core.symbolic import (
    LIBRARY,
    SymbolicFunction,
    default_names,
    get_function,
    parse_function,
    register_function,
    unregister_function,
)

EXPECTED = ["x", "x^2", "x^3", "x^4", "x^5", "1/x", "1/x^2", "1/x^3", "sqrt", "1/sqrt", "x^1.5",
            "exp", "log", "sin", "cos", "tan", "tanh", "abs", "sgn", "arcsin", "arccos", "arctan",
            "arctanh", "gaussian", "sigmoid", "0"]
U = sympy.Symbol("u", real=True)
HARD_INPUTS = [0.0, -0.0, 1e-12, -1e-12, 1e-4, -1e-4, 1e-3, 0.5, -0.5, 1.0, -1.0, 1.0 - 1e-9,
               -1.0 + 1e-9, 1.5, -1.5, math.pi / 2, -math.pi / 2, 3.0, -7.0, 90.0, -90.0, 1e3, -1e3,
               1e4, -1e4]


def _lambdified(fn: SymbolicFunction):
    f = sympy.lambdify(U, fn.sympy_fn(U), modules="numpy")
    return lambda u: np.broadcast_to(np.asarray(f(u), dtype=float), u.shape)


def _probe_points() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.concatenate([rng.uniform(-6, 6, 400), rng.uniform(-1, 1, 200), np.array(HARD_INPUTS[:19])])


def test_library_has_the_26_defaults_in_order():
    assert list(LIBRARY)[:26] == EXPECTED
    assert default_names() == list(LIBRARY)
    for name, fn in LIBRARY.items():
        assert fn.name == name
        assert isinstance(fn.complexity, int) and fn.complexity >= 0
    assert LIBRARY["0"].complexity == 0 and LIBRARY["x"].complexity == 1
    assert LIBRARY["x^2"].complexity == 2
    assert LIBRARY["arcsin"].complexity > LIBRARY["sin"].complexity


@pytest.mark.parametrize("name", EXPECTED)
def test_torch_numpy_sympy_agree_where_valid(name):
    fn = LIBRARY[name]
    u = _probe_points()
    ok = fn.valid(torch.from_numpy(u)).numpy()
    assert ok.any(), "every function is valid somewhere on [-6, 6]"
    uv = u[ok]
    ref = _lambdified(fn)(uv)
    np.testing.assert_allclose(fn.numpy_fn(uv), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fn.torch_fn(torch.from_numpy(uv)).numpy(), ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", EXPECTED)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_torch_fn_finite_values_and_gradients_everywhere(name, dtype):
    u = torch.tensor(HARD_INPUTS, dtype=dtype, requires_grad=True)
    out = LIBRARY[name].torch_fn(u)
    assert out.shape == u.shape
    assert torch.isfinite(out).all(), out
    out.sum().backward()
    assert u.grad is not None and torch.isfinite(u.grad).all(), u.grad


def test_domain_masks():
    u = torch.tensor([-2.0, -1.0, -1e-4, 0.0, 1e-4, 0.5, 1.0, 2.0], dtype=torch.float64)
    mask = lambda name: LIBRARY[name].valid(u).tolist()
    assert mask("log") == [False, False, False, False, False, True, True, True]
    assert mask("sqrt") == [False, False, False, True, True, True, True, True]
    assert mask("1/x") == [True, True, False, False, False, True, True, True]
    assert mask("arcsin") == [False, True, True, True, True, True, True, False]
    assert mask("arctanh") == [False, False, True, True, True, True, False, False]
    assert all(mask("sin")) and all(mask("gaussian"))
    assert not LIBRARY["exp"].valid(torch.tensor([1000.0])).item()
    assert not LIBRARY["tan"].valid(torch.tensor([math.pi / 2], dtype=torch.float64)).item()
    # outside the domain numpy is exact (NaN), torch stays finite
    assert np.isnan(LIBRARY["log"].numpy_fn(np.array([-1.0])))[0]
    assert torch.isfinite(LIBRARY["log"].torch_fn(torch.tensor([-1.0]))).all()


def test_sympy_forms_are_exact():
    assert LIBRARY["x^1.5"].sympy_fn(U) == U ** sympy.Rational(3, 2)
    assert LIBRARY["1/x"].sympy_fn(U) == 1 / U
    assert LIBRARY["sin"].sympy_fn(U) == sympy.sin(U)
    assert LIBRARY["gaussian"].sympy_fn(U) == sympy.exp(-U**2)
    assert LIBRARY["0"].sympy_fn(U) == 0


@pytest.mark.parametrize("alias,name", [("x2", "x^2"), ("x**2", "x^2"), ("X^2", "x^2"), ("sign", "sgn"),
                                        ("exp(-x^2)", "gaussian"), ("sin(x)", "sin"), ("1/x2", "1/x^2"),
                                        ("asin", "arcsin"), ("x^0.5", "sqrt"), ("1/sqrt(x)", "1/sqrt"),
                                        ("ln", "log"), ("zero", "0"), ("x", "x")])
def test_get_function_aliases(alias, name):
    assert get_function(alias) is LIBRARY[name]


def test_get_function_unknown_lists_valid_names():
    with pytest.raises(KeyError) as err:
        get_function("sinc")
    assert "sinc" in str(err.value) and "arctanh" in str(err.value) and "gaussian" in str(err.value)


def test_register_function_adds_and_replaces_without_touching_defaults():
    try:
        register_function(parse_function("x*exp(-x)", name="xexp"))
        assert get_function("xexp").name == "xexp"
        first = get_function("xexp")
        register_function(parse_function("x*exp(-2*x)", name="xexp"))
        assert get_function("xexp") is not first
        assert get_function("xexp").numpy_fn(np.array([1.0]))[0] == pytest.approx(math.exp(-2))
        assert "xexp" not in LIBRARY and "xexp" not in default_names()
        assert "xexp" in str(pytest.raises(KeyError, get_function, "nope").value)
    finally:
        unregister_function("xexp")
    with pytest.raises(KeyError):
        get_function("xexp")


# ---------------------------------------------------------------------------------------------
# user expressions

GOOD = {
    "x*exp(-x)": lambda u: u * np.exp(-u),
    "1/(1+x^2)": lambda u: 1 / (1 + u**2),
    "log(1+abs(x))": lambda u: np.log(1 + np.abs(u)),
    "sin(pi*x)^2 + e": lambda u: np.sin(np.pi * u) ** 2 + np.e,
    "-x**3 + 0.5*x": lambda u: -(u**3) + 0.5 * u,
    "sqrt(x)": np.sqrt,
    "tanh(2*x) - sigmoid(x)": lambda u: np.tanh(2 * u) - 1 / (1 + np.exp(-u)),
    "arcsin(x/2)": lambda u: np.arcsin(u / 2),
    "cosh(x) / (x - 1)": lambda u: np.cosh(u) / (u - 1),
    "2^x": lambda u: 2.0**u,
    "gaussian(x - 1)": lambda u: np.exp(-((u - 1) ** 2)),
}


@pytest.mark.parametrize("text", list(GOOD))
def test_parse_function_agrees_with_numpy(text):
    fn = parse_function(text)
    assert fn.name == text
    u = _probe_points()
    with np.errstate(all="ignore"):
        ref = GOOD[text](u)
    ok = fn.valid(torch.from_numpy(u)).numpy()
    assert ok.sum() > 50
    np.testing.assert_allclose(fn.numpy_fn(u)[ok], ref[ok], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fn.torch_fn(torch.from_numpy(u)).numpy()[ok], ref[ok], rtol=1e-9, atol=1e-12)
    lam = _lambdified(fn)
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(lam(u[ok]), ref[ok], rtol=1e-9, atol=1e-12)
    # where the exact function is finite and valid says no, a guard was needed (near a pole, say)
    assert np.isfinite(ref[ok]).all()


@pytest.mark.parametrize("text", ["1/x", "log(x)", "sqrt(x)", "x**x", "tan(x)", "1/(x-1)^2", "arccos(x)", "exp(x^2)"])
def test_parsed_torch_fn_is_training_safe(text):
    fn = parse_function(text)
    u = torch.tensor(HARD_INPUTS, dtype=torch.float64, requires_grad=True)
    out = fn.torch_fn(u)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(u.grad).all()


def test_parse_complexity_and_name():
    assert parse_function("sin(x)").complexity == 2
    assert parse_function("x^2").complexity == 3
    assert parse_function("x*exp(-x)").complexity == 5
    fn = parse_function("x*exp(-x)", name="decay", complexity=3)
    assert (fn.name, fn.complexity) == ("decay", 3)
    assert parse_function("0.1*x").sympy_fn(U) == U / 10  # decimals stay exact


@pytest.mark.parametrize("text,message", [
    ("__import__('os')", "unknown function '__import__'"),
    ("__import__('os').system('ls')", "attribute access is not allowed"),
    ("x.real", "attribute access is not allowed"),
    ("foo(x)", "unknown function 'foo'; allowed:"),
    ("x[0]", "subscripts are not allowed"),
    ("lambda: 1", "lambda is not allowed"),
    ("(lambda: x)()", "lambda is not allowed"),
    ("", "expression is empty"),
    ("   ", "expression is empty"),
    ("x+" * 150 + "x", "too long"),
    ("y + 1", "unknown name 'y'"),
    ("3", "must use the variable x"),
    ("x - x", "must use the variable x"),
    ("'x'", "string literals are not allowed"),
    ("x if x > 0 else 0", "not allowed"),
    ("x % 2", "operator '%' is not allowed"),
    ("9**9**9", "exponent"),
    ("x**100", "exponent"),
    ("sin(x, 2)", "exactly one argument"),
    ("sin(x=1)", "keyword arguments are not allowed"),
    ("1/0 + x", "not a finite real function"),
    ("x +* 2", "could not parse"),
    ("[x for x in ()]", "not allowed"),
    ("1e400 * x", "out of range"),
])
def test_parse_function_rejects_with_clear_message(text, message):
    with pytest.raises(ValueError) as err:
        parse_function(text)
    assert message in str(err.value)


def test_parse_function_rejects_non_strings():
    with pytest.raises(ValueError):
        parse_function(None)  # type: ignore[arg-type]
