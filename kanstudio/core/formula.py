"""The network as a formula: a SymPy expression built from the same objects the forward pass uses.

Every live edge contributes exactly what it computes: a snapped edge ``c*f(a*u+b)+d``, an
unsnapped edge an opaque function ``phi_l_i_j(u)`` whose numeric implementation is the edge's
own spline (so the formula evaluates to the network's output even before every edge is
symbolic). Pruned edges are absent; their means already sit in the node biases.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import sympy
import torch
from sympy.utilities.lambdify import implemented_function
from torch.nn import functional as F

from .network import KANNetwork
from .numeric import numeric_function
from .spline import bspline_basis
from .symbolic import get_function


def make_symbols(names: list[str], X: np.ndarray | None = None) -> list[sympy.Symbol]:
    """One real symbol per column, positive when every sample of that column is (helps
    simplification: log(x*y) = log(x) + log(y), sqrt(x**2) = x). Any string is a valid name,
    so 'lambda', 'E', 'I', 'beta' stay plain symbols instead of SymPy objects."""
    out = []
    for i, n in enumerate(names):
        positive = X is not None and len(X) and bool((X[:, i] > 0).all())
        out.append(sympy.Symbol(n, positive=True) if positive else sympy.Symbol(n, real=True))
    return out


def plain(expr: sympy.Expr) -> sympy.Expr:
    """The same expression over assumption-free symbols (what parse_expr produces)."""
    return expr.xreplace({s: sympy.Symbol(s.name) for s in expr.free_symbols})


def _num(v) -> sympy.Float:
    return sympy.Float(float(v))


def _spline_edge(layer, l: int, i: int, j: int):
    knots = layer.knots[i : i + 1].detach().double().cpu().clone()
    coef = layer.coef[i, j].detach().double().cpu().clone()
    wb, ws, k = float(layer.scale_base[i, j]), float(layer.scale_sp[i, j]), layer.k

    def phi(u):
        arr = np.asarray(u, dtype=np.float64)
        t = torch.as_tensor(arr.reshape(-1, 1))
        B = bspline_basis(t, knots, k)[:, 0]
        out = wb * F.silu(t[:, 0]) + ws * (B @ coef)
        return out.numpy().reshape(arr.shape)

    phi.domain = (float(knots[0, 0]), float(knots[0, -1]))
    return implemented_function(sympy.Function(f"phi_{l}_{i}_{j}"), phi)


@torch.no_grad()
def network_expression(net: KANNetwork, symbols: list[sympy.Symbol]) -> list[sympy.Expr]:
    """One expression per output node."""
    h = []
    for i, s in enumerate(symbols):
        shift, scale = float(net.in_shift[i]), float(net.in_scale[i])
        h.append(s if (shift == 0 and scale == 1) else (s - _num(shift)) * _num(scale))
    for l, layer in enumerate(net.layers):
        nxt = []
        for j in range(layer.n_out):
            terms = []
            for i in range(layer.n_in):
                if layer.mask[i, j] == 0:
                    continue
                name = layer.sym_names[i][j] if layer.sym_mask[i, j] else None
                if name is not None:
                    a, b, c, d = (float(v) for v in layer.sym_params[i, j])
                    fx = get_function(name).sympy_fn(_num(a) * h[i] + _num(b))
                    terms.append(_num(c) * fx + _num(d))
                else:
                    terms.append(_spline_edge(layer, l, i, j)(h[i]))
            node = sympy.Mul(*terms) if layer.is_prod(j) else sympy.Add(*terms)
            scale, bias = float(layer.node_scale[j]), float(layer.bias[j])
            if scale != 1.0:
                node = _num(scale) * node
            nxt.append(node + _num(bias) if bias != 0.0 else node)
        h = nxt
    outs = []
    for j, e in enumerate(h):
        shift, scale = float(net.out_shift[j]), float(net.out_scale[j])
        outs.append(e if (shift == 0 and scale == 1) else e * _num(scale) + _num(shift))
    return outs


def evaluate(expr: sympy.Expr, symbols: list[sympy.Symbol], X: np.ndarray) -> np.ndarray:
    """Numeric value of ``expr`` on the rows of ``X``. Arguments are dummified, so column names
    never reach generated code."""
    f = numeric_function(symbols, expr)
    with np.errstate(all="ignore"):
        out = np.asarray(f(*[np.ascontiguousarray(X[:, i]) for i in range(X.shape[1])]))
    if np.iscomplexobj(out):  # e.g. sqrt or log of a negative value: not a real prediction
        out = np.where(np.abs(out.imag) <= 1e-12 * (1 + np.abs(out.real)), out.real, np.nan)
    return np.broadcast_to(out.astype(np.float64), (X.shape[0],)).copy()


def complexity(expr: sympy.Expr) -> int:
    """Node count of the expression tree (a number, a symbol and each operation count 1)."""
    return sum(1 for _ in sympy.preorder_traversal(expr))


def is_exact(expr: sympy.Expr) -> bool:
    return not any(getattr(f.func, "_imp_", None) for f in expr.atoms(sympy.Function))


def r2_rmse(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    if len(y) == 0:
        return math.nan, math.nan
    if not np.isfinite(p).all():
        return -math.inf, math.inf
    res = float(((y - p) ** 2).sum())
    tot = float(((y - y.mean()) ** 2).sum())
    return (1 - res / tot if tot > 0 else (1.0 if res == 0 else -math.inf)), math.sqrt(res / len(y))


@dataclass(frozen=True)
class FormulaResult:
    """A formula for the target with its test-split figures next to the network's."""

    expr: sympy.Expr
    input_names: list[str]
    target_name: str
    complexity: int
    r2_test: float
    rmse_test: float
    network_r2_test: float
    network_rmse_test: float
    exact: bool
    symbols: list[sympy.Symbol] = field(default_factory=list)
    n_edges: int = 0

    def evaluate(self, X) -> np.ndarray:
        return evaluate(self.expr, self.symbols, np.asarray(X, dtype=np.float64).reshape(len(X), -1))

    def plain_expr(self) -> sympy.Expr:
        return plain(self.expr)

    def sympy_str(self) -> str:
        return str(self.plain_expr())

    def srepr(self) -> str:
        return sympy.srepr(self.plain_expr())

    def latex(self) -> str:
        from .export import to_latex

        return to_latex(self)

    def tex_document(self) -> str:
        from .export import to_tex_document

        return to_tex_document(self)

    def python_source(self, func_name: str = "formula") -> str:
        from .export import to_python

        return to_python(self, func_name)

    def to_json(self) -> dict:
        from .export import to_json

        return to_json(self)


def build_formula(model, X_test=None, y_test=None, *, simplify: bool = True,
                  exact_constants: bool = True, deadline: float | None = None) -> FormulaResult:
    """The model's formula, simplified and with exact constants where the held-out error allows.

    ``X_test, y_test`` default to the model's test split (or its training data when there is
    none). Simplification and rounding are accepted only when they keep the held-out error
    within tolerance (see :mod:`kanstudio.core.constants`); past ``deadline`` (a
    ``time.perf_counter()`` value) they stop where they are.
    """
    from .constants import tidy

    net: KANNetwork = model.net
    names = model.feature_names_ or [f"x{i}" for i in range(net.dims[0])]
    Xtr = model.X_train_.detach().cpu().numpy() if model.X_train_ is not None else None
    if X_test is None:
        if model.X_test_ is not None:
            X_test, y_test = model.X_test_.cpu().numpy(), model.y_test_.cpu().numpy()[:, 0]
        elif Xtr is not None:
            X_test, y_test = Xtr, model.y_train_.cpu().numpy()[:, 0]
    X_test = None if X_test is None else np.asarray(X_test, dtype=np.float64).reshape(len(X_test), -1)
    y_test = None if y_test is None else np.asarray(y_test, dtype=np.float64).reshape(-1)
    ref = np.concatenate([a for a in (Xtr, X_test) if a is not None]) if (Xtr is not None or X_test is not None) else None
    symbols = make_symbols(names, ref)
    expr = network_expression(net, symbols)[0]
    net_r2 = net_rmse = math.nan
    if X_test is not None and len(X_test):
        net_r2, net_rmse = r2_rmse(y_test, model.predict(X_test))
    if (simplify or exact_constants) and X_test is not None and len(X_test) and is_exact(expr):
        Xfit = Xtr if Xtr is not None else X_test
        yfit = model.y_train_.cpu().numpy()[:, 0] if Xtr is not None else y_test
        expr = tidy(expr, symbols, X_test, y_test, Xfit, yfit, simplify=simplify, exact_constants=exact_constants,
                    deadline=deadline)
    r2, rmse = (math.nan, math.nan)
    if X_test is not None and len(X_test):
        r2, rmse = r2_rmse(y_test, evaluate(expr, symbols, X_test))
    return FormulaResult(expr, list(names), model.target_name_, complexity(expr), r2, rmse, net_r2, net_rmse,
                         is_exact(expr), symbols, net.n_live_edges())


def pareto_front(model, X_test=None, y_test=None, weights=None) -> list[FormulaResult]:
    """Formulas from snapping at several complexity weights, Pareto-filtered (see :mod:`.pareto`)."""
    from .pareto import DEFAULT_WEIGHTS, pareto_front as _front

    return _front(model, X_test, y_test, weights or DEFAULT_WEIGHTS)
