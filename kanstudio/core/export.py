"""Exports of a :class:`~kanstudio.core.formula.FormulaResult`: LaTeX, .tex, Python, JSON."""
from __future__ import annotations

import keyword
import math
import re

import numpy as np
import sympy
from sympy.printing.numpy import NumPyPrinter

_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)?$")
_TEX_ESCAPE = {c: "\\" + c for c in "&%$#_{}"}
_TEX_ESCAPE.update({"~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"})


def _tex_text(s: str) -> str:
    return "".join(_TEX_ESCAPE.get(c, c) for c in s)


def latex_name(name: str) -> str:
    """SymPy's own rendering for names like ``m_0``/``theta`` (-> m_{0}, \\theta); anything else
    as upright escaped text, so a column called 'T (K)' or 'a&b' cannot break the LaTeX."""
    if _IDENT.match(name):
        return sympy.latex(sympy.Symbol(name))
    return r"\mathrm{" + _tex_text(name) + "}"


def to_latex(res, digits: int = 6) -> str:
    """LaTeX with floats shown to ``digits`` significant digits (the SymPy, Python and JSON
    exports keep full precision)."""
    names = {s: latex_name(s.name) for s in res.symbols}
    expr = res.expr.xreplace({f: sympy.Float(f, digits) for f in res.expr.atoms(sympy.Float)})
    return sympy.latex(expr, symbol_names=names)


def _fmt(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.6g}"


def to_tex_document(res) -> str:
    target = latex_name(res.target_name)
    rows = [
        ("formula", res.r2_test, res.rmse_test),
        ("network", res.network_r2_test, res.network_rmse_test),
    ]
    kind = "Fully symbolic." if res.exact else r"Contains learned spline terms $\varphi$."
    table = "\n".join(f"  {n} & {_fmt(r2)} & {_fmt(rmse)} \\\\" for n, r2, rmse in rows)
    return (
        "\\documentclass{article}\n\\usepackage{amsmath}\n\\usepackage[margin=2cm]{geometry}\n"
        "\\begin{document}\n\\section*{Formula found by kanstudio}\n"
        f"\\begin{{equation*}}\n{target} = {to_latex(res)}\n\\end{{equation*}}\n"
        f"Inputs: {_tex_text(', '.join(res.input_names))}. Complexity: {res.complexity}. "
        f"Live edges: {res.n_edges}. {kind}\n\n"
        "\\begin{tabular}{lrr}\n  & $R^2$ (test) & RMSE (test) \\\\\n  \\hline\n"
        f"{table}\n\\end{{tabular}}\n\\end{{document}}\n"
    )


def _py_arg(name: str, i: int, taken: set[str]) -> str:
    cand = re.sub(r"\W", "_", name)
    if not cand.isidentifier() or keyword.iskeyword(cand) or cand in taken or cand in ("np", "numpy"):
        cand = f"x{i}"
    taken.add(cand)
    return cand


def to_python(res, func_name: str = "formula", n_table: int = 256) -> str:
    """Standalone NumPy source. Unsnapped edges (opaque splines) become interpolation tables of
    the learned curve over the data range (flat outside it)."""
    taken: set[str] = set()
    args = [_py_arg(n, i, taken) for i, n in enumerate(res.input_names)]
    dummies = [sympy.Symbol(a) for a in args]
    expr = res.expr.xreplace(dict(zip(res.symbols, dummies)))
    helpers = []
    for f in sorted(expr.atoms(sympy.Function), key=str):
        imp = getattr(f.func, "_imp_", None)
        if imp is None:
            continue
        # the edge's input range: evaluate its argument on the symbols' plausible values is not
        # known here, so tabulate over a generous range of the spline's own grid
        lo, hi = _imp_range(imp)
        xs = np.linspace(lo, hi, n_table)
        ys = imp(xs)
        helpers.append(
            f"_{f.func.__name__}_x = numpy.array({np.array2string(xs, separator=',', precision=17, max_line_width=10**9, threshold=10**9)})\n"
            f"_{f.func.__name__}_y = numpy.array({np.array2string(ys, separator=',', precision=17, max_line_width=10**9, threshold=10**9)})\n"
            f"def {f.func.__name__}(u):\n    return numpy.interp(u, _{f.func.__name__}_x, _{f.func.__name__}_y)\n"
        )
    body = NumPyPrinter({"fully_qualified_modules": True, "allow_unknown_functions": True}).doprint(expr)
    doc_args = "\n".join(f"    {a}: column '{n}'" for a, n in zip(args, res.input_names))
    return (
        f'"""{res.target_name} as found by kanstudio (test R^2 {_fmt(res.r2_test)}, RMSE {_fmt(res.rmse_test)})."""\n'
        "import numpy\n\n"
        + "\n".join(helpers)
        + f"\n\ndef {func_name}({', '.join(args)}):\n"
        f'    """Arguments (NumPy arrays or floats):\n{doc_args}\n    """\n'
        f"    return {body}\n"
    )


def _imp_range(imp) -> tuple[float, float]:
    rng = getattr(imp, "domain", None)
    return rng if rng is not None else (-10.0, 10.0)


def to_json(res) -> dict:
    def num(v):
        return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)

    return {
        "formula": res.sympy_str(),
        "latex": res.latex(),
        "srepr": res.srepr(),
        "inputs": list(res.input_names),
        "target": res.target_name,
        "complexity": int(res.complexity),
        "exact": bool(res.exact),
        "r2_test": num(res.r2_test),
        "rmse_test": num(res.rmse_test),
        "network_r2_test": num(res.network_r2_test),
        "network_rmse_test": num(res.network_rmse_test),
        "n_edges": int(res.n_edges),
    }
