"""User candidates from expression strings such as ``"x*exp(-x)"`` or ``"1/(1+x^2)"``.

The text never reaches ``eval``: it is parsed by :mod:`ast`, every node is checked against a
whitelist (numbers, ``x``, ``pi``, ``e``, ``+ - * / ** ^``, unary signs, calls to the functions
in :data:`ALLOWED_FUNCTIONS`), and a SymPy expression is built from the checked tree. The torch
and numpy views are that SymPy tree compiled once into closures, so the formula the user sees
and the numbers the network computes cannot disagree. The torch view guards every singular
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
# the SymPy tree compiled once into closures (the fit calls these hundreds of times)
#
# torch closures take (u, need): ``need`` is None, or a list that collects the masks of inputs
# where no guard fired; ``valid`` is their AND.


def _tensor(z, u):
    return z if torch.is_tensor(z) else torch.full_like(u, z)


def _guarded(fn, z, need, mask_fn):
    if need is not None:
        need.append(mask_fn(z))
    return fn(z)


_TORCH_GUARDED = {  # sympy function -> (guard mask, safe torch evaluation)
    sympy.exp: (lambda z: z <= EXP_MAX, lambda z: torch.exp(z.clamp(max=EXP_MAX))),
    sympy.log: (lambda z: z >= EPS, lambda z: torch.log(z.clamp(min=EPS))),
    sympy.tan: (lambda z: torch.cos(z).abs() >= EPS, lambda z: torch.sin(z) / _away_from_zero(torch.cos(z))),
    sympy.asin: (lambda z: z.abs() <= 1, lambda z: _exact_value_safe_grad(
        torch.arcsin, z, -1.0, 1.0, -1 + _GRAD_EPS, 1 - _GRAD_EPS)),
    sympy.acos: (lambda z: z.abs() <= 1, lambda z: _exact_value_safe_grad(
        torch.arccos, z, -1.0, 1.0, -1 + _GRAD_EPS, 1 - _GRAD_EPS)),
    sympy.atanh: (lambda z: z.abs() <= 1 - EPS, lambda z: torch.arctanh(z.clamp(-1 + EPS, 1 - EPS))),
    sympy.sinh: (lambda z: z.abs() <= EXP_MAX, lambda z: torch.sinh(z.clamp(-EXP_MAX, EXP_MAX))),
    sympy.cosh: (lambda z: z.abs() <= EXP_MAX, lambda z: torch.cosh(z.clamp(-EXP_MAX, EXP_MAX))),
}
_TORCH_PLAIN = {sympy.sin: torch.sin, sympy.cos: torch.cos, sympy.tanh: torch.tanh,
                sympy.atan: torch.arctan, sympy.Abs: torch.abs, sympy.sign: torch.sign}
_NP_FUNCS = {
    sympy.sin: np.sin, sympy.cos: np.cos, sympy.tan: np.tan, sympy.exp: np.exp, sympy.log: np.log,
    sympy.Abs: np.abs, sympy.sign: np.sign, sympy.sinh: np.sinh, sympy.cosh: np.cosh,
    sympy.tanh: np.tanh, sympy.asin: np.arcsin, sympy.acos: np.arccos, sympy.atan: np.arctan,
    sympy.atanh: np.arctanh,
}


def _fold(parts, op):
    def run(u, need):
        out = parts[0](u, need)
        for p in parts[1:]:
            out = op(out, p(u, need))
        return out

    return run


def _compile_torch(e: sympy.Expr):
    """Safe torch evaluation of a SymPy tree in ``x``, as a closure ``(u, need) -> value``."""
    if e == X:
        return lambda u, need: u
    if e.is_number:
        v = float(e)
        return lambda u, need: v
    if isinstance(e, sympy.Add):
        return _fold([_compile_torch(a) for a in e.args], lambda p, q: p + q)
    if isinstance(e, sympy.Mul):
        return _fold([_compile_torch(a) for a in e.args], lambda p, q: p * q)
    if isinstance(e, sympy.Pow):
        return _compile_pow(e.base, e.exp)
    fn = type(e)
    arg = _compile_torch(e.args[0])
    if fn in _TORCH_GUARDED:
        mask, safe = _TORCH_GUARDED[fn]
        return lambda u, need: _guarded(safe, _tensor(arg(u, need), u), need, mask)
    if fn in _TORCH_PLAIN:
        f = _TORCH_PLAIN[fn]
        return lambda u, need: f(_tensor(arg(u, need), u))
    raise ValueError(f"unsupported operation {fn.__name__} in {e}")


def _ipow(z: torch.Tensor, n: int) -> torch.Tensor:
    """``z ** n`` for an integer ``n >= 1`` by repeated squaring: torch's ``pow`` with an
    exponent other than 2 or 3 runs a general power, several times slower on the small
    tensors of the affine search; this agrees with it to rounding."""
    if n <= 3:
        return z**n
    half = _ipow(z, n // 2)
    sq = half * half
    return sq * z if n % 2 else sq


def _compile_pow(base, exp):
    b = _compile_torch(base)
    if exp.is_number and base.is_number:
        v = float(base**exp)
        return lambda u, need: v
    if exp.is_number:
        p = float(exp)
        if exp.is_integer and p >= 0:
            return lambda u, need: _ipow(b(u, need), int(p)) if int(p) else 1.0
        if exp.is_integer:  # a pole where the base is 0
            return lambda u, need: _guarded(lambda z: 1.0 / _ipow(_away_from_zero(z), -int(p)), b(u, need), need,
                                            lambda z: z.abs() >= EPS)
        if p > 0:  # x**(1/2), x**1.5: defined for b >= 0, slope infinite at 0 when p < 1
            safe = lambda z: _exact_value_safe_grad(lambda t: t**p, z, 0.0, None, _GRAD_EPS, None)
            return lambda u, need: _guarded(safe, b(u, need), need, lambda z: z >= 0)
        return lambda u, need: _guarded(lambda z: z.clamp(min=EPS) ** p, b(u, need), need, lambda z: z >= EPS)
    # x in the exponent: exp(exp * log(base)), base > 0
    q = _compile_torch(exp)
    if base.is_number:
        if not base.is_positive:
            raise ValueError(f"{base}**(...) needs a positive base")
        logb = float(sympy.log(base))
        return lambda u, need: _guarded(lambda z: torch.exp(z.clamp(max=EXP_MAX)), q(u, need) * logb, need,
                                        lambda z: z <= EXP_MAX)

    def run(u, need):
        z = b(u, need)
        if need is not None:
            need.append(z >= EPS)
        w = q(u, need) * torch.log(z.clamp(min=EPS))
        return _guarded(lambda t: torch.exp(t.clamp(max=EXP_MAX)), w, need, lambda t: t <= EXP_MAX)

    return run


def _compile_numpy(e: sympy.Expr):
    """Exact numpy evaluation (NaN/inf outside the domain), as a closure ``u -> value``."""
    if e == X:
        return lambda u: u
    if e.is_number:
        v = float(e)
        return lambda u: v
    if isinstance(e, (sympy.Add, sympy.Mul)):
        parts = [_compile_numpy(a) for a in e.args]
        op = (lambda p, q: p + q) if isinstance(e, sympy.Add) else (lambda p, q: p * q)

        def run(u):
            out = parts[0](u)
            for p in parts[1:]:
                out = op(out, p(u))
            return out

        return run
    if isinstance(e, sympy.Pow):
        b = _compile_numpy(e.base)
        if e.exp.is_number and e.exp.is_integer:
            n = int(e.exp)
            return lambda u: np.asarray(b(u), dtype=float) ** n
        q = _compile_numpy(e.exp)
        return lambda u: np.power(np.asarray(b(u), dtype=float), q(u))
    fn = type(e)
    if fn in _NP_FUNCS:
        f, arg = _NP_FUNCS[fn], _compile_numpy(e.args[0])
        return lambda u: f(arg(u))
    raise ValueError(f"unsupported operation {fn.__name__} in {e}")


def _make_views(expr: sympy.Expr):
    ev_torch, ev_numpy = _compile_torch(expr), _compile_numpy(expr)

    def torch_fn(u: torch.Tensor) -> torch.Tensor:
        return _tensor(ev_torch(u, None), u)

    def value_and_valid(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        need = []
        out = _tensor(ev_torch(u, need), u)
        mask = torch.isfinite(u) & torch.isfinite(out)
        for m in need:
            mask &= m
        return out, mask

    def valid(u: torch.Tensor) -> torch.Tensor:
        return value_and_valid(u)[1]

    # one evaluation for both views: the affine search needs the values and the mask of the
    # same arguments at every iteration (see batch.py)
    valid.with_value = value_and_valid

    def numpy_fn(u):
        u = np.asarray(u, dtype=float)
        with np.errstate(all="ignore"):
            out = ev_numpy(u)
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
    except ValueError:
        raise
    except RecursionError:
        raise ValueError(f"expression {text!r} is nested too deeply") from None
    except Exception as err:  # sympy refusing a combination is still the user's expression
        raise ValueError(f"could not build {text!r}: {err}") from None
    if not builder.uses_x:
        raise ValueError(f"expression must use the variable x: {text!r}")
    bad = [s for s in (sympy.zoo, sympy.oo, sympy.nan, sympy.I) if sym.has(s)]
    if bad:
        raise ValueError(f"expression {text!r} is not a finite real function (contains {bad[0]})")
    if X not in sym.free_symbols:
        raise ValueError(f"expression must use the variable x ({text!r} simplifies to {sym})")

    torch_fn, sympy_fn, valid, numpy_fn = _make_views(sym)
    probe = torch.linspace(-2.0, 2.0, 9, dtype=torch.float64)
    try:  # fail here, with the expression in the message, rather than inside a fit
        torch_fn(probe), valid(probe), numpy_fn(probe.numpy())
    except Exception as err:
        raise ValueError(f"cannot evaluate {text!r}: {err}") from None

    if complexity is None:
        complexity = builder.nodes
    return SymbolicFunction(name=name or text, torch_fn=torch_fn, sympy_fn=sympy_fn,
                            complexity=int(complexity), valid=valid, numpy_fn=numpy_fn)
