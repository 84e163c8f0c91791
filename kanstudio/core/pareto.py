"""A Pareto list of formulas: snap the same network at several complexity weights.

Each weight ranks every edge's candidates differently (a low weight prefers accuracy, a high
one simplicity); each result is refitted and simplified, and the list keeps the formulas that
no other beats on both complexity and test error, simplest first.
"""
from __future__ import annotations

from .formula import FormulaResult, build_formula
from .model import KAN

DEFAULT_WEIGHTS = (0.25, 0.5, 1.0, 2.0, 4.0)


def pareto_front(model: KAN, X_test=None, y_test=None, weights=DEFAULT_WEIGHTS, refit_steps: int = 20,
                 r2_threshold: float = 0.0) -> list[FormulaResult]:
    results: list[FormulaResult] = []
    seen = set()
    for w in weights:
        m = model.copy()
        m.auto_symbolic(r2_threshold=r2_threshold, weight_complexity=w)
        if refit_steps:
            m.fit(steps=refit_steps, update_grid=False)
        f = build_formula(m, X_test, y_test)
        key = f.sympy_str()
        if key not in seen:
            seen.add(key)
            results.append(f)
    return front(results)


def front(results: list[FormulaResult]) -> list[FormulaResult]:
    items = sorted(results, key=lambda f: (f.complexity, f.rmse_test))
    out, best = [], float("inf")
    for f in items:
        if f.rmse_test < best:
            out.append(f)
            best = f.rmse_test
    return out
