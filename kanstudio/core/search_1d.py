"""A direct search for laws of one variable: ``y = c * f(a * g(x) + b) + d``.

When the view leaves one column (one dimensionless group, or ``theta / sigma`` after a
symmetry), the law is a 1-D curve, and a two-level composition covers most of physics' curves:
``1/sqrt(1 - u**2)``, ``exp(-u**2 / 2)``, ``u / (exp(u) - 1)``-like forms need an inner power
or exponential and an outer library function. Training a ``[1, 1, 1]`` KAN finds them only from
a lucky start; fitting the outer function's affine parameters on every inner ``g`` of a short
list is a few dozen milliseconds each (the vectorised affine search), so it is tried first.

The best candidates are compiled into a snapped KAN (``[1, 1]`` or ``[1, 1, 1]``) and refitted
there, so the result is a network like every other attempt's: the studio can open it, the
formula comes from the same objects as the forward pass, and the parameters are polished
jointly (the inner ``g`` gets its own ``a, b`` too).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .model import KAN

# (library name, inner a): parameter-free inner functions, the identity first
INNER = (("x", 1.0), ("x^2", 1.0), ("x^3", 1.0), ("1/x", 1.0), ("1/x^2", 1.0), ("sqrt", 1.0),
         ("1/sqrt", 1.0), ("exp", 1.0), ("exp", -1.0), ("log", 1.0))
TOP = 3  # candidates compiled and refitted
MAX_ROWS = 2000  # the affine search needs no more samples than this to rank


def _inner_values(name: str, a: float, x: np.ndarray) -> np.ndarray | None:
    with np.errstate(all="ignore"):
        if name == "x":
            u = a * x
        elif name == "x^2":
            u = x * x
        elif name == "x^3":
            u = x**3
        elif name in ("1/x", "1/x^2", "1/sqrt", "sqrt", "log"):
            if (x <= 0).any() and name in ("sqrt", "1/sqrt", "log"):
                return None
            if (np.abs(x) < 1e-3 * (np.abs(x).max() or 1)).any():
                return None
            u = {"1/x": 1 / x, "1/x^2": 1 / (x * x), "1/sqrt": 1 / np.sqrt(x), "sqrt": np.sqrt(x),
                 "log": np.log(x)}[name]
        elif name == "exp":
            if np.abs(x).max() > 30:
                return None
            u = np.exp(a * x)
        else:
            return None
    return u if np.isfinite(u).all() and np.ptp(u) > 0 else None


def candidates(x: np.ndarray, y: np.ndarray, lib=None) -> list[tuple[float, str, float, object]]:
    """``(score, inner name, inner a, outer Candidate)``, best first."""
    from .symbolic import fit_affine

    if len(x) > MAX_ROWS:
        idx = np.linspace(0, len(x) - 1, MAX_ROWS).round().astype(int)
        x, y = x[idx], y[idx]
    out = []
    for name, a in INNER:
        u = _inner_values(name, a, x)
        if u is None:
            continue
        # the inner function costs complexity as well: it is one more edge of the formula
        extra = 0 if name == "x" else 1
        for c in fit_affine(u, y, lib)[:2]:
            if c.name == "0" or not math.isfinite(c.r2):
                continue
            out.append((c.score + extra, name, a, c))
    out.sort(key=lambda t: (t[0], t[1], t[3].name))
    return out


@torch.no_grad()
def compile_model(inner: str, inner_a: float, cand, X, y, names, target, seed: int = 0) -> KAN:
    """A snapped KAN computing ``cand.c * f(cand.a * g(inner_a * x) + cand.b) + cand.d``."""
    width = [1, 1] if inner == "x" else [1, 1, 1]
    m = KAN(width, seed=seed)
    m.feature_names_, m.target_name_ = list(names), target
    m.set_data(X, y)
    net = m.net
    s_in, m_in = float(net.in_scale[0]), float(net.in_shift[0])  # edge input h = (x - m) * s
    s_out, m_out = float(net.out_scale[0]), float(net.out_shift[0])  # y = net * s + m
    a, b, c, d = cand.a, cand.b, cand.c, cand.d
    c_o, d_o = c / s_out, (d - m_out) / s_out
    if inner == "x":
        # identity inner: x = h / s + m, so f(a x + b) = f(a/s h + a m + b)
        net.layers[0].set_symbolic(0, 0, cand.name, inner_a * a / s_in, inner_a * a * m_in + b, c_o, d_o)
    else:
        net.layers[0].set_symbolic(0, 0, inner, inner_a / s_in, inner_a * m_in, 1.0, 0.0)
        net.layers[1].set_symbolic(0, 0, cand.name, a, b, c_o, d_o)
    for layer in net.layers:
        layer.bias.zero_()
    return m


def fit_1d(X, y, Xv, yv, names, target, cfg, lib=None, deadline: float | None = None) -> list:
    """The best few candidates, each compiled, refitted and as ``(model, formula)``; past
    ``deadline`` (a ``time.perf_counter()`` value) no further candidate starts once one is done."""
    import time

    from .formula import build_formula

    x = np.asarray(X, dtype=np.float64).reshape(-1)
    found = candidates(x, np.asarray(y, dtype=np.float64).reshape(-1), lib)
    out = []
    for _, inner, inner_a, cand in found[:TOP]:
        if out and deadline is not None and time.perf_counter() > deadline:
            break
        left = None if deadline is None else max(0.05, deadline - time.perf_counter())
        try:
            m = compile_model(inner, inner_a, cand, X, y, names, target, cfg.seed)
            m.fit(steps=cfg.refit_steps, update_grid=False, time_limit=left)
            f = build_formula(m, Xv, yv, deadline=deadline)
        except Exception:  # a candidate that cannot be compiled or refitted is simply not a result
            continue
        if math.isfinite(f.rmse_test):
            out.append((m, f))
    return out
