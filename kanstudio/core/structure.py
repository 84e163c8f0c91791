"""Structure tests before fitting (AI Feynman, KAN 2.0): what the law's shape is, read off a
smooth surrogate of the data.

- **A variable that can be dropped**: the law barely moves with it.
- **Pair symmetries**: ``y`` depends on ``x_i, x_j`` only through one combination of them. With
  ``g`` the surrogate's gradient, the vector ``v`` below is parallel to a fixed ``(p, q)`` at
  every sample exactly when the law is a function of the combination:

  ===============  ========================  ==============================
  family           v                         combination for ratio p/q
  ===============  ========================  ==============================
  translation      (g_i, g_j)                p x_i + q x_j  (x - mu: 1/-1)
  scale            (x_i g_i, x_j g_j)        x_i^p x_j^q    (v/c, q*v)
  rotation         (g_i x_j, g_j x_i)        p x_i^2 + q x_j^2
  ===============  ========================  ==============================

  plus **homogeneity**: ``x_i g_i + x_j g_j = k y`` (``y = x_j^k F(x_i / x_j)``, a Gaussian's
  ``1/sigma * G((x - mu)/sigma)``). The statistic is the |v|-weighted mean of ``|sin|`` of the
  angle between ``v`` and its principal direction; ``p/q`` must be a small rational.
- **Separability**: ``y = g(A) + h(B)`` or ``y = g(A) h(B)`` over groups of columns, from mixed
  differences of the surrogate at points that combine two samples' coordinates
  (``f(a, b) + f(a', b') - f(a, b') - f(a', b)``, the same on ``log |f|``).

Every threshold scales with the surrogate's own validation error, so noisy data need clearer
evidence. A finding only proposes a view or a shape to try; the search still judges every
attempt on held-out data, so a false finding costs time, not the answer.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import sympy

from .surrogate import Surrogate, fit_surrogate
from .views import View, readable, readable_factor

RATIOS = sorted({Fraction(s * a, b) for s in (1, -1) for a in range(1, 5) for b in range(1, 5)
                 if Fraction(a, b) in {Fraction(1), Fraction(2), Fraction(1, 2), Fraction(3), Fraction(1, 3),
                                       Fraction(3, 2), Fraction(2, 3), Fraction(4), Fraction(1, 4)}},
                key=lambda r: (abs(r.numerator) + abs(r.denominator), -r.numerator, r.denominator))
DEGREES = [Fraction(k, 2) for k in range(-6, 7) if k != 0]


@dataclass(frozen=True)
class Finding:
    kind: str  # drop | translation | scale | rotation | homogeneous
    columns: tuple[int, ...]
    residual: float
    label: str
    new: tuple = ()  # new columns, formulas of the view's column symbols
    factor: object = sympy.Integer(1)  # extra target divisor, a formula of the view's columns


@dataclass
class Structure:
    """What the tests found: the simplified view, and separability of its columns."""

    view: View
    surrogate_error: float
    steps: list[Finding] = field(default_factory=list)
    additive: list[list[int]] | None = None  # groups of the view's columns, when more than one
    multiplicative: list[list[int]] | None = None
    alternatives: list[View] = field(default_factory=list)  # the other choice at a homogeneity step,
    # and the view before a step whose evidence was weak

    def describe(self) -> list[str]:
        lines = [f"surrogate fits to {self.surrogate_error:.2g} of std(y)"]
        lines += [f"{s.kind}: {s.label} (residual {s.residual:.2g})" for s in self.steps]
        if self.steps:
            lines.append(f"so {self.view.describe()}")
        names = self.view.names
        for kind, groups in (("additive", self.additive), ("multiplicative", self.multiplicative)):
            if groups:
                op = " + " if kind == "additive" else " * "
                lines.append(f"{kind}ly separable: " + op.join("f(" + ", ".join(names[i] for i in g) + ")" for g in groups))
        if not self.steps and not self.additive and not self.multiplicative:
            lines.append("no symmetry or separability found")
        return lines


# --------------------------------------------------------------------------- statistics

def _direction(v: np.ndarray) -> tuple[np.ndarray, float]:
    """Principal direction of the rows of ``v`` (sign-free) and the weighted mean |sin| of the
    rows' angles to it (weights |v|)."""
    w = np.linalg.norm(v, axis=1)
    ok = np.isfinite(w) & (w > 1e-12 * (np.nanmax(w) if np.isfinite(w).any() else 1.0))
    if ok.sum() < 8:
        return np.array([1.0, 0.0]), np.inf
    u, w = v[ok] / w[ok, None], w[ok]
    M = (u * w[:, None]).T @ u / w.sum()
    vals, vecs = np.linalg.eigh(M)
    d = vecs[:, -1]
    sin = np.abs(u[:, 0] * d[1] - u[:, 1] * d[0])
    return d, float((w * sin).sum() / w.sum())


def _nice_ratio(r: float, rel: float = 0.04):
    if not np.isfinite(r):
        return None
    for c in RATIOS:
        if abs(float(c) - r) <= rel * abs(float(c)):
            return c
    return None


def _pow(x, e: Fraction):
    return x ** (sympy.Integer(e.numerator) if e.denominator == 1 else sympy.Rational(e.numerator, e.denominator))


def _positive_like(x: np.ndarray) -> bool:
    """One sign and clear of 0 (min |x| above 1 % of max |x|): a column that may be divided by
    and raised to a power. ``x - mu`` crossing 0 is not."""
    a = np.abs(x)
    return bool((np.all(x > 0) or np.all(x < 0)) and a.min() > 1e-2 * a.max())


def _oriented(mono: sympy.Expr, a, b, p: int, q: int) -> sympy.Expr:
    # v ~ (p, q) is sign-free: a^p b^q and its inverse are the same finding; write the one
    # with the larger exponent sum in front (q*v, v/c, m*v^2), as a physicist would
    return mono if p + q >= 0 else a ** -p * b ** -q


def pair_findings(Xc: np.ndarray, F: np.ndarray, G: np.ndarray, syms, tol: float) -> list[Finding]:
    """Pair symmetries and homogeneity of F (values ``F``, gradient ``G`` at the rows ``Xc``)."""
    n, m = Xc.shape
    out = []
    pos = [_positive_like(Xc[:, k]) for k in range(m)]
    for i, j in itertools.combinations(range(m), 2):
        xi, xj, gi, gj = Xc[:, i], Xc[:, j], G[:, i], G[:, j]
        a, b = syms[i], syms[j]
        fams = [("translation", np.column_stack([gi, gj])), ("scale", np.column_stack([xi * gi, xj * gj])),
                ("rotation", np.column_stack([gi * xj, gj * xi]))]
        for kind, v in fams:
            d, res = _direction(v)
            if not res <= tol or abs(d[1]) < 1e-12:
                continue
            r = _nice_ratio(d[0] / d[1])
            if r is None:
                continue
            p, q = r.numerator, r.denominator  # v ~ (p, q)
            if res > tol / 3 and max(abs(p), abs(q)) > 2:
                continue  # weak evidence: only the simplest combinations
            if kind == "translation":
                new = p * a + q * b if p > 0 or q < 0 else -p * a - q * b
            elif kind == "scale":
                p, q = (p, q) if p + q >= 0 else (-p, -q)  # q*v, v/c, m*v^2: larger exponent sum in front
                if (p < 0 and not pos[i]) or (q < 0 and not pos[j]):
                    continue  # only a column clear of 0 may be divided by
                new = a**p * b**q
            else:
                new = p * a**2 + q * b**2 if p > 0 or q < 0 else -p * a**2 - q * b**2
            out.append(Finding(kind, (i, j), res, "", (new,)))
        if np.all(np.abs(F) > 0):
            E = xi * gi + xj * gj
            scale = np.abs(xi * gi) + np.abs(xj * gj)
            k = float((E * F).sum() / (F * F).sum())
            kk = min(DEGREES, key=lambda c: abs(float(c) - k))
            if np.mean(scale) > 0 and abs(float(kk) - k) <= 0.05 * max(1.0, abs(k)):
                res = float(np.mean(np.abs(E - float(kk) * F)) / np.mean(scale + np.abs(float(kk) * F)))
                if res <= tol:
                    # y = b^k F(a/b) = a^k F'(b/a): both where both columns are clear of 0
                    for u, w, ok in ((a, b, pos[j]), (b, a, pos[i])):
                        if ok:
                            out.append(Finding("homogeneous", (i, j), res, "", (u / w,), _pow(w, kk)))
            out += _weighted_homogeneity(xi * gi, xj * gj, F, (i, j), a, b, (pos[i], pos[j]), tol)
    return out


WEIGHTS = [Fraction(2), Fraction(1, 2), Fraction(-1), Fraction(-2), Fraction(-1, 2), Fraction(3), Fraction(1, 3)]


def _weighted_homogeneity(ui, uj, F, cols, a, b, pos: tuple[bool, bool], tol: float) -> list[Finding]:
    """``y(l^P a, l^Q b) = l^k y(a, b)`` with ``P/Q`` other than 1, i.e. ``P a g_a + Q b g_b = k y``:
    then ``y = b^(k/Q) F(a^Q / b^P)`` (a heat kernel ``1/sqrt(s) G(x^2/s)``, a 2-D Gaussian
    ``1/sigma^2 G(r^2/sigma^2)``), and the same with ``a`` and ``b`` swapped. ``(P, Q, k)`` is the
    null vector of ``[u_a, u_b, -F]``; it must be unique (a power product ``a^m b^n`` has a plane
    of them) and ``k`` not 0 (that is the scale family)."""
    A = np.column_stack([ui, uj, -F])
    norms = np.sqrt(np.mean(A**2, 0))
    if not np.all(norms > 0) or not np.isfinite(A).all():
        return []
    _, sv, vt = np.linalg.svd(A / norms, full_matrices=False)
    if sv[-1] > tol * sv[0] or sv[-2] < 10 * sv[-1] or sv[-2] < 3 * tol * sv[0]:
        return []
    P, Q, k = vt[-1] / norms
    if abs(k) < 1e-12:
        return []
    out = []
    # (weight of u, weight of w, u's scaled values, w's, u, w, w clear of 0)
    for p, q, uu, uw, u, w, ok in ((P, Q, ui, uj, a, b, pos[1]), (Q, P, uj, ui, b, a, pos[0])):
        if abs(q) < 1e-12 or not ok:
            continue
        r, kq = _nice_ratio(p / q, 0.03), _nice_ratio(k / q, 0.03)
        if r is None or r not in WEIGHTS or kq is None:
            continue
        Pn, Qn = r.numerator, r.denominator  # Qn > 0
        res = float(np.mean(np.abs(Pn * uu + Qn * uw - float(kq) * Qn * F)) /
                    np.mean(np.abs(Pn * uu) + np.abs(Qn * uw) + np.abs(float(kq) * Qn * F)))
        if res <= tol:
            # invariant u^Q / w^P (u^Q with Q a positive integer is defined for any sign of u)
            out.append(Finding("homogeneous", cols, res, "", (_pow(u, Fraction(Qn)) / _pow(w, Fraction(Pn)),), _pow(w, kq)))
    return out


def drop_findings(Xc: np.ndarray, F: np.ndarray, G: np.ndarray, names, tol: float) -> list[Finding]:
    spread = np.std(F) or 1.0
    sens = np.mean(np.abs(G), 0) * np.std(Xc, 0) / spread
    top = sens.max() if len(sens) else 0.0
    out = []
    for k, s in enumerate(sens):
        if len(sens) > 1 and s < min(0.05 * top, max(0.5 * tol, 2e-3)):
            out.append(Finding("drop", (k,), float(s), f"y does not depend on {names[k]}"))
    return out


def _tolerance(err: float) -> float:
    return float(np.clip(6 * err, 0.01, 0.12))


def separable_groups(sur: Surrogate, Xc: np.ndarray, tol: float, seed: int = 0):
    """(additive groups, multiplicative groups) of the columns of ``Xc`` under ``sur``."""
    n, m = Xc.shape
    if m < 2:
        return None, None
    rng = np.random.default_rng(seed)
    P = Xc[rng.integers(0, n, 400)]
    Q = Xc[rng.integers(0, n, 400)]
    f0 = sur(P)
    sign_ok = bool(np.all(f0 > 0) or np.all(f0 < 0))
    add_edges, mul_edges = [], []
    for i, j in itertools.combinations(range(m), 2):
        Pi, Pj, Pij = P.copy(), P.copy(), P.copy()
        Pi[:, i] = Q[:, i]
        Pj[:, j] = Q[:, j]
        Pij[:, [i, j]] = Q[:, [i, j]]
        fi, fj, fij = sur(Pi), sur(Pj), sur(Pij)
        base = np.sqrt(np.mean((fi - f0) ** 2) + np.mean((fj - f0) ** 2)) or 1.0
        if np.sqrt(np.mean((f0 + fij - fi - fj) ** 2)) / base > tol:
            add_edges.append((i, j))
        if sign_ok and np.all(np.sign(fi) == np.sign(f0)) and np.all(np.sign(fj) == np.sign(f0)) and np.all(np.sign(fij) == np.sign(f0)):
            L = [np.log(np.abs(v)) for v in (f0, fi, fj, fij)]
            lb = np.sqrt(np.mean((L[1] - L[0]) ** 2) + np.mean((L[2] - L[0]) ** 2)) or 1.0
            if np.sqrt(np.mean((L[0] + L[3] - L[1] - L[2]) ** 2)) / lb > tol:
                mul_edges.append((i, j))
        else:
            # y = g(A) h(B) with g or h changing sign: f(a,b) f(a',b') = f(a,b') f(a',b) still holds
            pb = np.sqrt(np.mean(f0**2)) * base
            if np.sqrt(np.mean((f0 * fij - fi * fj) ** 2)) / (pb or 1.0) > tol:
                mul_edges.append((i, j))
    return _components(m, add_edges), _components(m, mul_edges)


def _components(m: int, edges) -> list[list[int]] | None:
    parent = list(range(m))

    def root(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j in edges:
        parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for k in range(m):
        groups.setdefault(root(k), []).append(k)
    out = sorted(groups.values())
    return out if len(out) > 1 else None


_ORDER = {"drop": 0, "translation": 1, "scale": 1, "rotation": 2, "homogeneous": 3}
MAX_SURROGATE_ERROR = 0.1  # beyond this the derivatives say more about the stand-in than the law


def _label(cur: View, f: Finding) -> str:
    sub = dict(zip(cur.column_symbols(), cur.columns))
    if f.kind == "drop":
        return f.label
    new = readable(f.new[0].xreplace(sub))
    if f.kind == "homogeneous":
        return f"y = {readable_factor(sympy.sympify(f.factor).xreplace(sub))} * F({new}, ...)"
    return f"y depends on {cur.names[f.columns[0]]}, {cur.names[f.columns[1]]} only through {new}"


def analyze(X, y, view: View, Xv=None, yv=None, *, seed: int = 0, max_steps: int = 8) -> Structure:
    """Simplify ``view`` by the symmetries the data show, then test the result for separability."""
    X = np.asarray(X, dtype=np.float64)
    Xs, ys = view.transform(X), view.target(X, y)
    val = (None, None) if Xv is None or not len(Xv) else (view.transform(Xv), view.target(Xv, yv))
    sur = fit_surrogate(Xs, ys, *val, seed=seed)
    err = sur.rel_err
    st = Structure(view, err)
    if not np.isfinite(err) or err > MAX_SURROGATE_ERROR:
        return st
    tol = _tolerance(err)
    # f and its gradient in the starting view's columns, carried through later views by the
    # chain rule: one surrogate for the whole chain
    F0, G0 = sur(Xs), sur.grad(Xs)
    cur = View.identity(view.names)
    for _ in range(max_steps):
        Xc = cur.transform(Xs)
        if Xc.shape[1] <= 1:
            break
        Fc = F0 / cur.factor_values(Xs)
        Gc = cur.gradient_in_view(Xs, F0, G0)
        found = drop_findings(Xc, Fc, Gc, cur.names, tol) + pair_findings(Xc, Fc, Gc, cur.column_symbols(), tol)
        found = [f for f in found if f.kind == "drop" or _valid(cur, f, Xs)]
        if not found:
            break
        order = sorted(found, key=lambda f: (_ORDER[f.kind], f.residual > tol / 3, f.residual))
        best = order[0]
        label = _label(cur, best)
        if best.kind == "homogeneous":
            other = next((f for f in order[1:] if f.kind == "homogeneous" and f.columns == best.columns), None)
            if other is not None:
                st.alternatives.append(_compose(view, cur.replace(list(other.columns), list(other.new), _label(cur, other), other.factor)))
        if best.residual > tol / 3 and cur.notes:
            st.alternatives.append(_compose(view, cur))  # in case this weaker finding is wrong
        cur = cur.replace(list(best.columns), list(best.new), label, best.factor)
        st.steps.append(Finding(best.kind, best.columns, best.residual, label, best.new, best.factor))
    st.view = _compose(view, cur)
    if len(st.view.columns) >= 2:
        Xf = st.view.transform(X)
        if st.steps:
            sur = fit_surrogate(Xf, st.view.target(X, y), seed=seed)
        if np.isfinite(sur.rel_err) and sur.rel_err <= MAX_SURROGATE_ERROR:
            st.additive, st.multiplicative = separable_groups(sur, Xf, _tolerance(sur.rel_err), seed)
    return st


def _valid(view: View, f: Finding, X) -> bool:
    trial = view.replace(list(f.columns), list(f.new), f.label, f.factor)
    return trial.valid_on(X)


def _compose(outer: View, inner: View) -> View:
    """The view ``inner`` (over ``outer``'s columns, named as them) as a view of ``outer``'s base."""
    if not inner.notes:
        return outer
    sub = {sympy.Symbol(n): c for n, c in zip(inner.base_names, outer.columns)}
    cols = tuple(c.xreplace(sub) for c in inner.columns)
    fac = sympy.powsimp(outer.factor * inner.factor.xreplace(sub), force=True)
    return View(outer.base_names, cols, fac, outer.notes + inner.notes, outer.outer)
