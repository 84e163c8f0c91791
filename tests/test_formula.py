import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy
import torch
from sympy.parsing.sympy_parser import parse_expr

from kanstudio.core.constants import nice_values
from kanstudio.core.formula import build_formula, evaluate, make_symbols, network_expression
from kanstudio.core.model import KAN

ROOT = Path(__file__).resolve().parents[1]


def _rel(a, b):
    return np.abs(a - b).max() / (np.abs(b).max() + 1e-12)


def _data(n=300, lo=-1, hi=1, d=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(lo, hi, (n, d))
    return X, np.exp(np.sin(np.pi * X[:, 0]) + X[:, 1] ** 2)


@pytest.mark.parametrize("width", [[2, 3, 1], [2, (1, 1), 1], [2, (0, 1)]])
def test_formula_equals_network_before_rounding(width):
    X, y = _data()
    m = KAN(width=width, seed=0).fit(X, y, steps=5, lamb=1e-3)
    syms = make_symbols(["x", "y"])
    assert _rel(evaluate(network_expression(m.net, syms)[0], syms, X), m.predict(X)) < 1e-6  # splines only
    m.prune_edge(0, 1, 0)
    m.snap(0, 0, 0, "sin")
    m.snap(0, 1, 1 if m.net.dims[1] > 1 else 0, "x^2") if m.net.layers[0].mask[1, min(1, m.net.dims[1] - 1)] else None
    assert _rel(evaluate(network_expression(m.net, syms)[0], syms, X), m.predict(X)) < 1e-6  # mixed
    m.auto_symbolic(r2_threshold=0.0)
    e = network_expression(m.net, syms)[0]
    assert not any(getattr(f.func, "_imp_", None) for f in e.atoms(sympy.Function))  # fully symbolic now
    assert _rel(evaluate(e, syms, X), m.predict(X)) < 1e-6


def test_formula_with_normalised_inputs_matches():
    rng = np.random.default_rng(0)
    X = rng.uniform(1e5, 3e5, (200, 2))
    y = X[:, 0] / 1e5 + (X[:, 1] / 1e5) ** 2
    m = KAN(width=[2, 2, 1], seed=0).fit(X, y, steps=10)
    assert m.net.in_scale[0] != 1
    syms = make_symbols(["a", "b"])
    assert _rel(evaluate(network_expression(m.net, syms)[0], syms, X), m.predict(X)) < 1e-6


def test_exact_constants_recovered_and_rounding_guarded():
    rng = np.random.default_rng(1)
    X = rng.uniform(1, 5, (400, 2))
    y = X[:, 0] * X[:, 1] / (4 * np.pi)
    m = KAN(width=[2, (0, 1)], seed=0).fit(X, y, steps=20)
    m.auto_symbolic(r2_threshold=0.999, lib=["x", "x^2", "1/x", "sin"])
    m.fit(steps=10, update_grid=False)
    Xt = rng.uniform(1, 5, (400, 2))
    f = build_formula(m, Xt, Xt[:, 0] * Xt[:, 1] / (4 * np.pi))
    a, b = sympy.symbols("x0 x1")
    assert sympy.simplify(f.plain_expr() - a * b / (4 * sympy.pi)) == 0
    assert f.r2_test > 0.999999 and f.exact
    # a formula that is genuinely 3.1*x must not be rounded to 3*x: the held-out error forbids it
    X1 = rng.uniform(-1, 1, (300, 1))
    m1 = KAN(width=[1, 1], seed=0).fit(X1, 3.1 * X1[:, 0] + 0.5, steps=10)
    m1.snap(0, 0, 0, "x")
    f1 = build_formula(m1, X1, 3.1 * X1[:, 0] + 0.5)
    assert f1.r2_test > 0.999999
    assert sympy.Rational(31, 10) in f1.expr.atoms(sympy.Rational) or any(
        abs(float(c) - 3.1) < 1e-6 for c in f1.expr.atoms(sympy.Number))


def test_nice_values():
    assert 1 / (4 * sympy.pi) in nice_values(0.0796, rel=0.01)
    assert sympy.Integer(3) in nice_values(3.001)
    assert sympy.Rational(3, 2) in nice_values(1.5001)
    assert 2 * sympy.pi in nice_values(6.2832)
    assert nice_values(3.37, rel=1e-6) == []  # 37/11 is not within 1e-6


def test_clashing_column_names_and_exports():
    names = ["lambda", "E", "I", "S", "beta", "class"]
    rng = np.random.default_rng(0)
    X = rng.uniform(1, 2, (200, 6))
    y = X[:, 0] + 2 * X[:, 1] + 0.5 * X[:, 4]
    m = KAN(width=[6, 1], seed=0).fit(X, y, steps=5)
    m.feature_names_ = names
    m.auto_symbolic(r2_threshold=0.0, lib=["x", "0"])
    f = build_formula(m, X, y)
    assert {s.name for s in f.plain_expr().free_symbols} <= set(names)
    assert "E" in [s.name for s in f.plain_expr().free_symbols]  # the column, not Euler's number
    assert np.allclose(f.evaluate(X), y, atol=1e-6)
    tex = f.latex()
    assert "\\lambda" in tex and "\\beta" in tex
    doc = f.tex_document()
    assert doc.startswith("\\documentclass") and "\\end{document}" in doc and tex in doc
    ns = {}
    exec(compile(f.python_source("g"), "<formula>", "exec"), ns)  # our own generated source
    out = ns["g"](*[X[:, i] for i in range(6)])
    assert np.allclose(np.broadcast_to(out, (200,)), f.evaluate(X), atol=1e-9)
    js = f.to_json()
    assert json.loads(json.dumps(js))["r2_test"] > 0.999
    sig = next(l for l in f.python_source("g").splitlines() if l.startswith("def g("))
    assert sig == "def g(x0, E, I, S, beta, x5):"  # keywords become safe argument names


def test_python_export_of_unsnapped_network_interpolates():
    X, y = _data()
    m = KAN(width=[2, 2, 1], seed=0).fit(X, y, steps=10)
    f = build_formula(m, X, y)
    assert not f.exact
    ns = {}
    exec(compile(f.python_source(), "<formula>", "exec"), ns)
    assert np.abs(ns["formula"](X[:, 0], X[:, 1]) - m.predict(X)).max() < 0.05 * np.std(y)


def test_cli_fit_json(tmp_path):
    csv = ROOT / "assets" / "datasets" / "product.csv"
    out = subprocess.run([sys.executable, "-m", "kanstudio.cli", "fit", str(csv), "--target", "F", "--width", "2,1x",
                          "--format", "json", "--time-limit", "60", "--threads", "1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)
    for key in ("formula", "latex", "r2_test", "rmse_test", "network_rmse_test", "n_edges", "seconds"):
        assert key in obj
    m, a = sympy.symbols("m a")
    assert sympy.simplify(parse_expr(obj["formula"], local_dict={"m": m, "a": a}) - m * a) == 0
    assert obj["r2_test"] > 0.9999
    assert "validation RMSE" in out.stderr and "validation RMSE" not in out.stdout  # progress to stderr, the result alone to stdout


def test_cli_reports_bad_input(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,x\n")
    out = subprocess.run([sys.executable, "-m", "kanstudio.cli", "fit", str(bad), "--target", "b"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "error" in out.stderr and "Traceback" not in out.stderr


def test_model_formula_method_and_readme_example():
    from kanstudio import load_csv

    ds = load_csv(ROOT / "assets" / "datasets" / "kan_paper.csv", target="f")
    model = KAN(width=[2, 3, 1], seed=0).fit(ds, steps=5, lamb=1e-3)
    model.prune()
    model.auto_symbolic(r2_threshold=0.0)
    f = model.formula()
    assert f.exact and set(f.input_names) == {"x", "y"}
    assert np.isfinite(f.r2_test) and np.isfinite(f.network_r2_test)
    assert isinstance(f.latex(), str) and f.sympy_str()
