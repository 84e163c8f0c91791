"""Physical units and Buckingham's π theorem: the search's dimensionless groups.

A unit text is parsed to a dimension, a vector of rational exponents over the SI base units
(m, kg, s, A, K, mol, cd). Scale prefixes (km, ms, µC) and scale units (g, eV, h, min) change a
quantity's size, not its dimension, so only the dimension is kept: the constants the fit finds
take care of the scale.

``reduce_units(names, target, units)`` writes ``target = prefactor(x) * F(π_1, ..., π_k)``, the
π_j dimensionless monomials of the inputs and ``prefactor`` the monomial that carries the
target's units (Buckingham). Of all choices of repeating variables it keeps the one with the
simplest exponents (integers before fractions, small before large), and one that is defined
on the data when the data are given (no fractional power of a column that takes negative values).
``check_dimensions(expr, dims)`` walks a formula and says where its units do not agree.
"""
from __future__ import annotations

import ast
import itertools
import json
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

BASE = ("m", "kg", "s", "A", "K", "mol", "cd")

__all__ = ["Dimension", "parse_unit", "parse_units", "reduce_units", "reductions", "Reduction", "check_dimensions",
           "DimensionError"]


class DimensionError(ValueError):
    """A unit that cannot be read, or a formula whose units do not agree."""


@dataclass(frozen=True)
class Dimension:
    exps: tuple[Fraction, ...]

    @classmethod
    def of(cls, **e) -> "Dimension":
        return cls(tuple(Fraction(e.get(b, 0)) for b in BASE))

    def __mul__(self, o: "Dimension") -> "Dimension":
        return Dimension(tuple(a + b for a, b in zip(self.exps, o.exps)))

    def __truediv__(self, o: "Dimension") -> "Dimension":
        return Dimension(tuple(a - b for a, b in zip(self.exps, o.exps)))

    def __pow__(self, p) -> "Dimension":
        p = p if isinstance(p, Fraction) else Fraction(p)  # a float exactly: sums of fitted powers must cancel
        return Dimension(tuple(a * p for a in self.exps))

    def close(self, o: "Dimension", tol: float = 1e-9) -> bool:
        """Equal up to float rounding of fitted exponents (``v**(2 - p) * c**p`` is ``(m/s)**2``)."""
        return all(abs(float(a - b)) <= tol for a, b in zip(self.exps, o.exps))

    @property
    def is_dimensionless(self) -> bool:
        return all(abs(float(e)) <= 1e-9 for e in self.exps)  # fitted float powers: see close()

    def __str__(self) -> str:
        parts = []
        for b, e in zip(BASE, self.exps):
            if e:
                parts.append(b if e == 1 else f"{b}^{e}" if e.denominator == 1 else f"{b}^({e})")
        return "*".join(parts) or "1"


_D = Dimension.of
DIMENSIONLESS = _D()
# derived SI units and common non-SI ones (only their dimension matters here)
_UNITS: dict[str, Dimension] = {
    "1": DIMENSIONLESS, "rad": DIMENSIONLESS, "sr": DIMENSIONLESS, "deg": DIMENSIONLESS,
    "m": _D(m=1), "g": _D(kg=1), "s": _D(s=1), "A": _D(A=1), "K": _D(K=1), "mol": _D(mol=1), "cd": _D(cd=1),
    "N": _D(kg=1, m=1, s=-2), "J": _D(kg=1, m=2, s=-2), "W": _D(kg=1, m=2, s=-3), "Pa": _D(kg=1, m=-1, s=-2),
    "C": _D(A=1, s=1), "V": _D(kg=1, m=2, s=-3, A=-1), "Ohm": _D(kg=1, m=2, s=-3, A=-2),
    "ohm": _D(kg=1, m=2, s=-3, A=-2), "Ω": _D(kg=1, m=2, s=-3, A=-2), "S": _D(kg=-1, m=-2, s=3, A=2),
    "F": _D(kg=-1, m=-2, s=4, A=2), "T": _D(kg=1, s=-2, A=-1), "Wb": _D(kg=1, m=2, s=-2, A=-1),
    "H": _D(kg=1, m=2, s=-2, A=-2), "Hz": _D(s=-1), "Bq": _D(s=-1), "Gy": _D(m=2, s=-2), "lm": _D(cd=1),
    "lx": _D(cd=1, m=-2), "eV": _D(kg=1, m=2, s=-2), "L": _D(m=3), "l": _D(m=3), "min": _D(s=1),
    "h": _D(s=1), "d": _D(s=1), "bar": _D(kg=1, m=-1, s=-2), "atm": _D(kg=1, m=-1, s=-2),
    "au": _D(m=1), "ly": _D(m=1), "pc": _D(m=1), "Da": _D(kg=1), "u": _D(kg=1), "cal": _D(kg=1, m=2, s=-2),
    "dimensionless": DIMENSIONLESS,
}
_PREFIXES = ("Y", "Z", "E", "P", "T", "G", "M", "k", "h", "da", "d", "c", "m", "u", "µ", "μ", "n", "p", "f", "a")


def _symbol(name: str) -> Dimension:
    if name in _UNITS:
        return _UNITS[name]
    for p in _PREFIXES:
        if name.startswith(p) and name[len(p):] in _UNITS and name[len(p):] not in ("1", "dimensionless"):
            return _UNITS[name[len(p):]]
    raise DimensionError(f"unknown unit {name!r} (known: SI base and derived units such as m, kg, s, A, K, N, "
                         f"J, W, C, V, T, Hz, with prefixes like k, m, µ; '1' for dimensionless)")


def _eval(node) -> Dimension | Fraction:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Name):
        return _symbol(node.id)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return Fraction(node.value).limit_denominator(1000)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval(node.operand)
        if isinstance(v, Dimension):
            raise DimensionError("a sign belongs to an exponent, not to a unit")
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        a, b = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            if isinstance(b, Dimension):
                raise DimensionError("an exponent must be a number")
            return a**b if isinstance(a, Dimension) else a**b
        if isinstance(a, Fraction) and isinstance(b, Fraction):
            return a * b if isinstance(node.op, ast.Mult) else a / b
        a = DIMENSIONLESS if isinstance(a, Fraction) else a  # "1/s": a plain number has no units
        b = DIMENSIONLESS if isinstance(b, Fraction) else b
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(node.op, ast.Div):
            return a / b
    raise DimensionError("only products, quotients and powers of units can be read")


def parse_unit(text: str) -> Dimension:
    """``"kg*m^2/s^2"``, ``"m/s"``, ``"C"``, ``"1"`` → a Dimension. Spaces multiply (``"N m"``)."""
    t = str(text).strip()
    if not t:
        raise DimensionError("an empty unit (write 1 for a dimensionless quantity)")
    t = t.replace("·", "*").replace("^", "**").replace("²", "**2").replace("³", "**3").replace("−", "-")
    t = re.sub(r"(?<=[\w)])\s+(?=[A-Za-zµμΩ(])", "*", t)  # "N m" -> "N*m"
    t = re.sub(r"(?<=[A-Za-zµμΩ)])(-?\d+)\b", r"**\1", t)  # "m2", "s-1" -> powers
    try:
        tree = ast.parse(t, mode="eval")
    except SyntaxError as e:
        raise DimensionError(f"cannot read the unit {text!r}") from e
    try:
        v = _eval(tree)
    except DimensionError as e:
        raise DimensionError(f"in the unit {text!r}: {e}") from None
    return DIMENSIONLESS if isinstance(v, Fraction) else v


def parse_units(spec) -> dict[str, str]:
    """Units as given by a user → ``{column: unit text}``.

    ``spec``: a mapping; a text ``"q=C, v=m/s, F=N"``; or the path of a JSON (``{"q": "C"}``) or
    TOML (``q = "C"``) file."""
    if spec is None:
        return {}
    if isinstance(spec, dict):
        return {str(k).strip(): str(v).strip() for k, v in spec.items()}
    s = str(spec).strip()
    p = Path(s)
    if "=" not in s and ":" not in s or (len(s) < 4096 and p.suffix.lower() in (".json", ".toml") and p.exists()):
        if not p.exists():
            raise DimensionError(f"no units file {s!r} (give a file, or name=unit pairs like q=C,v=m/s)")
        text = p.read_text()
        if p.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
            data = data.get("units", data)
        else:
            data = json.loads(text)
        if not isinstance(data, dict):
            raise DimensionError(f"{s}: expected a table of column = unit")
        return parse_units(data)
    out = {}
    for part in re.split(r"[,;]", s):
        if not part.strip():
            continue
        if "=" not in part:
            raise DimensionError(f"cannot read {part.strip()!r}: write name=unit, e.g. v=m/s")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


# ------------------------------------------------------------------ Buckingham π


@dataclass(frozen=True)
class Reduction:
    names: tuple[str, ...]
    target: str
    prefactor_exponents: tuple[Fraction, ...]  # target = prod x_i ** e_i  *  F(groups)
    groups: tuple[tuple[Fraction, ...], ...]  # each a dimensionless monomial's exponents
    dims: dict

    def _monomial(self, exps) -> str:
        num, den = [], []
        for n, e in zip(self.names, exps):
            if e == 0:
                continue
            a = abs(e)
            t = n if a == 1 else f"{n}**{a}" if a.denominator == 1 else f"{n}**({a})"
            (num if e > 0 else den).append(t)
        s = "*".join(num) or "1"
        if den:
            s += "/" + (den[0] if len(den) == 1 else "(" + "*".join(den) + ")")
        return s

    def group_symbols(self) -> list[str]:
        return [self._monomial(g) for g in self.groups]

    def prefactor(self) -> str:
        return self._monomial(self.prefactor_exponents)

    def describe(self) -> str:
        gs = ", ".join(self.group_symbols()) or "none"
        return (f"{self.target} = {self.prefactor()} * F({gs}): {len(self.groups)} dimensionless "
                f"group{'s' if len(self.groups) != 1 else ''} from {len(self.names)} variables")


def _rank(M: list[list[Fraction]]) -> int:
    import sympy

    return sympy.Matrix(M).rank() if M and M[0] else 0


def _solve(B, t):
    """Exact solution x of B x = t (B: rows = base units, columns = chosen variables), or None."""
    import sympy

    A = sympy.Matrix(B)
    b = sympy.Matrix(t)
    try:
        sol, params = A.gauss_jordan_solve(b)
    except ValueError:
        return None
    if params.shape[0]:
        sol = sol.subs({p: 0 for p in params})
    return tuple(Fraction(int(sympy.fraction(v)[0]), int(sympy.fraction(v)[1])) for v in sol)


def _cost(exps) -> tuple:
    frac = sum(1 for e in exps if e.denominator != 1)
    return (frac, sum(abs(e) for e in exps), sum(1 for e in exps if e))


def reduce_units(names, target: str, units, X=None) -> Reduction:
    """The Buckingham reduction of ``target = f(names...)`` given every column's units.

    ``units``: anything :func:`parse_units` reads; it must name every input and the target.
    ``X`` (optional, rows x inputs): the data, so that no group raises a column that takes
    negative values to a fractional power."""
    return reductions(names, target, units, X, k=1)[0]


def reductions(names, target: str, units, X=None, k: int = 2) -> list[Reduction]:
    """Up to ``k`` distinct Buckingham reductions, simplest first.

    The choice of repeating variables decides which groups the search sees: E = m c**2 F(v/c)
    and E = m v**2 F(c/v) are the same law, but only the first has a simple F. Units alone
    cannot tell which, so the search tries the simplest few."""
    names = tuple(names)
    u = parse_units(units)
    missing = [n for n in (*names, target) if n not in u]
    if missing:
        raise DimensionError(f"units missing for {', '.join(missing)} (every input and the target need one)")
    unknown = [k_ for k_ in u if k_ not in names and k_ != target]
    if unknown:
        raise DimensionError(f"units given for {', '.join(unknown)}, which is not a column in use")
    dims = {k_: parse_unit(u[k_]) for k_ in (*names, target)}
    n = len(names)
    D = [[dims[nm].exps[r] for nm in names] for r in range(len(BASE))]
    t = [dims[target].exps[r] for r in range(len(BASE))]
    r = _rank(D)
    negative = np.zeros(n, dtype=bool)
    if X is not None:
        X = np.asarray(X, dtype=np.float64).reshape(-1, n)
        negative = (X <= 0).any(axis=0)
    if r == 0:
        if any(t):
            raise DimensionError(f"{target} has units {u[target]} but every input is dimensionless")
        return [Reduction(names, target, tuple(Fraction(0) for _ in names),
                          tuple(tuple(Fraction(int(i == j)) for i in range(n)) for j in range(n)), dims)]
    found: dict = {}
    for rep in itertools.combinations(range(n), r):
        B = [[D[row][j] for j in rep] for row in range(len(BASE))]
        if _rank(B) < r:
            continue
        pre_r = _solve(B, t)
        if pre_r is None:
            raise DimensionError(f"the units of {target} ({u[target]}) cannot be made from the inputs' units: "
                                 f"no law of these columns can have them")
        pre = [Fraction(0)] * n
        for j, e in zip(rep, pre_r):
            pre[j] = e
        groups = []
        for j in range(n):
            if j in rep:
                continue
            sol = _solve(B, [D[row][j] for row in range(len(BASE))])
            g = [Fraction(0)] * n
            g[j] = Fraction(1)
            for jj, e in zip(rep, sol):
                g[jj] -= e
            # a group with fractional exponents is as good raised to a power: x**(1/2)*y -> x*y**2
            den = 1
            for e in g:
                den = den * e.denominator // int(np.gcd(den, e.denominator))
            g = [e * den for e in g]
            if g[j] < 0:
                g = [-e for e in g]
            groups.append(tuple(g))
        allx = [pre] + groups
        if any(negative[i] and e.denominator != 1 for v in allx for i, e in enumerate(v)):
            continue
        key = (tuple(pre), tuple(sorted(groups)))
        cost = tuple(map(sum, zip(*[_cost(v) for v in allx])))
        if key not in found or cost < found[key][0]:
            found[key] = (cost, rep, tuple(pre), tuple(groups))
    if not found:
        raise DimensionError("no choice of dimensionless groups is defined on the data "
                             "(fractional powers of columns with negative values)")
    ranked = sorted(found.values(), key=lambda c: (c[0], c[1]))
    return [Reduction(names, target, pre, groups, dims) for _, _, pre, groups in ranked[:k]]


# ------------------------------------------------------------------ consistency of a formula


def check_dimensions(expr, dims: dict, target_dim: Dimension | None = None) -> Dimension:
    """The dimension of a SymPy formula whose symbols have the given dimensions.

    ``dims``: ``{symbol name: Dimension or unit text}``. Raises :class:`DimensionError` naming
    the first term where the units disagree: a sum of unlike terms, a function (exp, sin, log …)
    of a quantity with units, a power with a dimensioned exponent, or (with ``target_dim``) a
    result that does not have the target's units."""
    import sympy

    D = {k: (v if isinstance(v, Dimension) else parse_unit(v)) for k, v in dims.items()}

    def walk(e) -> Dimension:
        if e.is_Number or e in (sympy.pi, sympy.E):
            return DIMENSIONLESS
        if e.is_Symbol:
            if e.name not in D:
                raise DimensionError(f"no units for {e.name}")
            return D[e.name]
        if e.is_Mul:
            out = DIMENSIONLESS
            for a in e.args:
                out = out * walk(a)
            return out
        if e.is_Add:
            ds = [walk(a) for a in e.args]
            for a, d in zip(e.args[1:], ds[1:]):
                if not d.close(ds[0]):
                    raise DimensionError(f"adds {e.args[0]} [{ds[0]}] and {a} [{d}]")
            return ds[0]
        if e.is_Pow:
            b, p = e.args
            if not walk(p).is_dimensionless:
                raise DimensionError(f"exponent with units in {e}")
            db = walk(b)
            if db.is_dimensionless:
                return DIMENSIONLESS
            if not p.is_number:
                raise DimensionError(f"{b} [{db}] raised to a non-constant power")
            return db ** Fraction(int(p.p), int(p.q)) if p.is_Rational else db ** float(p)
        if isinstance(e, sympy.Abs):
            return walk(e.args[0])
        if isinstance(e, sympy.Function) or e.is_Function:
            for a in e.args:
                if not walk(a).is_dimensionless:
                    raise DimensionError(f"{type(e).__name__} of {a}, which has units [{walk(a)}]")
            return DIMENSIONLESS
        raise DimensionError(f"cannot tell the units of {e}")

    expr = sympy.sympify(expr)
    if expr.is_zero:  # 0 has every unit
        return target_dim if target_dim is not None else DIMENSIONLESS
    d = walk(expr)
    if target_dim is not None and not d.close(target_dim):
        raise DimensionError(f"the formula has units [{d}], the target [{target_dim}]")
    return d
