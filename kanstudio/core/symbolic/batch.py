"""Candidate functions evaluated, and their domains checked, for the affine search.

The search (affine.py, refine.py) evaluates every candidate at every iteration on small tensors
(a few hundred to a few ten thousand elements), where the cost is per torch call, not per
element, for most functions, and the element cost of torch's general ``pow`` for the rest.
Two things make that cheaper without changing what is computed:

- **search evaluators** for built-ins whose ``torch_fn`` is slow on such tensors: integer powers
  by repeated multiplication instead of ``pow``, the sign-preserving guard of the poles as
  ``copysign(max(|u|, EPS), u)``, tan's cosine computed once for its value and its domain. They
  take the same guards as ``torch_fn`` (so the central-difference slopes at a domain edge are
  the same) and agree with it to a unit or two in the last place (``u*u*u*u`` against
  ``u**4``). They run without autograd, so in-place updates of temporaries are safe; training
  keeps using ``torch_fn``.
- **interval domains**: every built-in ``valid`` but tan's is ``lo <= u <= hi`` and
  ``|u| >= min_abs``, so "valid on every sample" is a few reductions for all functions at once,
  with exactly the answer of ``valid(u).all(-1)``. Parsed expressions give their values and
  mask from one evaluation (parse.py's ``valid.with_value``); other registered functions call
  ``valid`` as before.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .library import EPS, EXP_MAX, LIBRARY, SymbolicFunction

_INF = math.inf


def _away(u: torch.Tensor) -> torch.Tensor:
    # library._away_from_zero except at u = -0.0 (which no valid fit reaches: |u| < EPS)
    return u.abs().clamp_(min=EPS).copysign_(u)


def _x4(u):
    u2 = u * u
    return u2 * u2


def _x5(u):
    u2 = u * u
    return u2 * u2 * u


def _inv2(u):
    z = u.abs().clamp_(min=EPS)
    return (z * z).reciprocal_()


def _inv3(u):
    z = _away(u)
    return (z * z * z).reciprocal_()


def _x15(u):
    z = u.clamp(min=0.0)
    return z * z.sqrt()


# name -> evaluator (values only), for built-ins with a slow torch_fn on small tensors
_FAST = {
    "x^4": _x4, "x^5": _x5,
    "1/x": lambda u: _away(u).reciprocal_(), "1/x^2": _inv2, "1/x^3": _inv3,
    "sqrt": lambda u: u.clamp(min=0.0).sqrt_(), "x^1.5": _x15,
}


def _tan(u):
    """tan as the library computes it (sin / guarded cos) and its domain mask |cos u| >= EPS."""
    c = torch.cos(u)
    ok = c.abs() >= EPS
    return torch.sin(u).div_(_away(c)), ok


# name -> evaluator returning (values, valid mask)
_WITH_MASK = {"tan": _tan}

# name -> (lo, hi, min_abs): valid(u) == (lo <= u <= hi) & (|u| >= min_abs) for finite u
_DOMAINS = {
    "1/x": (-_INF, _INF, EPS), "1/x^2": (-_INF, _INF, EPS), "1/x^3": (-_INF, _INF, EPS),
    "log": (EPS, _INF, 0.0), "1/sqrt": (EPS, _INF, 0.0),
    "sqrt": (0.0, _INF, 0.0), "x^1.5": (0.0, _INF, 0.0),
    "arcsin": (-1.0, 1.0, 0.0), "arccos": (-1.0, 1.0, 0.0), "arctanh": (-(1 - EPS), 1 - EPS, 0.0),
    "exp": (-_INF, EXP_MAX, 0.0),
}
_FINITE = ("x", "x^2", "x^3", "x^4", "x^5", "sin", "cos", "tanh", "abs", "sgn", "arctan", "gaussian",
           "sigmoid", "0")


def _builtin(fn: SymbolicFunction) -> str | None:
    return fn.name if LIBRARY.get(fn.name) is fn else None


def domain(fn: SymbolicFunction) -> tuple[float, float, float] | None:
    """``(lo, hi, min_abs)`` of a built-in whose ``valid`` is that interval test, else None."""
    name = _builtin(fn)
    if name in _DOMAINS:
        return _DOMAINS[name]
    if name in _FINITE:
        return (-_INF, _INF, 0.0)
    return None


class Batch:
    """How to evaluate a fixed list of functions; built once and cached with the search plan."""

    def __init__(self, fns: list[SymbolicFunction]):
        self.fns = list(fns)
        names = [_builtin(f) for f in fns]
        self.value_fns = [_FAST.get(n, f.torch_fn) for n, f in zip(names, fns)]
        # per function: None (interval domain), or a callable u -> (values, mask), or 'valid'
        self.masked = []
        for n, f in zip(names, fns):
            if domain(f) is not None:
                self.masked.append(None)
            elif n in _WITH_MASK:
                self.masked.append(_WITH_MASK[n])
            else:
                self.masked.append(getattr(f.valid, "with_value", None) or "valid")
        doms = [domain(f) or (-_INF, _INF, 0.0) for f in fns]
        self.lo = np.array([d[0] for d in doms])
        self.hi = np.array([d[1] for d in doms])
        self.min_abs = np.array([d[2] for d in doms])

    def evaluate(self, V: torch.Tensor, rows: np.ndarray, offsets: bool = False):
        """Values of ``fns[r]`` on ``V[p]`` for each position ``p`` of the sorted ``rows``, and
        whether every sample is in its domain, ``fns[r].valid(U[p]).all(-1)``.

        With ``offsets``, ``V`` is ``(rows, 3, ..., n)``: the arguments ``u``, ``u + h``,
        ``u - h``; the domain is judged at ``u`` (index 0 of axis 1) only. Returns
        ``(values like V, numpy bool of V's shape without axis 1 if offsets and the last axis)``.
        """
        U = V[:, 0] if offsets else V
        lo, hi, ma = self.lo[rows], self.hi[rows], self.min_abs[rows]
        shape = (-1,) + (1,) * (U.dim() - 2)
        ok = (U.amin(-1).numpy() >= lo.reshape(shape)) & (U.amax(-1).numpy() <= hi.reshape(shape))
        if (ma > 0).any():
            ok &= U.abs().amin(-1).numpy() >= ma.reshape(shape)
        parts = []
        for p, r in enumerate(rows.tolist()):
            how = self.masked[r]
            if how is None:
                parts.append(self.value_fns[r](V[p]))
            elif how == "valid":
                parts.append(self.value_fns[r](V[p]))
                ok[p] = self.fns[r].valid(U[p]).all(-1).numpy()
            else:
                val, mask = how(V[p])
                parts.append(val)
                ok[p] = (mask[0] if offsets else mask).all(-1).numpy()
        return torch.stack(parts), ok
