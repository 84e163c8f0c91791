"""The candidate library: 1-D functions an edge can be snapped to.

Each :class:`SymbolicFunction` carries four views of the same function:

- ``torch_fn``  safe for training: finite values and finite gradients for every finite input.
  Wherever ``valid(u)`` holds it equals the exact function (to rounding), so a fit made on valid
  inputs is reproduced exactly by the network; outside, guards take over (clamps, sign-preserving
  ``max(|u|, EPS)`` denominators) so a snapped edge that drifts out of its domain stays finite.
- ``numpy_fn``  the exact function, no guards (NaN/inf outside the domain), for checks and exports.
- ``sympy_fn``  the exact symbolic form, ``u -> expr(u)``.
- ``valid``     boolean mask of inputs in the domain and not near a singularity:

  ===========================  =========================================
  1/x, 1/x^2, 1/x^3            ``|u| >= EPS``
  log, 1/sqrt                  ``u >= EPS``
  sqrt, x^1.5                  ``u >= 0``
  arcsin, arccos               ``|u| <= 1``
  arctanh                      ``|u| <= 1 - EPS``
  tan                          ``|cos u| >= EPS``  (a distance of about EPS from a pole)
  exp                          ``u <= EXP_MAX``   (keeps float32 training finite)
  everything else              ``u`` finite
  ===========================  =========================================

``EPS = 1e-3``: a pole closer than that to a sample is not a law anyone measured.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import sympy
import torch

__all__ = [
    "SymbolicFunction",
    "LIBRARY",
    "EPS",
    "EXP_MAX",
    "get_function",
    "register_function",
    "unregister_function",
    "registered_names",
    "default_names",
]

EPS = 1e-3
EXP_MAX = 80.0  # exp(80) ~ 5.5e34 < float32 max
_GRAD_EPS = 1e-6  # where a value is finite but its slope is not (sqrt at 0, arcsin at +-1)


@dataclass(frozen=True)
class SymbolicFunction:
    """One candidate ``f``; an edge snapped to it computes ``c * f(a * x + b) + d``."""

    name: str
    torch_fn: Callable[[torch.Tensor], torch.Tensor]
    sympy_fn: Callable[[sympy.Expr], sympy.Expr]
    complexity: int
    valid: Callable[[torch.Tensor], torch.Tensor]
    numpy_fn: Callable[[np.ndarray], np.ndarray]


# ---------------------------------------------------------------------------------------------
# guards


def _away_from_zero(u: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """``sign(u) * max(|u|, eps)`` with sign(0) = +1, so 1/u never divides by zero."""
    return torch.where(u >= 0, u.clamp(min=eps), u.clamp(max=-eps))


def _exact_value_safe_grad(fn, u, lo, hi, glo, ghi):
    """``fn`` evaluated on ``u`` clamped to the domain ``[lo, hi]``; its gradient is taken at
    ``u`` clamped to ``[glo, hi]`` inside it, so the slope stays finite at the domain's edge
    (sqrt'(0) and arcsin'(1) are infinite) while the value is the exact one."""
    if not (torch.is_grad_enabled() and u.requires_grad):
        return fn(u.clamp(lo, hi))
    with torch.no_grad():
        exact = fn(u.clamp(lo, hi))
    safe = fn(u.clamp(glo, ghi))
    return safe + (exact - safe).detach()


def _finite(u: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(u)


def _np(fn):
    """numpy view without the divide/invalid warnings: NaN/inf outside the domain are the point."""

    def wrapped(u):
        with np.errstate(all="ignore"):
            return fn(np.asarray(u, dtype=float))

    return wrapped


# ---------------------------------------------------------------------------------------------
# the 26 defaults, in the order the UI lists them

_sqrt_t = lambda u: _exact_value_safe_grad(torch.sqrt, u, 0.0, None, _GRAD_EPS, None)
_asin_t = lambda u: _exact_value_safe_grad(torch.arcsin, u, -1.0, 1.0, -1 + _GRAD_EPS, 1 - _GRAD_EPS)
_acos_t = lambda u: _exact_value_safe_grad(torch.arccos, u, -1.0, 1.0, -1 + _GRAD_EPS, 1 - _GRAD_EPS)

_SPECS = [
    # name, torch (safe), numpy (exact), sympy, complexity, valid
    ("x", lambda u: u, lambda u: u, lambda u: u, 1, _finite),
    ("x^2", lambda u: u * u, lambda u: u**2, lambda u: u**2, 2, _finite),
    ("x^3", lambda u: u**3, lambda u: u**3, lambda u: u**3, 3, _finite),
    ("x^4", lambda u: u**4, lambda u: u**4, lambda u: u**4, 4, _finite),
    ("x^5", lambda u: u**5, lambda u: u**5, lambda u: u**5, 5, _finite),
    ("1/x", lambda u: 1 / _away_from_zero(u), lambda u: 1 / u, lambda u: 1 / u, 2,
     lambda u: u.abs() >= EPS),
    ("1/x^2", lambda u: _away_from_zero(u) ** -2, lambda u: u**-2.0, lambda u: u**-2, 3,
     lambda u: u.abs() >= EPS),
    ("1/x^3", lambda u: _away_from_zero(u) ** -3, lambda u: u**-3.0, lambda u: u**-3, 4,
     lambda u: u.abs() >= EPS),
    ("sqrt", _sqrt_t, np.sqrt, sympy.sqrt, 2, lambda u: u >= 0),
    ("1/sqrt", lambda u: torch.rsqrt(u.clamp(min=EPS)), lambda u: 1 / np.sqrt(u),
     lambda u: 1 / sympy.sqrt(u), 3, lambda u: u >= EPS),
    ("x^1.5", lambda u: u.clamp(min=0) ** 1.5, lambda u: u**1.5,
     lambda u: u ** sympy.Rational(3, 2), 3, lambda u: u >= 0),
    ("exp", lambda u: torch.exp(u.clamp(max=EXP_MAX)), np.exp, sympy.exp, 2, lambda u: u <= EXP_MAX),
    ("log", lambda u: torch.log(u.clamp(min=EPS)), np.log, sympy.log, 2, lambda u: u >= EPS),
    ("sin", torch.sin, np.sin, sympy.sin, 2, _finite),
    ("cos", torch.cos, np.cos, sympy.cos, 2, _finite),
    ("tan", lambda u: torch.sin(u) / _away_from_zero(torch.cos(u)), np.tan, sympy.tan, 3,
     lambda u: torch.cos(u).abs() >= EPS),
    ("tanh", torch.tanh, np.tanh, sympy.tanh, 3, _finite),
    ("abs", torch.abs, np.abs, sympy.Abs, 3, _finite),
    ("sgn", torch.sign, np.sign, sympy.sign, 3, _finite),
    ("arcsin", _asin_t, np.arcsin, sympy.asin, 4, lambda u: u.abs() <= 1),
    ("arccos", _acos_t, np.arccos, sympy.acos, 4, lambda u: u.abs() <= 1),
    ("arctan", torch.arctan, np.arctan, sympy.atan, 4, _finite),
    ("arctanh", lambda u: torch.arctanh(u.clamp(-1 + EPS, 1 - EPS)), np.arctanh, sympy.atanh, 4,
     lambda u: u.abs() <= 1 - EPS),
    ("gaussian", lambda u: torch.exp(-u * u), lambda u: np.exp(-(u**2)), lambda u: sympy.exp(-(u**2)),
     3, _finite),
    ("sigmoid", torch.sigmoid, lambda u: 1 / (1 + np.exp(-u)), lambda u: 1 / (1 + sympy.exp(-u)), 4,
     _finite),
    # the dead edge: u * 0 (not zeros_like) keeps the autograd graph connected
    ("0", lambda u: u * 0.0, np.zeros_like, lambda u: sympy.Integer(0), 0, _finite),
]

LIBRARY: dict[str, SymbolicFunction] = {
    name: SymbolicFunction(name, t, s, c, v, _np(n)) for name, t, n, s, c, v in _SPECS
}

_ALIASES = {
    "id": "x", "identity": "x", "linear": "x", "x^1": "x", "u": "x",
    "square": "x^2", "cube": "x^3",
    "x^-1": "1/x", "inv": "1/x", "reciprocal": "1/x",
    "x^-2": "1/x^2", "x^-3": "1/x^3",
    "x^0.5": "sqrt", "x^(1/2)": "sqrt",
    "1/sqrt(x)": "1/sqrt", "1/x^0.5": "1/sqrt", "x^-0.5": "1/sqrt", "rsqrt": "1/sqrt",
    "x^(3/2)": "x^1.5", "sqrt(x)^3": "x^1.5",
    "ln": "log",
    "sign": "sgn", "signum": "sgn",
    "asin": "arcsin", "acos": "arccos", "atan": "arctan", "atanh": "arctanh",
    "gauss": "gaussian", "exp(-x^2)": "gaussian", "e^(-x^2)": "gaussian",
    "logistic": "sigmoid", "1/(1+exp(-x))": "sigmoid",
    "zero": "0", "none": "0",
}

_REGISTRY: dict[str, SymbolicFunction] = {}


def default_names() -> list[str]:
    """The 26 built-in names in library order (registered user functions are not included)."""
    return list(LIBRARY)


def registered_names() -> list[str]:
    return list(_REGISTRY)


def register_function(fn: SymbolicFunction) -> None:
    """Make ``fn`` findable by ``get_function(fn.name)``; the same name again replaces it.

    Registered functions shadow built-ins of the same name in :func:`get_function` but never
    change ``LIBRARY`` or :func:`default_names`.
    """
    if not isinstance(fn, SymbolicFunction):
        raise TypeError(f"register_function expects a SymbolicFunction, got {type(fn).__name__}")
    _REGISTRY[fn.name] = fn


def unregister_function(name: str) -> None:
    _REGISTRY.pop(name, None)


def _canonical(name: str) -> str:
    key = name.strip().lower().replace(" ", "").replace("**", "^")
    m = re.fullmatch(r"([a-z0-9/^.]+)\(x\)", key)  # 'sin(x)' -> 'sin', 'x^2(x)' is not a thing
    if m and not key.startswith("exp(-"):
        key = m.group(1)
    key = re.sub(r"^(1/)?x(\d)$", r"\1x^\2", key)  # 'x2' -> 'x^2', '1/x2' -> '1/x^2'
    key = re.sub(r"^x\^\((\d)\)$", r"x^\1", key)  # 'x^(2)'
    return _ALIASES.get(key, key)


def get_function(name: str | SymbolicFunction) -> SymbolicFunction:
    """Look up a candidate by name or alias ('x2', 'x**2', 'sign', 'exp(-x^2)', 'asin', ...).

    Registered user functions are found first by their exact name. Unknown names raise
    ``KeyError`` listing the valid ones.
    """
    if isinstance(name, SymbolicFunction):
        return name
    if not isinstance(name, str):
        raise KeyError(f"function name must be a string, got {type(name).__name__}")
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in LIBRARY:
        return LIBRARY[name]
    key = _canonical(name)
    if key in _REGISTRY:
        return _REGISTRY[key]
    if key in LIBRARY:
        return LIBRARY[key]
    valid = ", ".join(list(LIBRARY) + [n for n in _REGISTRY if n not in LIBRARY])
    raise KeyError(f"unknown symbolic function {name!r}; valid names: {valid}")
