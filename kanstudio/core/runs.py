"""Training runs of a :class:`~kanstudio.core.study.Study`, in the caller's thread or in the background.

A run is one recorded edit however it ends (done, stopped, failed): the state before it is kept
so that a run that did nothing, or broke half-way, puts the model back exactly. Background runs
are capped process-wide (:func:`set_max_concurrent_trainings`) because every browser tab may start
one and each holds a CPU core. Kept apart from the Study because the threading (the training
thread's events, joining without deadlock, the cap) is a concern of its own; the Study gets it
by inheriting :class:`TrainingRuns`.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .history import State
from .settings import _is_int
from .train import Trainer, TrainConfig, TrainEvent, TrainResult, train as _train

if TYPE_CHECKING:
    from .study import Study

__all__ = ["TrainingRuns", "StudyBusy", "set_max_concurrent_trainings", "max_concurrent_trainings",
           "active_trainings", "MAX_LOSS_HISTORY", "TRAIN_OVERRIDES"]

MAX_LOSS_HISTORY = 4000
# edits after which an earlier training's loss curve no longer describes the model
_NEW_NETWORK_OPS = ("set_data", "set_roles", "reset_model", "open_attempt")
TRAIN_OVERRIDES = ("opt", "lr", "lamb", "lamb_l1", "lamb_entropy", "batch", "update_grid", "seed")


class StudyBusy(RuntimeError):
    """The study cannot do this now (it is training, or too many studies are training)."""


# --------------------------------------------------------------------------- the global training cap

_CAP_LOCK = threading.Lock()
_ACTIVE: set = set()  # runs in progress, across all studies of this process
_MAX_CONCURRENT = 4


def set_max_concurrent_trainings(n: int) -> None:
    """At most ``n`` background training runs at once in this process (all studies together)."""
    global _MAX_CONCURRENT
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the training cap must be an integer >= 1, got {n!r}")
    with _CAP_LOCK:
        _MAX_CONCURRENT = n


def max_concurrent_trainings() -> int:
    return _MAX_CONCURRENT


def active_trainings() -> int:
    with _CAP_LOCK:
        return len(_ACTIVE)


# --------------------------------------------------------------------------- a background run

class _Run:
    def __init__(self, study: "Study", trainer: Trainer, before: State, config: TrainConfig, label: str):
        self.study, self.trainer, self.before, self.config, self.label = study, trainer, before, config, label
        self.settings = study.settings.to_dict()
        self.finished = False
        self.result: TrainResult | None = None


# --------------------------------------------------------------------------- the Study's training methods

class TrainingRuns:
    """The training half of :class:`~kanstudio.core.study.Study` (a mixin; not used on its own).

    It owns ``_run`` (the background run in progress, or None), ``_last_run``, ``_loss`` (the
    events of the latest run) and ``_last_event``, set up by :meth:`_init_runs`. From the Study it
    relies on: ``lock`` (an RLock the training thread holds for each step), ``settings``, ``model``,
    ``_history`` (its applied entries carry each training's loss events),
    ``_require_model()``, ``_state()`` (the current State), ``_restore_quietly(state)``,
    ``_record(label, spec, before, info=, settings=)`` (push a history entry), ``_log(level, text)``
    and ``_bump()`` (a new version).
    """

    def _init_runs(self) -> None:
        self._run: _Run | None = None
        self._last_run: _Run | None = None
        self._loss: list[TrainEvent] = []
        self._last_event: TrainEvent | None = None

    def _check_idle(self, what: str = "edit the model") -> None:
        if self._run is not None:
            raise StudyBusy(f"cannot {what} while training is running: stop (or wait for) training first")

    def _train_config(self, steps, overrides: dict) -> TrainConfig:
        unknown = sorted(set(overrides) - set(TRAIN_OVERRIDES))
        if unknown:
            raise ValueError(f"unknown training option(s) {', '.join(map(repr, unknown))}; "
                             f"valid: steps, {', '.join(TRAIN_OVERRIDES)}")
        s = self.settings
        steps = s.steps if steps is None else steps
        if not _is_int(steps) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        self._require_model()
        vals = {"opt": s.opt, "lr": s.lr, "lamb": s.lamb, "lamb_l1": s.lamb_l1, "lamb_entropy": s.lamb_entropy,
                "batch": s.batch, "update_grid": True, "seed": s.seed}
        vals.update(overrides)  # an explicit None (lr, batch) means "the optimiser's default"
        if vals["batch"] is not None and (not _is_int(vals["batch"]) or vals["batch"] < 1):
            raise ValueError(f"batch must be an integer >= 1 or None, got {vals['batch']!r}")
        if not _is_int(vals["seed"]) or vals["seed"] < 0:
            raise ValueError(f"seed must be an integer >= 0, got {vals['seed']!r}")
        vals["update_grid"] = bool(vals["update_grid"])
        return TrainConfig(steps=int(steps), **vals).validate()

    @staticmethod
    def _train_spec(cfg: TrainConfig, steps_done: int) -> dict:
        args = {"steps": steps_done}
        args.update({k: getattr(cfg, k) for k in TRAIN_OVERRIDES})
        return {"op": "train", "args": args}

    @staticmethod
    def _train_label(cfg: TrainConfig, steps_done: int, status: str) -> str:
        what = "refit" if cfg.lamb == 0 and not cfg.update_grid else "train"
        n = f"{steps_done} steps" if steps_done == cfg.steps else f"{steps_done}/{cfg.steps} steps"
        extra = f", λ={cfg.lamb:g}" if cfg.lamb else ""
        tail = "" if status == "done" else f" ({status})"
        return f"{what} {n} ({cfg.opt}{extra}){tail}"

    def train(self, steps: int | None = None, **overrides) -> TrainResult:
        """Train in this thread (an edit). ``steps`` defaults to the setting; ``overrides``: opt, lr,
        lamb, lamb_l1, lamb_entropy, batch (default: the settings), update_grid (True), seed
        (settings.seed). Holds the lock throughout, so other threads wait."""
        with self.lock:
            self._check_idle("train")
            cfg = self._train_config(steps, overrides)
            model = self.model
            before = self._state()
            self._loss = []

            def on_event(ev: TrainEvent) -> None:
                self._push_event(ev)

            try:
                res = _train(model.net, model.X_train_, model.y_train_, model.X_test_, model.y_test_, cfg,
                             on_event=on_event, lock=self.lock)
            except BaseException:
                self._restore_quietly(before)
                raise
            model.train_result_ = res
            self._finish_message(res.status, res.steps, res.message)
            if res.steps > 0:
                self._record(self._train_label(cfg, res.steps, res.status), self._train_spec(cfg, res.steps),
                             before, info={"status": res.status}, loss=self._loss)
            else:
                self._restore_quietly(before)
            return res

    def refit(self, steps: int = 50) -> TrainResult:
        """Train every parameter (snapped (a, b, c, d) included) without the sparsity penalty
        and without moving the grids: polishes constants after snapping/pruning."""
        return self.train(steps, lamb=0.0, update_grid=False)

    # ---------------------------------------------------------------- background training
    def start_training(self, steps: int | None = None, **overrides) -> None:
        """Train in a background thread; the run becomes one history entry when it ends.
        ``StudyBusy`` if this study is training, or the process-wide cap is reached."""
        with self.lock:
            self._check_idle("start training")
            if self.model is None:
                raise ValueError("there is no data yet: load a CSV first")
            cfg = self._train_config(steps, overrides)
            model = self.model
            before = self._state()
            with _CAP_LOCK:
                if len(_ACTIVE) >= _MAX_CONCURRENT:
                    raise StudyBusy(f"{len(_ACTIVE)} training run{'s are' if len(_ACTIVE) != 1 else ' is'} already going (the limit is "
                                    f"{_MAX_CONCURRENT}); wait for one to finish and try again")
                run = _Run(self, None, before, cfg, "")  # type: ignore[arg-type]
                _ACTIVE.add(run)
            try:
                run.trainer = Trainer(model.net, model.X_train_, model.y_train_, model.X_test_, model.y_test_,
                                      cfg, on_event=lambda ev: self._on_bg_event(run, ev), lock=self.lock)
                self._run = run
                self._loss = []
                self._last_event = None
                self._bump()
                run.trainer.start()
            except BaseException:
                self._run = None
                with _CAP_LOCK:
                    _ACTIVE.discard(run)
                raise

    def _push_event(self, ev: TrainEvent) -> None:
        self._last_event = ev
        self._loss.append(ev)
        if len(self._loss) > MAX_LOSS_HISTORY:  # thin the older half, keep the recent detail
            half = len(self._loss) // 2
            self._loss = self._loss[:half:2] + self._loss[half:]
        self._bump()

    def _on_bg_event(self, run: _Run, ev: TrainEvent) -> None:
        # Called in the training thread: short, and never raises (it would abort the run).
        try:
            with self.lock:
                if run.finished or run is not self._run:
                    return
                self._push_event(ev)
                if ev.kind in ("done", "stopped", "failed"):
                    self._finish_run(run, ev)
        except Exception as e:  # pragma: no cover - defensive
            try:
                self._log("error", f"internal error after a training event: {type(e).__name__}: {e}")
            except Exception:
                pass

    def _finish_run(self, run: _Run, ev: TrainEvent | None) -> None:
        """Turn a finished background run into one history entry (under the lock)."""
        if run.finished:
            return
        run.finished = True
        try:
            tr = run.trainer
            status = ev.kind if ev is not None else "failed"
            steps = ev.step if ev is not None else 0
            if tr.error is not None:  # an exception inside the loop: the model may be half-stepped
                steps = 0
            message = ev.message if ev is not None else "the training thread ended without a result"
            run.result = TrainResult(status=status, steps=steps, history=list(self._loss), message=message)
            self._finish_message(status, steps, message)
            if steps > 0:
                if self.model is not None:
                    self.model.train_result_ = run.result
                self._record(self._train_label(run.config, steps, status), self._train_spec(run.config, steps),
                             run.before, info={"status": status}, settings=run.settings, loss=self._loss)
            else:
                self._restore_quietly(run.before)
        finally:
            self._run = None
            self._last_run = run
            with _CAP_LOCK:
                _ACTIVE.discard(run)

    def _finish_message(self, status: str, steps: int, message: str) -> None:
        if status == "failed":
            self._log("error", f"training failed after {steps} step(s): {message}")
        elif status == "stopped":
            self._log("info", f"training stopped after {steps} step(s)" + (f": {message}" if message else ""))
        else:
            self._log("info", f"training done: {steps} step(s)")

    def pause_training(self) -> None:
        run = self._run
        if run is not None:
            run.trainer.pause()
            with self.lock:
                self._bump()

    def resume_training(self) -> None:
        run = self._run
        if run is not None:
            run.trainer.resume()
            with self.lock:
                self._bump()

    def stop_training(self, wait: bool = True) -> None:
        """Ask the run to stop (it keeps the steps done); with ``wait``, return once it has."""
        run = self._run
        if run is None:
            return
        run.trainer.stop(join=False)
        if wait:
            self._join(run, None)

    def _join(self, run: _Run, timeout: float | None) -> bool:
        # Never hold self.lock here: the training thread needs it to finish.
        if getattr(self.lock, "_is_owned", lambda: False)() and run.trainer.running:
            raise RuntimeError("wait for or stop training without holding study.lock: the training thread "
                               "needs the lock to finish (this would deadlock)")
        run.trainer.join(timeout)
        if run.trainer.running:
            return False
        if not run.finished:  # the thread ended without a final event (should not happen)
            with self.lock:
                self._finish_run(run, None)
        return True

    def wait_training(self, timeout: float | None = None) -> TrainResult | None:
        """Block until the current run ends; its result (or the last run's), ``None`` on timeout
        or when nothing was ever trained in the background."""
        run = self._run or self._last_run
        if run is None:
            return None
        if not self._join(run, timeout):
            return None
        return run.result

    @property
    def training(self) -> bool:
        return self._run is not None

    @property
    def training_paused(self) -> bool:
        run = self._run
        return run is not None and run.trainer.control.paused

    @property
    def loss_history(self) -> list[TrainEvent]:
        """The loss events of the training behind the current state: the run in progress, else
        the latest training among the applied edits, unless data or a fresh network came after it
        (then none). So undo, redo and loading data move the loss curve with the model."""
        with self.lock:
            if self._run is not None:
                return list(self._loss)
            for e in reversed(self._history.applied):
                op = e.spec.get("op")
                if op == "train":
                    return list(e.loss)
                if op in _NEW_NETWORK_OPS:
                    return []
            return []

    @property
    def last_event(self) -> TrainEvent | None:
        return self._last_event
