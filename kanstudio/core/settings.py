"""Settings: how a :class:`~kanstudio.core.study.Study` builds and trains its models.

A frozen dataclass validated on construction, so a bad value is refused where it is typed (the
settings form, a study file, a replay script) with a message naming the setting, rather than deep
inside training. Kept apart from the Study because the study file and replay scripts read and
write settings without needing the editing machinery.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from .network import format_width, parse_width
from .train import OPTIMIZERS

__all__ = ["Settings", "DEVICES"]

DEVICES = ("cpu", "cuda", "auto")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Settings:
    """How models are built and trained. Validated on construction (``ValueError`` otherwise).

    ``width``: e.g. ``"2,5,1"`` or ``"2,3+1x,1"`` (product nodes); ``None`` = ``[n, min(2n+1, 9), 1]``
    from the number of inputs. ``steps``/``opt``/``lr``/``lamb*``/``batch``: the training defaults.
    ``r2_threshold``/``lib``: auto-symbolic defaults (``lib=None``: every built-in function).
    ``device``: ``'cpu'`` (default: tiny networks are fastest there, and results are exact
    across machines), ``'cuda'`` or ``'auto'``.
    """

    width: str | None = None
    grid: int = 5
    k: int = 3
    seed: int = 0
    steps: int = 50
    opt: str = "lbfgs"
    lr: float | None = None
    lamb: float = 1e-3
    lamb_l1: float = 1.0
    lamb_entropy: float = 1.0
    batch: int | None = None
    r2_threshold: float = 0.99
    lib: tuple[str, ...] | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        def bad(name, want):
            raise ValueError(f"setting {name!r} must be {want}; got {getattr(self, name)!r}")

        w = self.width
        if w is not None:
            if isinstance(w, (list, tuple)) or (isinstance(w, str) and w.strip()):
                try:
                    w = format_width(parse_width(w))
                except (ValueError, TypeError) as e:
                    raise ValueError(f"setting 'width' {self.width!r} is not a network width like '2,5,1' "
                                     f"or '2,3+1x,1' ({e})") from None
                object.__setattr__(self, "width", w)
            elif isinstance(w, str):
                object.__setattr__(self, "width", None)  # '' means auto
            else:
                bad("width", "a string like '2,5,1' or None (auto)")
        for name, lo, hi in (("grid", 1, 1000), ("k", 1, 10), ("seed", 0, 2**63 - 1), ("steps", 1, 10**7)):
            v = getattr(self, name)
            if not _is_int(v) or not lo <= v <= hi:
                bad(name, f"an integer between {lo} and {hi}")
            object.__setattr__(self, name, int(v))
        if self.opt not in OPTIMIZERS:
            bad("opt", f"one of {', '.join(OPTIMIZERS)}")
        if self.lr is not None:
            if not _is_num(self.lr) or self.lr <= 0:
                bad("lr", "a number > 0, or None (the optimiser's default)")
            object.__setattr__(self, "lr", float(self.lr))
        for name in ("lamb", "lamb_l1", "lamb_entropy"):
            v = getattr(self, name)
            if not _is_num(v) or v < 0:
                bad(name, "a finite number >= 0")
            object.__setattr__(self, name, float(v))
        if self.batch is not None:
            if not _is_int(self.batch) or self.batch < 1:
                bad("batch", "an integer >= 1, or None (min(256, rows))")
            object.__setattr__(self, "batch", int(self.batch))
        if not _is_num(self.r2_threshold) or not 0 <= self.r2_threshold <= 1:
            bad("r2_threshold", "a number between 0 and 1")
        object.__setattr__(self, "r2_threshold", float(self.r2_threshold))
        if self.lib is not None:
            lib = (self.lib,) if isinstance(self.lib, str) else self.lib
            if not isinstance(lib, (list, tuple)) or not lib or not all(isinstance(n, str) for n in lib):
                bad("lib", "a non-empty list of function names, or None (all built-ins)")
            _check_lib(lib)
            object.__setattr__(self, "lib", tuple(lib))
        if self.device not in DEVICES:
            bad("device", f"one of {', '.join(DEVICES)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lib"] = list(self.lib) if self.lib is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Settings":
        if not isinstance(d, dict):
            raise ValueError("settings must be a mapping")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(map(repr, unknown))}; "
                             f"valid: {', '.join(sorted(known))}")
        d = dict(d)
        if isinstance(d.get("lib"), list):
            d["lib"] = tuple(d["lib"])
        return cls(**d)


def _check_lib(lib) -> None:
    from .symbolic import get_function

    for n in lib:
        try:
            get_function(n)
        except KeyError as e:
            raise ValueError(str(e.args[0]) if e.args else f"unknown function {n!r}") from None
