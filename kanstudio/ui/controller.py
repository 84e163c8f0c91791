"""Per-session glue between one :class:`~kanstudio.core.study.Study` and the views.

The controller is the only UI object that talks to the Study. Every Study method takes
``study.lock``, which the training thread holds for each optimiser step (~0.1 s), and a formula
can hold it for seconds; so nothing here waits for that lock on the session's event loop:

- ``poll`` (every ~200 ms on the event loop) only reads ``study.version``; when it moved, a
  *pull* on the study worker thread takes the snapshot, loss history, history list, ... and
  hands them back to the event loop, where they become params the views watch;
- commands (snap, prune, undo, load, ...) run on the same single study worker, in order; their
  results, or their errors as messages in the page, come back to the event loop through
  ``doc.add_next_tick_callback``. Views are never touched from another thread;
- formulas run on their own worker, one at a time, only while not training.
"""
from __future__ import annotations

import logging
import math
import queue
import threading
import time
import traceback
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import param

log = logging.getLogger("kanstudio.ui")

# Server-wide settings, set by ``serve(...)``.
LIMITS = {"max_upload_mb": 200}
SAMPLE_ROWS = 1500  # data samples traced for the inspector


def _error_classes() -> tuple[type[BaseException], ...]:
    """Errors that are the user's to fix: their message is shown as it is."""
    from kanstudio.core.runs import StudyBusy

    return (ValueError, StudyBusy)


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, _error_classes()):
        text = str(exc) or type(exc).__name__
        return text[:1].upper() + text[1:]
    return f"{type(exc).__name__}: {exc}"


def fmt(v: Any, digits: int = 4) -> str:
    """A number for people: 4 significant digits, '–' for missing."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "\u2013"
    if not math.isfinite(v):
        return "\u2013"
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e5:
        return f"{v:.{digits}g}"
    return f"{v:.{max(digits - 1, 1)}e}"


class _Worker:
    """One daemon thread running submitted functions in order (a session's study commands, or
    its formulas). Daemon, so a long SymPy simplification never holds up the server's exit."""

    def __init__(self, name: str):
        self._q: "queue.Queue[tuple[Future, Callable[[], Any]] | None]" = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], Any]) -> Future:
        if self._closed:
            raise RuntimeError("worker is shut down")
        fut: Future = Future()
        self._q.put((fut, fn))
        return fut

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            fut, fn = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                fut.set_exception(e)

    def shutdown(self) -> None:
        self._closed = True
        while True:  # drop what has not started
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].cancel()
        self._q.put(None)


@dataclass
class Pulled:
    """What one pull read from the Study (on the worker, under its lock)."""

    version: int
    snapshot: Any
    events: list
    history: list
    history_index: int
    can_undo: bool
    can_redo: bool
    dataset: Any
    model: Any
    settings: Any


@dataclass(frozen=True)
class DiscoveryState:
    """A copy of a discovery run's progress for the views (taken on the event loop, cheap)."""

    run: Any
    status: str
    lines: tuple
    rows: tuple
    pareto: tuple
    found: tuple
    elapsed: float
    time_limit: float | None
    best_index: int | None
    error: str
    units: Any

    @classmethod
    def of(cls, run) -> "DiscoveryState":
        with run._lock:
            rows = tuple(run.rows)
            lines = tuple(run.lines)
            status, best, error = run.status, run.best_index, run.error
        from kanstudio.core.discovery_run import pareto_flags

        return cls(run, status, lines, rows, tuple(pareto_flags(list(rows))), tuple(run.found), run.elapsed,
                   run.config.time_limit, best, error, run.units)


class Controller(param.Parameterized):
    """State the views watch (params) + the commands they send."""

    snapshot = param.Parameter(default=None, doc="The latest NetworkSnapshot (or None).")
    version = param.Integer(default=-1, doc="study.version of ``snapshot``.")
    data_version = param.Integer(default=0, doc="Bumped whenever the Study's dataset changes.")
    model_version = param.Integer(default=0, doc="Bumped when the model object is replaced.")
    settings = param.Parameter(default=None, doc="study.settings (a frozen Settings).")
    training = param.Boolean(default=False)
    paused = param.Boolean(default=False)
    events = param.List(default=[], doc="study.loss_history, copied.")
    history = param.List(default=[], doc="history labels")
    history_index = param.Integer(default=0)
    can_undo = param.Boolean(default=False)
    can_redo = param.Boolean(default=False)
    messages = param.List(default=[], doc="[(level, text)] shown in the page, newest last.")
    busy = param.String(default="", doc="What a slow action is doing ('' when idle).")
    formula = param.Parameter(default=None, doc="FormulaResult of the current model.")
    formula_status = param.String(default="")
    pareto = param.List(default=[])
    pareto_status = param.String(default="")
    study_version = param.Integer(default=0, doc="Bumped when a study file replaces the Study.")
    discovery = param.Parameter(default=None, doc="DiscoveryState of the latest discovery run (or None).")
    discovering = param.Boolean(default=False)
    units = param.Dict(default={}, doc="study.units (column -> unit text).")

    def __init__(self, study, doc=None, **params):
        super().__init__(**params)
        self.study = study
        self.doc = doc
        self.closed = False
        self._results: "queue.Queue[tuple[Callable | None, Any, BaseException | None]]" = queue.Queue()
        self._pools: dict[str, _Worker] = {}
        self._n_messages = 0
        self._pulling = False
        self._formula_version = None
        self._formula_running = False
        self._samples_cache: tuple | None = None
        self._X_sub = None
        self._X_sub_key = None
        self._last_error_time = 0.0
        self._pending_polls = 0
        self._disc_key = None
        self._disc_time = 0.0

    @property
    def dataset(self):
        """The Study's dataset as of the last pull."""
        return getattr(self, "_dataset", None)

    @property
    def model(self):
        return getattr(self, "_model", None)

    # ------------------------------------------------------------------ messages
    def notify(self, level: str, text: str) -> None:
        text = str(text).strip()
        if not text:
            return
        msgs = list(self.messages[-29:])
        msgs.append((level, text))
        self.messages = msgs

    def clear_messages(self) -> None:
        self.messages = []

    # ------------------------------------------------------------------ threads -> event loop
    def _pool(self, name: str) -> _Worker:
        pool = self._pools.get(name)
        if pool is None:
            pool = self._pools[name] = _Worker(f"kanstudio-{name}")
        return pool

    def submit(self, pool: str, fn: Callable[[], Any], done: Callable[[Any], None] | None = None,
               failed: Callable[[BaseException], None] | None = None) -> Future | None:
        """Run ``fn()`` on worker ``pool``; ``done(result)`` / ``failed(exc)`` then run on the
        session's event loop (without a doc, e.g. in unit tests: right away, on the worker)."""
        if self.closed:
            return None

        def finished(fut: Future) -> None:
            if fut.cancelled():
                return
            exc = fut.exception()
            self._results.put((failed if exc is not None else done,
                               fut.result() if exc is None else None, exc))
            self._wake()

        try:
            fut = self._pool(pool).submit(fn)
        except RuntimeError:  # the session is closing: its pools are shut down
            return None
        fut.add_done_callback(finished)
        return fut

    def soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the session's event loop with the document lock (for raw Bokeh model
        changes from a Panel watcher: Panel runs some widget events, e.g. a Tabulator
        selection, as coroutines without that lock)."""
        doc = self.doc
        if doc is None:
            fn()
            return

        def run():
            from panel.io.state import set_curdoc

            with set_curdoc(doc):
                fn()

        try:
            doc.add_next_tick_callback(run)
        except Exception:  # noqa: BLE001 - the session may be gone
            pass

    def _wake(self) -> None:
        doc = self.doc
        if self.closed:
            return
        if doc is None:
            self.drain()
            return
        try:
            doc.add_next_tick_callback(self._drain_in_doc)
        except Exception:  # noqa: BLE001 - the session may be gone
            pass

    def _drain_in_doc(self) -> None:
        from panel.io.state import set_curdoc

        with set_curdoc(self.doc):
            self.drain()
            self.poll()

    def drain(self) -> None:
        while True:
            try:
                cb, result, exc = self._results.get_nowait()
            except queue.Empty:
                return
            try:
                if exc is not None:
                    if cb is not None:
                        cb(exc)
                    else:
                        self._report_error("", exc)
                elif cb is not None:
                    cb(result)
            except Exception as e:  # noqa: BLE001 - a view bug must not kill the session
                log.exception("callback failed")
                self.notify("error", f"Internal error: {type(e).__name__}: {e}")

    def _report_error(self, label: str, exc: BaseException) -> None:
        if not isinstance(exc, _error_classes()):
            log.error("%s failed:\n%s", label or "command", "".join(traceback.format_exception(exc)))
        self.notify("error", (f"{label}: " if label else "") + describe_error(exc))

    # ------------------------------------------------------------------ commands
    def run(self, label: str, fn: Callable[[], Any], done: Callable[[Any], None] | None = None,
            *, slow: bool = False, edit: bool = True, failed: Callable[[BaseException], None] | None = None) -> bool:
        """Queue a Study command on the study worker. ``edit``: refused up front while training
        (it would only wait for the lock and raise StudyBusy). ``slow``: shows ``busy``."""
        if edit and self.training:
            self.notify("warning", f"{label}: stop training first (the network is changing under you).")
            return False
        if slow:
            if self.busy:
                self.notify("warning", f"Please wait: {self.busy} is still running.")
                return False
            self.busy = label

        def ok(result):
            if slow:
                self.busy = ""
            self._report_info(label, result)
            if done is not None:
                done(result)

        def bad(exc):
            if slow:
                self.busy = ""
            self._report_error(label, exc)
            if failed is not None:
                failed(exc)

        return self.submit("study", fn, ok, bad) is not None

    def query(self, fn: Callable[[], Any], done: Callable[[Any], None],
              failed: Callable[[BaseException], None] | None = None) -> None:
        """A read on the study worker (suggest, samples); errors go to ``failed`` or the page."""
        self.submit("study", fn, done, failed or (lambda e: self._report_error("", e)))

    def _report_info(self, label: str, result: Any) -> None:
        if isinstance(result, dict):
            lists = {k: v for k, v in result.items() if isinstance(v, (list, tuple))}
            # An edit that changed nothing ("0 nodes, 0 edges") is no success: the study's own
            # message already says that nothing was done, once.
            if any(v for k, v in lists.items() if k != "skipped"):
                self.notify("success", f"{label}: " + ", ".join(f"{len(v)} {k}" for k, v in lists.items()) + ".")

    # ------------------------------------------------------------------ polling
    def poll(self) -> None:
        """Cheap check on the event loop: schedule a pull when the Study moved."""
        if self.closed:
            return
        try:
            st = self.study
            training = bool(st.training)
            paused = training and bool(st.training_paused)
            if training != self.training:
                self.training = training
            if paused != self.paused:
                self.paused = paused
            msgs = st.messages
            n = len(msgs)
            if n < self._n_messages:
                self._n_messages = 0
            if n > self._n_messages:
                for m in list(msgs[self._n_messages:n]):
                    level, text = (m[0], m[1]) if isinstance(m, (tuple, list)) and len(m) >= 2 else ("info", m)
                    self.notify(str(level), str(text)[:1].upper() + str(text)[1:])
                self._n_messages = n
            self._poll_discovery(st)
            units = getattr(st, "units", None) or {}
            if units != self.units:
                self.units = dict(units)
            if st.version != self.version and not self._pulling:
                self._pulling = True  # set before submit: without a doc the result may come back at once
                self.submit("study", self._pull, self._apply_pull, self._pull_failed)
            if (not training and not self._pulling and self.version == st.version
                    and self._formula_version != self.version and not self._formula_running):
                self._refresh_formula()
        except Exception as e:  # noqa: BLE001
            self._throttled_error("refreshing", e)

    def _poll_discovery(self, st) -> None:
        """Lock-free: the run's lists only grow, and its version says when they did. While it
        runs, the state is refreshed at least every half second (for the elapsed time)."""
        run = getattr(st, "discovery", None)
        key = None if run is None else (id(run), run.version)
        now = time.monotonic()
        running = run is not None and run.running
        if key != self._disc_key or (running and now - self._disc_time > 0.5):
            self._disc_key, self._disc_time = key, now
            self.discovery = None if run is None else DiscoveryState.of(run)
        if running != self.discovering:
            self.discovering = running

    def _throttled_error(self, what: str, e: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_error_time > 5:
            self._last_error_time = now
            log.exception("%s failed", what)
            self.notify("error", f"Internal error while {what}: {type(e).__name__}: {e}")

    def _pull(self) -> Pulled:
        st = self.study
        with st.lock:
            return Pulled(version=st.version, snapshot=st.snapshot(), events=st.loss_history,
                          history=list(st.history_labels), history_index=int(st.history_index),
                          can_undo=bool(st.can_undo), can_redo=bool(st.can_redo), dataset=st.dataset,
                          model=st.model, settings=st.settings)

    def _pull_failed(self, exc: BaseException) -> None:
        self._pulling = False
        self._throttled_error("reading the study", exc)

    def _apply_pull(self, p: Pulled) -> None:
        self._pulling = False
        if self.closed:
            return
        if p.settings is not self.settings:
            self.settings = p.settings
        if p.dataset is not getattr(self, "_dataset", None):
            self._dataset = p.dataset
            self.data_version += 1
        if p.model is not getattr(self, "_model", None):
            self._model = p.model
            self.model_version += 1
        if len(p.events) != len(self.events) or (p.events and p.events[-1] is not self.events[-1]):
            self.events = p.events
        if p.history != self.history:
            self.history = p.history
        self.history_index = p.history_index
        self.can_undo, self.can_redo = p.can_undo, p.can_redo
        self.snapshot = p.snapshot
        self.version = p.version

    # ------------------------------------------------------------------ inspector data
    def edge_samples(self, l: int, i: int, j: int):
        """``(x, phi)`` of edge i -> j over (a subsample of) the training inputs. Worker thread."""
        st = self.study
        with st.lock:
            model = st.model
            if model is None:
                return None
            key = (st.version, id(model))
            cache = self._samples_cache
            if cache is None or cache[0] != key:
                X = self._subsample(st)
                tr = model.trace(X)
                cache = self._samples_cache = (key, [t.numpy() for t in tr.inputs], [a.numpy() for a in tr.acts])
        _, inputs, acts = cache
        if l >= len(acts) or i >= acts[l].shape[1] or j >= acts[l].shape[2]:
            return None
        return inputs[l][:, i], acts[l][:, i, j]

    def _subsample(self, st) -> np.ndarray:
        ds = st.dataset
        key = id(ds)
        if self._X_sub_key != key:
            train, _ = ds.split_indices()
            if len(train) > SAMPLE_ROWS:
                train = np.sort(np.random.default_rng(0).choice(train, SAMPLE_ROWS, replace=False))
            self._X_sub = ds.frame[list(ds.inputs)].to_numpy(dtype=np.float64)[train]
            self._X_sub_key = key
        return self._X_sub

    # ------------------------------------------------------------------ formula
    def _refresh_formula(self) -> None:
        st = self.study
        version = self.version
        self._formula_version = version
        self.pareto, self.pareto_status = [], ""
        if st.model is None:
            self.formula, self.formula_status = None, "Load data and train to get a formula."
            return
        self.formula_status = "Computing the formula\u2026"

        def done(res):
            self._formula_running = False
            if version == self.version:
                self.formula = res
                self.formula_status = "" if res is not None else "No model yet."

        def failed(exc):
            self._formula_running = False
            if version == self.version:
                self.formula = None
                self.formula_status = f"No formula: {describe_error(exc)}"
            if not isinstance(exc, _error_classes()):
                log.error("formula failed:\n%s", "".join(traceback.format_exception(exc)))

        self._formula_running = True
        self.submit("formula", st.formula, done, failed)

    def compute_pareto(self) -> None:
        if self.training:
            self.notify("warning", "Stop training before computing the Pareto front.")
            return
        version = self.version
        self.pareto_status = "Computing the Pareto front\u2026"

        def done(res):
            if version == self.version:
                self.pareto = list(res or [])
                self.pareto_status = "" if res else "No formulas on the Pareto front."

        def failed(exc):
            self.pareto = []
            self.pareto_status = f"Pareto front unavailable: {describe_error(exc)}"
            if not isinstance(exc, _error_classes()):
                log.error("pareto failed:\n%s", "".join(traceback.format_exception(exc)))

        self.submit("formula", self.study.pareto, done, failed)

    # ------------------------------------------------------------------ a new Study (study file)
    def replace_study(self, new) -> None:
        """Swap in another Study (an uploaded study file); the old one is closed."""
        old = self.study
        self.study = new
        self._n_messages = 0
        self._samples_cache = None
        self._X_sub_key = None
        self._formula_version = None
        self.version = -1
        self.study_version += 1
        self.submit("study", old.close, None, lambda e: log.error("closing the previous study failed: %r", e))
        self.poll()

    # ------------------------------------------------------------------ lifetime
    def close(self, wait: bool = True) -> None:
        """The tab was closed: stop training and let the workers go."""
        if self.closed:
            return
        self.closed = True
        for pool in self._pools.values():
            pool.shutdown()
        study = self.study

        def close_study():
            try:
                study.close()  # stops and joins the training thread
            except Exception:  # noqa: BLE001
                log.exception("study.close failed")

        if wait:
            close_study()
        else:  # from the event loop: do not hold up the other sessions while training stops
            threading.Thread(target=close_study, name="kanstudio-close", daemon=True).start()
