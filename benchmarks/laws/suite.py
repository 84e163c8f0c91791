"""Load the discovery suite: the 25 feynman_dev laws (shared file + our units for them) and ours.

A law is one row: ``id, formula, target, variables ("name:lo:hi;..."), units ("name=unit;...",
every variable and the target), source, category, split``. Other CSVs (``--data``) may have only
``id, formula, variables``; the rest then falls back to the dev units table when the id is
there, else to target ``y``, category ``-``, split ``dev`` and no units.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEV_DATA = HERE.parents[2] / "shared" / "data" / "feynman_dev.csv"
DEV_UNITS = HERE / "feynman_dev_units.csv"
NEW_LAWS = HERE / "suite.csv"
# --suite names; anything else is a comma-separated list of CSV paths
SUITES = {"full": (DEV_DATA, NEW_LAWS), "feynman": (DEV_DATA,), "new": (NEW_LAWS,)}


@dataclass(frozen=True)
class Law:
    id: str
    formula: str
    target: str
    ranges: tuple[tuple[str, float, float], ...]
    units: str  # "" when unknown
    source: str
    category: str
    split: str

    @property
    def names(self) -> list[str]:
        return [n for n, _, _ in self.ranges]

    def units_dict(self) -> dict[str, str] | None:
        """``{name: unit, ..., target: unit}`` for discover's ``units=``; None without units."""
        if not self.units:
            return None
        from .dimensions import parse_units_spec

        return parse_units_spec(self.units)


def parse_ranges(spec: str) -> tuple[tuple[str, float, float], ...]:
    out = []
    for part in spec.split(";"):
        name, lo, hi = part.split(":")
        out.append((name.strip(), float(lo), float(hi)))
    return tuple(out)


def _dev_table() -> dict[str, dict[str, str]]:
    if not DEV_UNITS.exists():
        return {}
    with open(DEV_UNITS, newline="") as fh:
        return {r["id"]: r for r in csv.DictReader(fh)}


def load_csv(path, dev_table=None) -> list[Law]:
    table = _dev_table() if dev_table is None else dev_table
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    laws = []
    for r in rows:
        extra = table.get(r["id"], {})
        laws.append(Law(
            id=r["id"], formula=r["formula"],
            target=r.get("target") or extra.get("target") or "y",
            ranges=parse_ranges(r["variables"]),
            units=r.get("units") or extra.get("units") or "",
            source=r.get("source", ""),
            category=r.get("category") or extra.get("category") or "-",
            split=r.get("split") or "dev",
        ))
    return laws


def load_suite(suite: str = "full") -> list[Law]:
    paths = SUITES.get(suite) or tuple(Path(p) for p in suite.split(","))
    table = _dev_table()
    laws: list[Law] = []
    for p in paths:
        laws.extend(load_csv(p, table))
    ids = [law.id for law in laws]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"law ids given twice: {', '.join(dup)}")
    return laws


def select(laws: list[Law], split: str = "all", ids=None, categories=None) -> list[Law]:
    """Filter by split (dev|holdout|all), comma-separated ids and categories (unknown ones: error)."""
    if split not in ("dev", "holdout", "all"):
        raise ValueError(f"split must be dev, holdout or all, not {split!r}")
    out = [law for law in laws if split == "all" or law.split == split]
    for key, want in (("id", ids), ("category", categories)):
        if want:
            keep = [w.strip() for w in want.split(",") if w.strip()]
            known = {getattr(law, key) for law in laws}
            unknown = [w for w in keep if w not in known]
            if unknown:
                raise ValueError(f"unknown {key}(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
            out = [law for law in out if getattr(law, key) in keep]
    return out


def sample(law: Law, n: int, rng):
    """``n`` uniform points of the law's box and the law's values there, as float64 arrays."""
    import numpy as np
    import sympy
    from sympy.parsing.sympy_parser import parse_expr

    syms = [sympy.Symbol(n_) for n_ in law.names]
    f = sympy.lambdify(syms, parse_expr(law.formula, local_dict=dict(zip(law.names, syms))), "numpy")
    X = np.column_stack([rng.uniform(lo, hi, n) for _, lo, hi in law.ranges])
    y = np.broadcast_to(np.asarray(f(*X.T), dtype=float), (n,)).astype(float)
    return X, y
