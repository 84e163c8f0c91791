"""Symbolic candidates for KAN edges: the library, user expressions, and the affine fit."""
from .affine import Candidate, fit_affine, fit_one, score
from .library import (
    LIBRARY,
    SymbolicFunction,
    default_names,
    get_function,
    register_function,
    registered_names,
    unregister_function,
)
from .parse import parse_function

__all__ = [
    "SymbolicFunction",
    "LIBRARY",
    "get_function",
    "register_function",
    "unregister_function",
    "registered_names",
    "default_names",
    "parse_function",
    "Candidate",
    "fit_affine",
    "fit_one",
    "score",
]
