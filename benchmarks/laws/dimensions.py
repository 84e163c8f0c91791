"""A small, independent dimension checker for the suite's units (not kanstudio's own parser).

A dimension is a 7-vector of Fractions over the SI base units (m, kg, s, A, K, mol, cd). The unit
grammar is the strict subset of the one ``kanstudio.core.units`` accepts that has only one
reading under any precedence rule: ``1``, or factors ``SYM`` / ``SYM^k`` / ``SYM^(p/q)`` joined by
``*``, optionally followed by a single ``/ SYM[^k]`` (so never ``a/b*c``). Kept separate from the
package on purpose: the suite's units must not be checked by the code under test.
"""
from __future__ import annotations

import re
from fractions import Fraction

BASE = ("m", "kg", "s", "A", "K", "mol", "cd")


def _v(**e) -> tuple[Fraction, ...]:
    return tuple(Fraction(e.get(b, 0)) for b in BASE)


DIMLESS = _v()
UNITS: dict[str, tuple[Fraction, ...]] = {
    "1": DIMLESS, "rad": DIMLESS,
    "m": _v(m=1), "kg": _v(kg=1), "s": _v(s=1), "A": _v(A=1), "K": _v(K=1), "mol": _v(mol=1), "cd": _v(cd=1),
    "N": _v(kg=1, m=1, s=-2), "J": _v(kg=1, m=2, s=-2), "W": _v(kg=1, m=2, s=-3), "Pa": _v(kg=1, m=-1, s=-2),
    "C": _v(A=1, s=1), "V": _v(kg=1, m=2, s=-3, A=-1), "Ohm": _v(kg=1, m=2, s=-3, A=-2),
    "F": _v(kg=-1, m=-2, s=4, A=2), "T": _v(kg=1, s=-2, A=-1), "Wb": _v(kg=1, m=2, s=-2, A=-1),
    "H": _v(kg=1, m=2, s=-2, A=-2), "Hz": _v(s=-1),
}

_EXP = r"(?:-?\d+|\(-?\d+/\d+\))"
_FACTOR = rf"[A-Za-z]+(?:\^{_EXP})?"
UNIT_RE = re.compile(rf"^(?:1|{_FACTOR}(?:\*{_FACTOR})*)(?:/{_FACTOR})?$")


class DimensionError(ValueError):
    pass


def _add(a, b, k=Fraction(1)):
    return tuple(x + k * y for x, y in zip(a, b))


def _halves(text: str) -> tuple[str, str]:
    parts = re.split(r"/(?![^(]*\))", text)  # a "/" inside "^(p/q)" is part of the exponent
    return parts[0], (parts[1] if len(parts) > 1 else "")


def parse_unit(text: str) -> tuple[Fraction, ...]:
    """``"kg*m^2/s^2"`` -> its dimension vector; DimensionError for anything outside the grammar."""
    text = text.strip()
    if not UNIT_RE.match(text):
        raise DimensionError(f"unit {text!r} is outside the suite's grammar (e.g. kg*m^2/s^2, m^-3, J/K, 1)")
    num, den = _halves(text)
    dim = DIMLESS
    for part, sign in ((num, 1), (den, -1)):
        if not part or part == "1":
            continue
        for factor in part.split("*"):
            sym, _, exp = factor.partition("^")
            if sym not in UNITS:
                raise DimensionError(f"unknown unit symbol {sym!r} in {text!r}; known: {', '.join(UNITS)}")
            e = Fraction(exp.strip("()")) if exp else Fraction(1)
            dim = _add(dim, UNITS[sym], sign * e)
    return dim


def parse_units_spec(spec: str) -> dict[str, str]:
    """``"q=C;v=m/s;F=N"`` -> ``{"q": "C", "v": "m/s", "F": "N"}`` (strings, as discover takes them)."""
    out: dict[str, str] = {}
    for item in spec.split(";"):
        name, sep, unit = item.partition("=")
        if not sep or not name.strip() or not unit.strip():
            raise DimensionError(f"bad units item {item!r} in {spec!r} (want name=unit)")
        if name.strip() in out:
            raise DimensionError(f"{name.strip()!r} is given twice in {spec!r}")
        out[name.strip()] = unit.strip()
    return out


def fmt(dim) -> str:
    parts = [f"{b}^{e}" if e != 1 else b for b, e in zip(BASE, dim) if e != 0]
    return "*".join(parts) or "1"


def dimension_of(expr, dims: dict[str, tuple[Fraction, ...]]) -> tuple[Fraction, ...]:
    """Dimension of a SymPy expression whose symbols are named in ``dims``.

    Sums need one dimension for all terms (a bare number counts as dimensionless), function
    arguments (exp, log, trig, ...) must be dimensionless, a dimensional base needs a numeric
    exponent. DimensionError names the offending sub-expression.
    """
    import sympy

    if isinstance(expr, sympy.Symbol):
        if expr.name not in dims:
            raise DimensionError(f"no units for {expr.name}")
        return dims[expr.name]
    if isinstance(expr, sympy.Number) or expr in (sympy.pi, sympy.E):
        return DIMLESS
    if isinstance(expr, sympy.Add):
        ds = [dimension_of(a, dims) for a in expr.args]
        if any(d != ds[0] for d in ds):
            raise DimensionError(f"terms of {expr} have different dimensions: {', '.join(map(fmt, ds))}")
        return ds[0]
    if isinstance(expr, sympy.Mul):
        d = DIMLESS
        for a in expr.args:
            d = _add(d, dimension_of(a, dims))
        return d
    if isinstance(expr, sympy.Pow):
        base, exp = expr.args
        db = dimension_of(base, dims)
        if dimension_of(exp, dims) != DIMLESS:
            raise DimensionError(f"exponent of {expr} has units")
        if db == DIMLESS:
            return DIMLESS
        if not exp.is_Number:
            raise DimensionError(f"{expr}: a dimensional base needs a numeric exponent")
        return tuple(x * Fraction(str(exp)) for x in db)
    if isinstance(expr, sympy.Abs):
        return dimension_of(expr.args[0], dims)
    if isinstance(expr, sympy.Function):
        for a in expr.args:
            if dimension_of(a, dims) != DIMLESS:
                raise DimensionError(f"argument of {expr.func.__name__} in {expr} has units {fmt(dimension_of(a, dims))}")
        return DIMLESS
    raise DimensionError(f"cannot take the dimension of {expr!r}")
