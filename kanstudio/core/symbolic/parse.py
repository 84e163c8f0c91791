"""User candidates from expression strings such as ``"x*exp(-x)"`` or ``"1/(1+x^2)"``.

The text never reaches ``eval``: it is parsed by :mod:`ast`, every node is checked against a
whitelist (numbers, ``x``, ``pi``, ``e``, ``+ - * / ** ^``, unary signs, calls to the functions
in :data:`ALLOWED_FUNCTIONS`), and a SymPy expression is built from the checked tree. The torch
and numpy views are small interpreters over that SymPy tree, so the formula the user sees and
the numbers the network computes cannot disagree. The torch view guards every singular
operation the same way the built-in library does (see :mod:`.library`); ``valid(u)`` is exactly
"no guard was needed and the value is finite".
"""
from __future__ import annotations

import ast

import numpy as np
import sympy
import torch

from .library import _GRAD_EPS, EPS, EXP_MAX, SymbolicFunction, _away_from_zero, _exact_value_safe_grad

__all__ = ["parse_function", "ALLOWED_FUNCTIONS", "MAX_LENGTH"]

MAX_LENGTH = 200
MAX_EXPONENT = 16  # 9**9**9 would make sympy compute a 370-million-digit integer
MAX_NUMBER = 1e15

X = sympy.Symbol("x", real=True)

ALLOWED_FUNCTIONS = {
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan,
    "exp": sympy.exp, "log": sympy.log, "ln": sympy.log, "sqrt": sympy.sqrt,
    "abs": sympy.Abs, "sign": sympy.sign, "sgn": sympy.sign,
    "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh,
    "arcsin": sympy.asin, "asin": sympy.asin, "arccos": sympy.acos, "acos": sympy.acos,
    "arctan": sympy.atan, "atan": sympy.atan, "arctanh": sympy.atanh, "atanh": sympy.atanh,
    "sigmoid": lambda z: 1 / (1 + sympy.exp(-z)),
    "gaussian": lambda z: sympy.exp(-(z**2)),
}
_CONSTANTS = {"pi": sympy.pi, "e": sympy.E}
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_OP_SYMBOL = {ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|",
              ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>"}
_FORBIDDEN = {
    ast.Attribute: "attribute access is not allowed",
    ast.Subscript: "indexing/subscripts are not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.Compare: "comparisons are not allowed",
    ast.BoolOp: "boolean operators are not allowed",
    ast.IfExp: "conditional expressions are not allowed",
    ast.NamedExpr: "assignments are not allowed",
}


def _allowed_list() -> str:
    return ", ".join(sorted(ALLOWED_FUNCTIONS))


class _Builder:
    """Checked ``ast`` -> SymPy; counts nodes for the default complexity."""

    def __init__(self):
        self.nodes = 0
        self.uses_x = False

    def build(self, node: ast.AST) -> sympy.Expr:
        self.nodes += 1
        for kind, msg in _FORBIDDEN.items():
            if isinstance(node, kind):
                raise ValueError(msg)
        if isinstance(node, ast.Constant):
            return self._number(node.value)
        if isinstance(node, ast.Name):
            if node.id == "x":
                self.uses_x = True
                return X
            if node.id in _CONSTANTS:
                return _CONSTANTS[node.id]
            raise ValueError(f"unknown name {node.id!r}; the variable must be x (constants: pi, e)")
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return -self.build(node.operand)
            if isinstance(node.op, ast.UAdd):
                return self.build(node.operand)
            raise ValueError(f"unary operator {type(node.op).__name__} is not allowed")
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _BINOPS:
                sym = _OP_SYMBOL.get(type(node.op), type(node.op).__name__)
                raise ValueError(f"operator {sym!r} is not allowed; use + - * / ^")
            left, right = self.build(node.left), self.build(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if isinstance(node.op, ast.Div):
                return left / right
            if right.is_number and abs(complex(right)) > MAX_EXPONENT:
                raise ValueError(f"exponent {right} is too large (at most {MAX_EXPONENT} in magnitude)")
            return left**right
        if isinstance(node, ast.Call):
            return self._call(node)
        raise ValueError(f"{type(node).__name__} is not allowed; use numbers, x, pi, e, "
                         f"+ - * / ^ and the functions {_allowed_list()}")

    def _number(self, value) -> sympy.Expr:
        if isinstance(value, str | bytes):
            raise ValueError("string literals are not allowed")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"only real numbers are allowed, got {value!r}")
        if not np.isfinite(float(value)) or abs(value) > MAX_NUMBER:
            raise ValueError(f"number {value!r} is out of range (at most {MAX_NUMBER:g} in magnitude)")
        if isinstance(value, int):
            return sympy.Integer(value)
        return sympy.Rational(repr(value))  # '0.1' -> 1/10 exactly, as the user wrote it

    def _call(self, node: ast.Call) -> sympy.Expr:
        if not isinstance(node.func, ast.Name):
            self.build(node.func)  # names the offence (attribute, lambda, ...) when there is one
            raise ValueError("only calls to whitelisted functions by name are allowed")
        name = node.func.id
        if name not in ALLOWED_FUNCTIONS:
            raise ValueError(f"unknown function {name!r}; allowed: {_allowed_list()}")
        if node.keywords:
            raise ValueError(f"keyword arguments are not allowed in {name}()")
        if len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
            raise ValueError(f"function {name!r} takes exactly one argument")
        return ALLOWED_FUNCTIONS[name](self.build(node.args[0]))


# ---------------------------------------------------------------------------------------------
# interpreters over the SymPy tree


class _TorchEval:
    """Safe torch evaluation of a SymPy tree in ``x``; ``ok`` collects where no guard fired."""

    def __init__(self, u: torch.Tensor, want_mask: bool):
        self.u = u
        self.want_mask = want_mask
        self.ok = None

    def _need(self, mask: torch.Tensor) -> None:
        if self.want_mask:
            self.ok = mask if self.ok is None else self.ok & mask

    def __call__(self, e: sympy.Expr):
        if e == X:
            return self.u
        if e.is_number:
            return float(e)
        if isinstance(e, sympy.Add):
            out = self(e.args[0])
            for a in e.args[1:]:
                out = out + self(a)
            return out
        if isinstance(e, sympy.Mul):
            out = self(e.args[0])
            for a in e.args[1:]:
                out = out * self(a)
            return out
        if isinstance(e, sympy.Pow):
            return self._pow(e.base, e.exp)
        fn = type(e)
        z = self(e.args[0])
        if not torch.is_tensor(z):
            z = torch.full_like(self.u, z)
        if fn is sympy.exp:
            self._need(z <= EXP_MAX)
            return torch.exp(z.clamp(max=EXP_MAX))
        if fn is sympy.log:
            self._need(z >= EPS)
            return torch.log(z.clamp(min=EPS))
        if fn is sympy.tan:
            c = torch.cos(z)
            self._need(c.abs() >= EPS)
            return torch.sin(z) / _away_from_zero(c)
        if fn in (sympy.asin, sympy.acos):
            self._need(z.abs() <= 1)
            f = torch.arcsin if fn is sympy.asin else torch.arccos
            return _exact_value_safe_grad(f, z, -1.0, 1.0, -1 + _GRAD_EPS, 1 - _GRAD_EPS)
        if fn is sympy.atanh:
            self._need(z.abs() <= 1 - EPS)
            return torch.arctanh(z.clamp(-1 + EPS, 1 - EPS))
        if fn in (sympy.sinh, sympy.cosh):
            self._need(z.abs() <= EXP_MAX)
            return (torch.sinh if fn is sympy.sinh else torch.cosh)(z.clamp(-EXP_MAX, EXP_MAX))
        plain = {sympy.sin: torch.sin, sympy.cos: torch.cos, sympy.tanh: torch.tanh,
                 sympy.atan: torch.arctan, sympy.Abs: torch.abs, sympy.sign: torch.sign}
        if fn in plain:
            return plain[fn](z)
        raise ValueError(f"unsupported operation {fn.__name__} in {e}")

    def _pow(self, base, exp):
        b = self(base)
        if exp.is_number:
            p = float(exp)
            if exp.is_integer:
                if p >= 0:
                    return b ** int(p)
                if torch.is_tensor(b):
                    self._need(b.abs() >= EPS)
                    return _away_from_zero(b) ** int(p)
                return b ** int(p)
            if not torch.is_tensor(b):
                return float(base) ** p
            if p > 0:  # x**(1/2), x**1.5: defined for b >= 0, slope infinite at 0 when p < 1
                self._need(b >= 0)
                return _exact_value_safe_grad(lambda t: t**p, b, 0.0, None, _GRAD_EPS, None)
            self._need(b >= EPS)
            return b.clamp(min=EPS) ** p
        # a power with x in the exponent: exp(exp * log(base)), base > 0
        q = self(exp)
        if torch.is_tensor(b):
            self._need(b >= EPS)
            logb = torch.log(b.clamp(min=EPS))
        else:
            if b <= 0:
                raise ValueError(f"{base}**(...) needs a positive base")
            logb = float(np.log(b))
        z = q * logb
        self._need(z <= EXP_MAX)
        return torch.exp(z.clamp(max=EXP_MAX))


_NP_FUNCS = {
    sympy.sin: np.sin, sympy.cos: np.cos, sympy.tan: np.tan, sympy.exp: np.exp, sympy.log: np.log,
    sympy.Abs: np.abs, sympy.sign: np.sign, sympy.sinh: np.sinh, sympy.cosh: np.cosh,
    sympy.tanh: np.tanh, sympy.asin: np.arcsin, sympy.acos: np.arccos, sympy.atan: np.arctan,
    sympy.atanh: np.arctanh,
}


def _eval_numpy(e: sympy.Expr, u: np.ndarray):
    """Exact numpy evaluation (NaN/inf outside the domain)."""
    if e == X:
        return u
    if e.is_number:
        return float(e)
    if isinstance(e, sympy.Add):
        return sum((_eval_numpy(a, u) for a in e.args[1:]), _eval_numpy(e.args[0], u))
    if isinstance(e, sympy.Mul):
        out = _eval_numpy(e.args[0], u)
        for a in e.args[1:]:
            out = out * _eval_numpy(a, u)
        return out
    if isinstance(e, sympy.Pow):
        b = np.asarray(_eval_numpy(e.base, u), dtype=float)
        if e.exp.is_number and e.exp.is_integer:
            return b ** int(e.exp)
        return np.power(b, _eval_numpy(e.exp, u))
    fn = type(e)
    if fn in _NP_FUNCS:
        return _NP_FUNCS[fn](_eval_numpy(e.args[0], u))
    raise ValueError(f"unsupported operation {fn.__name__} in {e}")


def _make_views(expr: sympy.Expr):
    def torch_fn(u: torch.Tensor) -> torch.Tensor:
        out = _TorchEval(u, want_mask=False)(expr)
        return out if torch.is_tensor(out) else torch.full_like(u, out)

    def valid(u: torch.Tensor) -> torch.Tensor:
        ev = _TorchEval(u, want_mask=True)
        out = ev(expr)
        mask = torch.isfinite(u)
        if torch.is_tensor(out):
            mask = mask & torch.isfinite(out)
        return mask if ev.ok is None else mask & ev.ok

    def numpy_fn(u):
        u = np.asarray(u, dtype=float)
        with np.errstate(all="ignore"):
            out = _eval_numpy(expr, u)
        return np.broadcast_to(np.asarray(out, dtype=float), u.shape).copy()

    def sympy_fn(u):
        return expr.xreplace({X: u})

    return torch_fn, sympy_fn, valid, numpy_fn


def parse_function(expr: str, name: str | None = None, complexity: int | None = None) -> SymbolicFunction:
    """A :class:`SymbolicFunction` from a one-variable expression in ``x``.

    ``^`` means power. ``name`` defaults to the expression text, ``complexity`` to the number of
    nodes in the expression (``sin(x)`` = 2, ``x^2`` = 3, ``x*exp(-x)`` = 5).
    Raises ``ValueError`` saying what is wrong for anything outside the whitelist.
    """
    if not isinstance(expr, str):
        raise ValueError(f"expression must be a string, got {type(expr).__name__}")
    text = " ".join(expr.split())
    if not text:
        raise ValueError("expression is empty; write a function of x such as 'x*exp(-x)'")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"expression is too long ({len(text)} characters; at most {MAX_LENGTH})")
    try:
        tree = ast.parse(text.replace("^", "**"), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        raise ValueError(f"could not parse {text!r}: {getattr(err, 'msg', err)}") from None

    builder = _Builder()
    try:
        sym = builder.build(tree.body)
    except RecursionError:
        raise ValueError(f"expression {text!r} is nested too deeply") from None
    if not builder.uses_x:
        raise ValueError(f"expression must use the variable x: {text!r}")
    bad = [s for s in (sympy.zoo, sympy.oo, sympy.nan, sympy.I) if sym.has(s)]
    if bad:
        raise ValueError(f"expression {text!r} is not a finite real function (contains {bad[0]})")
    if X not in sym.free_symbols:
        raise ValueError(f"expression must use the variable x ({text!r} simplifies to {sym})")

    torch_fn, sympy_fn, valid, numpy_fn = _make_views(sym)
    probe = torch.linspace(-2.0, 2.0, 9, dtype=torch.float64)
    torch_fn(probe), valid(probe), numpy_fn(probe.numpy())  # surfaces unsupported nodes now

    if complexity is None:
        complexity = builder.nodes
    return SymbolicFunction(name=name or text, torch_fn=torch_fn, sympy_fn=sympy_fn,
                            complexity=int(complexity), valid=valid, numpy_fn=numpy_fn)
