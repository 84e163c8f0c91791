"""Discovery runs of a :class:`~kanstudio.core.study.Study`: the unattended search of
:func:`~kanstudio.core.discover.discover` (views, shapes, structure tests, units) in a background
thread, with its progress lines and finished attempts readable while it goes, a stop switch,
and any attempt's network opened in the Study as one undoable edit.

A run works on a copy of the data taken at its start (the Study's training split; the test split
only reports), so the Study stays editable meanwhile. It counts against the process-wide cap of
background runs (:func:`~kanstudio.core.runs.set_max_concurrent_trainings`): each holds a core.

Readers never wait for the search: the thread appends to lists and bumps ``version``; rows are
formatted once per attempt, in the thread (a formula's text can take SymPy a while).
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from . import runs
from .runs import StudyBusy

if TYPE_CHECKING:
    from .data import Dataset
    from .discover import Attempt, DiscoverConfig, Discovery

__all__ = ["DiscoveryRun", "DiscoveryRuns", "AttemptRow", "attempt_dataset", "pareto_flags", "complete_units"]

MAX_LINES = 400
DEFAULT_TIME_LIMIT = 60.0


@dataclass(frozen=True)
class AttemptRow:
    """One finished attempt as the table shows it."""

    index: int
    label: str
    width: str
    formula: str
    complexity: int | None
    val_rmse: float
    val_r2: float
    seconds: float
    exact: bool
    error: str
    openable: bool  # it has a network the Study can open


def pareto_flags(rows: list[AttemptRow]) -> list[bool]:
    """True for rows no other row beats on both complexity and validation error (as
    :meth:`Discovery.pareto`: sorted by complexity, kept while the error strictly falls)."""
    ok = [r for r in rows if r.complexity is not None and math.isfinite(r.val_rmse)]
    flags = {r.index: False for r in rows}
    best = math.inf
    for r in sorted(ok, key=lambda r: (r.complexity, r.val_rmse, r.index)):
        if r.val_rmse < best:
            flags[r.index] = True
            best = r.val_rmse
    return [flags[r.index] for r in rows]


def complete_units(units: dict | None, dataset: "Dataset") -> dict[str, str] | None:
    """The units of every input and the target, or None when any is missing (unknown)."""
    if not units or dataset is None:
        return None
    cols = [*dataset.inputs, dataset.target]
    got = {c: str(units.get(c, "") or "").strip() for c in cols}
    return got if all(got.values()) else None


def attempt_dataset(dataset: "Dataset", view) -> "Dataset":
    """The Study's dataset as an attempt's network sees it: its view's columns and target
    (``q*v*B``, ``log(F)``, ...), same rows and split. The dataset itself for the identity view."""
    from .data import Dataset

    if view is None or view.is_identity:
        return dataset
    X = dataset.X
    cols = view.transform(X)
    t = view.target(X, dataset.y)
    names = [str(n) for n in view.names]
    target = dataset.target
    if view.factor != 1:
        target = f"{target}/({view.factor})"
    if view.outer == "exp":
        target = f"log({target})"
    while target in names:
        target += "'"
    import pandas as pd

    frame = pd.DataFrame({n: cols[:, k] for k, n in enumerate(names)})
    frame[target] = t
    note = f"columns of the search's view: {view.describe()}"
    return Dataset(frame, tuple(names), target, dataset.test_fraction, dataset.seed,
                   f"{dataset.name} [view]", (note,))


class DiscoveryRun:
    """One background discovery. ``lines``, ``rows``, ``attempts`` grow while it runs;
    ``status``: running | stopping | done | stopped | failed."""

    def __init__(self, dataset: "Dataset", config: "DiscoverConfig", units: dict | None = None):
        self.dataset, self.config, self.units = dataset, config, units
        self.lines: list[str] = []
        self.attempts: list["Attempt"] = []
        self.rows: list[AttemptRow] = []
        self.status = "running"
        self.error = ""
        self.result: "Discovery | None" = None
        self.best_index: int | None = None
        self.version = 0
        self.t0 = time.monotonic()
        self.t_end: float | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="kanstudio-discover", daemon=True)
        self._on_end = None

    # ------------------------------------------------------------------ reading
    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def elapsed(self) -> float:
        return (self.t_end or time.monotonic()) - self.t0

    @property
    def found(self) -> list[str]:
        """What the structure tests and the units found (lines for people)."""
        if self.result is not None and self.result.structure:
            extra = [ln for ln in self.lines if ln.startswith("units")]
            return extra + list(self.result.structure)
        return [ln for ln in self.lines if ln.startswith(("structure", "units"))]

    def pareto(self) -> list[bool]:
        with self._lock:
            return pareto_flags(list(self.rows))

    # ------------------------------------------------------------------ control
    def start(self, on_end=None) -> "DiscoveryRun":
        self._on_end = on_end
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the search to stop: no new attempt starts; the one running finishes first."""
        if self.running and not self._stop.is_set():
            self._stop.set()
            with self._lock:
                if self.status == "running":
                    self.status = "stopping"
                self.version += 1

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------------ the thread
    def _say(self, text: str) -> None:
        with self._lock:
            for ln in str(text).splitlines() or [""]:
                self.lines.append(ln)
            if len(self.lines) > MAX_LINES:
                del self.lines[: len(self.lines) - MAX_LINES]
            self.version += 1

    def _on_attempt(self, a: "Attempt") -> None:
        f = a.formula
        try:
            text = f.sympy_str() if f is not None else ""
        except Exception as e:  # noqa: BLE001 - a row without text beats a lost attempt
            text = f"(formula not printable: {type(e).__name__})"
        row = AttemptRow(len(self.rows), a.label or a.width, a.width, text,
                         int(f.complexity) if f is not None else None,
                         float(a.val_rmse) if f is not None else math.nan,
                         float(f.r2_test) if f is not None else math.nan, float(a.seconds),
                         bool(f.exact) if f is not None else False, a.error, a.model is not None)
        with self._lock:
            self.attempts.append(a)
            self.rows.append(row)
            self.version += 1

    def _run(self) -> None:
        from .discover import discover

        ds = self.dataset
        try:
            Xtr, ytr, Xte, yte = ds.split()
            res = discover(Xtr, ytr, list(ds.inputs), ds.target, Xte if len(Xte) else None,
                           yte if len(yte) else None, config=self.config, progress=self._say, units=self.units,
                           on_attempt=self._on_attempt, stop=self._stop.is_set)
        except BaseException as e:  # noqa: BLE001 - the thread must end with a status, never silently
            with self._lock:
                stopped = self._stop.is_set()
                self.status = "stopped" if stopped else "failed"
                self.error = "" if stopped and isinstance(e, RuntimeError) else f"{type(e).__name__}: {e}"
                if self.error:
                    self.lines.append(f"failed: {self.error}")
                self.t_end = time.monotonic()
                self.version += 1
        else:
            with self._lock:
                self.result = res
                self.best_index = next((k for k, a in enumerate(self.attempts) if a is res.best), None)
                self.status = "stopped" if self._stop.is_set() else "done"
                self.t_end = time.monotonic()
                self.version += 1
        finally:
            if self._on_end is not None:
                try:
                    self._on_end(self)
                except Exception:  # noqa: BLE001
                    pass


_CONFIG_FIELDS = None


def _config_fields() -> set[str]:
    global _CONFIG_FIELDS
    if _CONFIG_FIELDS is None:
        from .discover import DiscoverConfig

        _CONFIG_FIELDS = {f.name for f in fields(DiscoverConfig)}
    return _CONFIG_FIELDS


class DiscoveryRuns:
    """The discovery half of :class:`~kanstudio.core.study.Study` (a mixin, like
    :class:`~kanstudio.core.runs.TrainingRuns`). Relies on ``lock``, ``dataset``, ``settings``,
    ``units``, ``_edit(fn, label_fn, spec_fn, what=)``, ``_log`` and ``_bump``."""

    def _init_discovery(self) -> None:
        self._discovery: DiscoveryRun | None = None

    @property
    def discovery(self) -> DiscoveryRun | None:
        """The latest discovery run (running or finished), or None."""
        return self._discovery

    @property
    def discovering(self) -> bool:
        d = self._discovery
        return d is not None and d.running

    def set_units(self, units: dict | None) -> dict[str, str]:
        """Each column's physical units (``{"v": "m/s", "F": "N"}``; '' = unknown). Checked
        here (``ValueError`` names the column); used by discovery when every column has one."""
        from .units import parse_unit

        clean: dict[str, str] = {}
        for k, v in (units or {}).items():
            text = str(v or "").strip()
            if not text:
                continue
            try:
                parse_unit(text)
            except ValueError as e:
                raise ValueError(f"the units {text!r} of column {k!r} cannot be read: {e}") from None
            clean[str(k)] = text
        with self.lock:
            if clean != self.units:
                self.units = clean
                self._bump()
        return dict(clean)

    def start_discovery(self, time_limit: float | None = DEFAULT_TIME_LIMIT, units: Any = "auto",
                        **config) -> DiscoveryRun:
        """Search views and shapes for a formula of the data in a background thread.
        ``units='auto'``: the study's units when every column has one (else none); ``None``: none;
        a mapping: those. ``config``: other :class:`DiscoverConfig` fields (seed defaults to the
        setting)."""
        from .discover import DiscoverConfig

        unknown = sorted(set(config) - _config_fields())
        if unknown:
            raise ValueError(f"unknown discovery option(s) {', '.join(map(repr, unknown))}")
        if time_limit is not None and (not isinstance(time_limit, (int, float)) or not time_limit > 0):
            raise ValueError(f"the time limit must be a number of seconds > 0, got {time_limit!r}")
        with self.lock:
            if self.dataset is None:
                raise ValueError("there is no data yet: load a CSV first")
            if self.discovering:
                raise StudyBusy("a discovery is already running: stop it or wait for it first")
            ds = self.dataset
            if isinstance(units, str) and units == "auto":
                units = complete_units(self.units, ds)
            cfg = replace(DiscoverConfig(), time_limit=None if time_limit is None else float(time_limit),
                          seed=int(self.settings.seed), **config)
            run = DiscoveryRun(ds, cfg, units)
            with runs._CAP_LOCK:
                if len(runs._ACTIVE) >= runs.max_concurrent_trainings():
                    n = len(runs._ACTIVE)
                    raise StudyBusy(f"{n} background run{'s are' if n != 1 else ' is'} already going (the limit "
                                    f"is {runs.max_concurrent_trainings()}); wait for one to finish and try again")
                runs._ACTIVE.add(run)
            self._discovery = run

            def ended(r):
                with runs._CAP_LOCK:
                    runs._ACTIVE.discard(r)
                with self.lock:
                    self._bump()
                    if r.status == "failed":
                        self._log("error", f"discovery failed: {r.error}")
                    else:
                        n = sum(1 for row in r.rows if row.complexity is not None)
                        self._log("info", f"discovery {r.status}: {n} attempt(s) in {r.elapsed:.1f} s")

            try:
                run.start(on_end=ended)
            except BaseException:
                with runs._CAP_LOCK:
                    runs._ACTIVE.discard(run)
                self._discovery = None
                raise
            self._bump()
            return run

    def stop_discovery(self, wait: bool = False, timeout: float | None = None) -> None:
        run = self._discovery
        if run is None:
            return
        run.stop()
        if wait:
            run.join(timeout)

    def open_attempt(self, index: int) -> "Attempt":
        """Make attempt ``index`` of the latest discovery the study's model (on its view's columns
        when the search transformed the data): one undoable edit."""
        run = self._discovery
        if run is None:
            raise ValueError("there is no discovery to open an attempt from: run Discover first")
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(run.attempts):
            raise ValueError(f"there is no attempt {index!r} (the discovery has {len(run.attempts)})")
        a = run.attempts[int(index)]
        if a.model is None:
            raise ValueError(f"attempt {index + 1} ({a.label or a.width}) has no network to open"
                             + (f": {a.error}" if a.error else ""))
        with self.lock:
            self._check_idle("open a discovery attempt")
            if self.dataset is not run.dataset and self.dataset is not None and \
                    (self.dataset.inputs != run.dataset.inputs or self.dataset.target != run.dataset.target):
                raise ValueError("the data changed since this discovery ran; run Discover again")
            ds = attempt_dataset(run.dataset, a.view)
            model = a.model.copy()
            formula = run.rows[int(index)].formula

            def do():
                self.dataset = ds
                self.model = model.set_data(ds)
                for w in ds.warnings:
                    self._log("info", w)

            short = formula if len(formula) <= 60 else formula[:59] + "\u2026"
            self._edit(do, lambda _: f"open discovery attempt {index + 1} [{a.width}]: {short}",
                       lambda _: {"op": "open_attempt", "args": {"index": int(index), "width": a.width,
                                                                 "label": a.label}},
                       what="open a discovery attempt")
            return a
