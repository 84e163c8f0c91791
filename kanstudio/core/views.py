"""A view of the data: new input columns and a target divisor, each an exact formula of the
original columns, so that a formula found in the view maps back to the original variables
without refitting anything.

``y = factor(x) * F(c_1(x), ..., c_m(x))``: the search fits F on the columns ``c_k`` and the
target ``y / factor``. The structure tests make views (``x - mu`` for a translation symmetry,
``v/c`` for a scale symmetry, a column dropped because the law ignores it, ``y / sigma**-1`` for
a homogeneous law), and so does dimensional analysis (every column a dimensionless group, the
factor the monomial that carries the target's units).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy


def _sym(name: str) -> sympy.Symbol:
    return sympy.Symbol(name)


def readable(expr: sympy.Expr) -> str:
    return str(expr).replace("**", "^")


def readable_factor(expr: sympy.Expr) -> str:
    """``readable`` for a factor written before ``* F(...)``: a sum gets parentheses."""
    s = readable(expr)
    return f"({s})" if isinstance(sympy.sympify(expr), sympy.Add) else s


@dataclass(frozen=True)
class View:
    base_names: tuple[str, ...]
    columns: tuple[sympy.Expr, ...]  # in plain Symbols named as base_names
    factor: sympy.Expr = sympy.Integer(1)
    notes: tuple[str, ...] = ()
    outer: str = ""  # "exp": y = factor * exp(F), the search fits log(y / factor)
    _cache: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __getstate__(self):  # compiled functions stay behind: a view travels to cluster workers
        d = dict(self.__dict__)
        d["_cache"] = {}
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)

    # ----------------------------------------------------------------- construction
    @classmethod
    def identity(cls, names) -> "View":
        names = tuple(names)
        return cls(names, tuple(_sym(n) for n in names))

    @property
    def is_identity(self) -> bool:
        return self.factor == 1 and not self.outer and self.columns == tuple(_sym(n) for n in self.base_names)

    @property
    def names(self) -> list[str]:
        """Column names as the search and the formula show them (``x - mu``, ``v/c``)."""
        out = []
        for c in self.columns:
            s = str(c)
            out.append(s if s not in out else f"{s}_{len(out)}")
        return out

    def symbols(self) -> list[sympy.Symbol]:
        return [_sym(n) for n in self.base_names]

    def replace(self, drop: list[int], new: list[sympy.Expr], note: str, factor: sympy.Expr = sympy.Integer(1)) -> "View":
        """A view without the columns ``drop``, with ``new`` (formulas of *this view's* columns)
        appended, and the target further divided by ``factor`` (a formula of this view's columns)."""
        sub = self._column_substitution()
        cols = [c for k, c in enumerate(self.columns) if k not in drop]
        cols += [sympy.simplify(sympy.sympify(e).xreplace(sub)) if sympy.count_ops(e) < 40 else sympy.sympify(e).xreplace(sub)
                 for e in new]
        fac = sympy.powsimp(self.factor * sympy.sympify(factor).xreplace(sub), force=True)
        return View(self.base_names, tuple(cols), fac, self.notes + (note,), self.outer)

    def with_outer(self, outer: str, note: str) -> "View":
        return View(self.base_names, self.columns, self.factor, self.notes + (note,), outer)

    def column_symbols(self) -> list[sympy.Symbol]:
        """Placeholder symbols for this view's columns (their names are the column texts)."""
        return [sympy.Symbol(f"_c{k}") for k in range(len(self.columns))]

    def _column_substitution(self) -> dict:
        return dict(zip(self.column_symbols(), self.columns))

    # ----------------------------------------------------------------- numbers
    def _fn(self, key: str, exprs):
        if key not in self._cache:
            self._cache[key] = sympy.lambdify(self.symbols(), list(exprs), modules=["numpy"], dummify=True)
        return self._cache[key]

    def transform(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        if self.is_identity:
            return X
        f = self._fn("columns", self.columns)
        cols = [np.ascontiguousarray(X[:, i]) for i in range(X.shape[1])]
        with np.errstate(all="ignore"):
            out = [np.broadcast_to(np.asarray(v, dtype=np.float64), (len(X),)) for v in f(*cols)]
        return np.column_stack(out) if out else np.zeros((len(X), 0))

    def factor_values(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        if self.factor == 1:
            return np.ones(len(X))
        f = self._fn("factor", [self.factor])
        with np.errstate(all="ignore"):
            return np.broadcast_to(np.asarray(f(*[X[:, i] for i in range(X.shape[1])])[0], dtype=np.float64), (len(X),)).copy()

    def target(self, X, y) -> np.ndarray:
        t = np.asarray(y, dtype=np.float64).reshape(-1) / self.factor_values(X)
        if self.outer == "exp":
            with np.errstate(all="ignore"):
                t = np.log(t)
        return t

    def target_valid(self, X, y) -> bool:
        with np.errstate(all="ignore"):
            return bool(np.isfinite(self.target(X, y)).all())

    def valid_on(self, X) -> bool:
        """Every column and the factor finite on ``X``, the factor nowhere 0."""
        with np.errstate(all="ignore"):
            c, f = self.transform(X), self.factor_values(X)
        return bool(np.isfinite(c).all() and np.isfinite(f).all() and (f != 0).all())

    def jacobian(self, X) -> np.ndarray:
        """d c_k / d x_i at the rows of ``X``: ``(n, m, d)``."""
        X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        syms = self.symbols()
        exprs = [sympy.diff(c, s) for c in self.columns for s in syms]
        f = self._fn("jacobian", exprs)
        with np.errstate(all="ignore"):
            vals = [np.broadcast_to(np.asarray(v, dtype=np.float64), (len(X),)) for v in f(*[X[:, i] for i in range(X.shape[1])])]
        return np.stack(vals, 1).reshape(len(X), len(self.columns), len(syms))

    def factor_gradient(self, X) -> np.ndarray:
        """d factor / d x_i at the rows of ``X``: ``(n, d)``."""
        X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        if self.factor == 1:
            return np.zeros_like(X)
        syms = self.symbols()
        f = self._fn("factor_grad", [sympy.diff(self.factor, s) for s in syms])
        with np.errstate(all="ignore"):
            vals = [np.broadcast_to(np.asarray(v, dtype=np.float64), (len(X),)) for v in f(*[X[:, i] for i in range(X.shape[1])])]
        return np.stack(vals, 1)

    def gradient_in_view(self, X, f_values, f_grad) -> np.ndarray:
        """The gradient of F (``y = factor * F(c)``) in this view's columns, from the value and
        gradient of y in the original columns, by the chain rule (least squares when the view
        has fewer columns than the data): ``grad_x y = F grad_x factor + factor J^T grad_c F``."""
        J = self.jacobian(X)  # (n, m, d)
        fac = self.factor_values(X)
        F = f_values / fac
        rhs = f_grad - F[:, None] * self.factor_gradient(X)  # (n, d)
        A = fac[:, None, None] * np.transpose(J, (0, 2, 1))  # (n, d, m)
        AtA = np.einsum("ndm,ndk->nmk", A, A)
        Atb = np.einsum("ndm,nd->nm", A, rhs)
        AtA = AtA + 1e-14 * np.trace(AtA, axis1=1, axis2=2)[:, None, None] * np.eye(A.shape[2])
        return np.linalg.solve(AtA, Atb[..., None])[..., 0]

    # ----------------------------------------------------------------- formulas
    def map_back(self, expr: sympy.Expr, column_symbols) -> sympy.Expr:
        """``factor * expr`` with the column symbols replaced by their formulas (plain symbols)."""
        if self.is_identity:
            return sympy.sympify(expr).xreplace({s: _sym(n) for s, n in zip(column_symbols, self.base_names)})
        out = sympy.sympify(expr).xreplace(dict(zip(column_symbols, self.columns)))
        if self.outer == "exp":
            out = sympy.exp(out)
        return self.factor * out

    def describe(self) -> str:
        if self.is_identity:
            return "the data as given"
        cols = ", ".join(readable(c) for c in self.columns)
        fac = "" if self.factor == 1 else f"{readable_factor(self.factor)} * "
        inner = f"F({cols})"
        return f"y = {fac}{'exp(' + inner + ')' if self.outer == 'exp' else inner}"
