"""The discovery benchmark suite (benchmarks/laws/): files parse, domains are safe, units are right.

Fast (a few seconds): no discovery runs here, only the yardstick itself is checked.
"""
from __future__ import annotations

import csv
import itertools
import keyword
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import sympy
from sympy.parsing.sympy_parser import parse_expr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.laws import dimensions as dims  # noqa: E402
from benchmarks.laws.split import draw_holdout  # noqa: E402
from benchmarks.laws.suite import DEV_DATA, NEW_LAWS, load_suite, select  # noqa: E402

pytestmark = pytest.mark.skipif(not DEV_DATA.exists(), reason=f"{DEV_DATA} (shared dev laws) not present")


@pytest.fixture(scope="module")
def laws():
    return load_suite("full")


@pytest.fixture(scope="module")
def new_ids():
    with open(NEW_LAWS, newline="") as fh:
        return [r["id"] for r in csv.DictReader(fh)]


def _expr(law):
    syms = {n: sympy.Symbol(n) for n in law.names}
    return parse_expr(law.formula, local_dict=syms), [syms[n] for n in law.names]


def _points(law, n=2000, seed=0):
    """Random points of the box plus all its corners (singularities like v = c sit on corners)."""
    lo = np.array([r[1] for r in law.ranges])
    hi = np.array([r[2] for r in law.ranges])
    rand = np.random.default_rng(seed).uniform(lo, hi, (n, len(lo)))
    corners = np.array(list(itertools.product(*zip(lo, hi))), dtype=float)
    return np.vstack([rand, corners])


def _eval(expr, syms, pts):
    f = sympy.lambdify(syms, expr, "numpy")
    with np.errstate(all="ignore"):
        return np.broadcast_to(np.asarray(f(*pts.T), dtype=float), (len(pts),))


def test_suite_size_categories_and_columns(laws, new_ids):
    assert len(laws) >= 95, len(laws)
    assert len(new_ids) >= 70, len(new_ids)
    assert len({law.id for law in laws}) == len(laws)
    with open(NEW_LAWS, newline="") as fh:
        assert csv.DictReader(fh).fieldnames == ["id", "formula", "target", "variables", "units", "source",
                                                 "category", "split"]
    counts = Counter(law.category for law in laws)
    assert "-" not in counts, "a dev law has no category in feynman_dev_units.csv"
    assert all(c >= 3 for c in counts.values()), counts
    for law in laws:
        assert law.source and law.target and law.split in ("dev", "holdout"), law.id


def test_holdout_share_and_seeded_draw(laws, new_ids):
    new = [law for law in laws if law.id in set(new_ids)]
    hold = {law.id for law in new if law.split == "holdout"}
    assert 0.30 <= len(hold) / len(new) <= 0.50, len(hold) / len(new)
    assert all(law.split == "dev" for law in laws if law.id not in set(new_ids))
    # the column must still be the documented seeded draw (no law moved by hand after a look)
    assert hold == draw_holdout([(law.id, law.category) for law in new])
    # every category with new laws has some in holdout (stratification)
    cats = {law.category for law in new}
    assert all(any(law.category == c and law.split == "holdout" for law in new) for c in cats)
    assert {law.id for law in select(laws, "holdout")} == hold


def test_names_are_plain_symbols(laws):
    for law in laws:
        for name in law.names + [law.target]:
            assert name.isidentifier() and not keyword.iskeyword(name), (law.id, name)
            # SymPy's own names (E, I, S, N, Q, beta, gamma, ...) would be misread by a parse without local_dict
            assert not hasattr(sympy, name), (law.id, name)
        assert law.target not in law.names, law.id
        assert len(set(law.names)) == len(law.names), law.id
        expr, syms = _expr(law)
        assert expr.free_symbols == set(syms), (law.id, expr.free_symbols)
        for _, lo, hi in law.ranges:
            assert lo < hi, law.id


def test_every_law_is_finite_and_well_conditioned_on_its_box(laws):
    bad = []
    for law in laws:
        expr, syms = _expr(law)
        pts = _points(law)
        y = _eval(expr, syms, pts)
        if not np.all(np.isfinite(y)):
            bad.append((law.id, "not finite", int(np.sum(~np.isfinite(y)))))
        if np.ptp(y) <= 1e-6 * max(1.0, np.max(np.abs(y))):
            bad.append((law.id, "constant on its box"))
        # no division by ~0, sqrt/log of non-positive numbers, asin/acos outside [-1, 1]
        for sub in sympy.preorder_traversal(expr):
            if isinstance(sub, sympy.Pow) and sub.exp.is_Number and not sub.base.is_Number:
                b = _eval(sub.base, syms, pts)
                # a pole: the denominator changes sign in the box or comes near 0 compared with its usual size
                if sub.exp < 0 and not (abs(np.sum(np.sign(b))) == len(b)
                                        and np.min(np.abs(b)) > 1e-3 * np.median(np.abs(b))):
                    bad.append((law.id, f"1/({sub.base}) near 0", float(np.min(np.abs(b)))))
                if not sub.exp.is_Integer and not np.min(b) > 1e-9 * np.max(np.abs(b)):
                    bad.append((law.id, f"({sub.base})**{sub.exp} of a non-positive number", float(np.min(b))))
            elif isinstance(sub, sympy.log) and not np.min(_eval(sub.args[0], syms, pts)) > 0:
                bad.append((law.id, f"{sub} of a non-positive number"))
            elif isinstance(sub, (sympy.asin, sympy.acos)):
                if not np.max(np.abs(_eval(sub.args[0], syms, pts))) < 1 - 1e-6:
                    bad.append((law.id, f"{sub} outside (-1, 1)"))
    assert not bad, bad


def test_units_cover_every_symbol_and_are_dimensionally_consistent(laws):
    for law in laws:
        assert law.units, f"{law.id} has no units"
        spec = law.units_dict()
        assert set(spec) == set(law.names) | {law.target}, (law.id, sorted(set(spec) ^ (set(law.names) | {law.target})))
        d = {n: dims.parse_unit(u) for n, u in spec.items()}
        expr, _ = _expr(law)
        got = dims.dimension_of(expr, d)
        assert got == d[law.target], f"{law.id}: formula has {dims.fmt(got)}, target {law.target} has {dims.fmt(d[law.target])}"


def test_dimension_checker_catches_wrong_units():
    d = {k: dims.parse_unit(u) for k, u in {"m": "kg", "v": "m/s", "c": "m/s", "t": "s", "E": "J"}.items()}
    m, v, c, t = sympy.symbols("m v c t")
    assert dims.dimension_of(m * v**2 / 2, d) == d["E"]
    assert dims.dimension_of(m * c**2 / sympy.sqrt(1 - v**2 / c**2), d) == d["E"]
    with pytest.raises(dims.DimensionError, match="different dimensions"):
        dims.dimension_of(v + t, d)
    with pytest.raises(dims.DimensionError, match="argument of exp"):
        dims.dimension_of(sympy.exp(v), d)
    with pytest.raises(dims.DimensionError, match="numeric exponent"):
        dims.dimension_of(v ** sympy.Symbol("k"), {**d, "k": dims.DIMLESS})
    with pytest.raises(dims.DimensionError, match="exponent of"):
        dims.dimension_of(v**t, d)
    assert dims.parse_unit("kg*m^2/s^2") == dims.parse_unit("J") == dims.parse_unit("N*m")
    assert dims.parse_unit("m^(1/2)") == tuple(x / 2 for x in dims.parse_unit("m"))
    assert dims.parse_unit("J*mol^-1*K^-1") == dims.parse_unit("kg*m^2*s^-2*mol^-1*K^-1") != dims.parse_unit("J/mol")
    for bad in ("kg/m*s", "furlong", "m/s/s", "kg m"):
        with pytest.raises(dims.DimensionError):
            dims.parse_unit(bad)


def test_kanstudio_units_module_agrees_when_present(laws):
    """Integration with kanstudio.core.units (written in parallel): it must call every law consistent."""
    units = pytest.importorskip("kanstudio.core.units")
    if not hasattr(units, "is_consistent"):
        pytest.skip("kanstudio.core.units has no is_consistent yet")
    for law in laws:
        expr, _ = _expr(law)
        assert units.is_consistent(expr, law.units_dict(), law.target), law.id
