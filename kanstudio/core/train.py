"""Training: LBFGS (full batch) or Adam (mini-batch) with the sparsity penalty and grid updates,
in the caller's thread (:func:`train`) or a background thread (:class:`Trainer`).

Guarantees: a step that produces NaN/inf is undone (the model returns to the last good state and
an event says so); a stop request, even in the middle of an LBFGS line search, leaves the model
exactly as it was after the last completed step; progress events come at a bounded rate.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from .lbfgs import FlatLBFGS as _FlatLBFGS
from .network import KANNetwork
from .objective import FusedObjective
from .regularize import sparsity_penalty

OPTIMIZERS = ("lbfgs", "adam")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 50
    opt: str = "lbfgs"
    lr: float | None = None  # None: 1.0 for LBFGS, 1e-2 for Adam
    lamb: float = 0.0  # weight of the sparsity penalty
    lamb_l1: float = 1.0  # mu1
    lamb_entropy: float = 1.0  # mu2, the KAN paper's default (pykan's fit() uses 2)
    batch: int | None = None  # Adam mini-batch size (None: min(256, n)); LBFGS is full batch
    update_grid: bool = True
    grid_update_num: int = 10
    stop_grid_update_step: int = 50
    grid_eps: float = 0.02
    seed: int = 0
    lbfgs_max_iter: int = 20
    max_event_rate: float = 10.0  # progress events per second, at most
    time_limit: float | None = None  # seconds
    max_rollbacks: int = 5

    def validate(self) -> "TrainConfig":
        if self.opt not in OPTIMIZERS:
            raise ValueError(f"opt must be one of {OPTIMIZERS}, got {self.opt!r}")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        for name in ("lamb", "lamb_l1", "lamb_entropy"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be > 0, got {self.lr}")
        return self


@dataclass(frozen=True)
class TrainEvent:
    """``kind``: start | progress | rollback | done | stopped | failed. Losses are RMSE."""

    kind: str
    step: int
    total: int
    train_loss: float = math.nan
    test_loss: float = math.nan
    reg: float = 0.0
    elapsed: float = 0.0
    message: str = ""


@dataclass
class TrainResult:
    status: str  # done | stopped | failed
    steps: int
    history: list[TrainEvent] = field(default_factory=list)
    rollbacks: int = 0
    message: str = ""


class _Interrupted(Exception):
    pass


class TrainControl:
    """Stop/pause switches shared between a training loop and whoever drives it."""

    def __init__(self):
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # a paused loop must wake up to see the stop

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self) -> None:
        while not self._running.wait(0.1):
            pass


def _as_tensor(a, net: KANNetwork) -> torch.Tensor:
    t = torch.as_tensor(a, dtype=net.dtype)
    return t.to(net.device)


class _Snapshot:
    """The model's state (parameters and buffers) before a step, for rollback. Copies into
    buffers allocated once (re-allocated only when a shape changes), so taking one every step
    costs a few memcpy's, not a state-dict of fresh clones."""

    def __init__(self):
        self.saved: dict[str, torch.Tensor] = {}

    def take(self, net: KANNetwork) -> "_Snapshot":
        with torch.no_grad():
            for k, v in net.state_dict(keep_vars=True).items():
                b = self.saved.get(k)
                if b is None or b.shape != v.shape or b.dtype != v.dtype or b.device != v.device:
                    self.saved[k] = v.detach().clone()
                else:
                    b.copy_(v)
        return self


def _snapshot(net: KANNetwork) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _finite(net: KANNetwork) -> bool:
    """All parameters finite, with one synchronisation (a NaN/inf anywhere makes the sum non-finite)."""
    sums = [p.detach().sum() for p in net.parameters()]
    return bool(torch.isfinite(torch.stack(sums)).all()) if sums else True


def _restore(net: KANNetwork, state) -> None:
    state = state.saved if isinstance(state, _Snapshot) else state
    with torch.no_grad():
        for k, v in net.state_dict().items():
            v.copy_(state[k])


def _forward_magnitudes(net: KANNetwork, x: torch.Tensor, out_affine: bool):
    """Network output and every layer's edge magnitudes ``(n_in, n_out)`` (mean |phi| over the
    batch), without keeping the ``(batch, n_in, n_out)`` activations around."""
    h = net.normalize_input(x)
    mags = []
    for layer in net.layers:
        h, m = layer.forward_magnitudes(h)
        mags.append(m)
    return (h * net.out_scale + net.out_shift if out_affine else h), mags


def train(
    net: KANNetwork,
    X_train,
    y_train,
    X_test=None,
    y_test=None,
    config: TrainConfig = TrainConfig(),
    on_event: Callable[[TrainEvent], None] | None = None,
    control: TrainControl | None = None,
    lock: threading.RLock | None = None,
) -> TrainResult:
    """Train ``net`` in place. ``y`` may be ``(n,)`` or ``(n, n_out)``. Never raises on NaN."""
    config.validate()
    control = control or TrainControl()
    lock = lock or threading.RLock()
    X = _as_tensor(X_train, net)
    y = _as_tensor(y_train, net).reshape(X.shape[0], -1)
    Xt = _as_tensor(X_test, net) if X_test is not None and len(X_test) else None
    yt = _as_tensor(y_test, net).reshape(Xt.shape[0], -1) if Xt is not None else None
    n = X.shape[0]
    gen = torch.Generator().manual_seed(config.seed)
    layers = list(net.layers)
    t0 = time.perf_counter()
    result = TrainResult(status="done", steps=0)
    last_emit = -math.inf

    def emit(kind: str, step: int, train_rmse: float, reg: float, message: str = "") -> None:
        nonlocal last_emit
        test = math.nan
        if Xt is not None:
            with torch.no_grad():
                test = float(torch.sqrt(torch.mean((net(Xt) - yt) ** 2)))
        ev = TrainEvent(kind, step, config.steps, train_rmse, test, reg, time.perf_counter() - t0, message)
        result.history.append(ev)
        last_emit = time.perf_counter()
        if on_event is not None:
            on_event(ev)

    out_affine = not (bool((net.out_scale == 1).all()) and bool((net.out_shift == 0).all()))
    zero = torch.zeros((), dtype=X.dtype, device=X.device)

    def objective(idx: torch.Tensor | None):
        xb, yb = (X, y) if idx is None else (X[idx], y[idx])
        if config.lamb > 0:
            pred, mags = _forward_magnitudes(net, xb, out_affine)
            reg = sparsity_penalty(mags, layers, config.lamb_l1, config.lamb_entropy)
            mse = F.mse_loss(pred, yb)
            return mse + config.lamb * reg, mse, reg
        mse = F.mse_loss(net(xb), yb)
        return mse, mse, zero

    def make_optimizer(lr_scale: float = 1.0):
        params = [p for p in net.parameters() if p.requires_grad]
        if config.opt == "lbfgs" and _FlatLBFGS.supports(params):
            return _FlatLBFGS(params, lr=(config.lr or 1.0) * lr_scale, max_iter=config.lbfgs_max_iter,
                              history_size=10, tolerance_grad=1e-32, tolerance_change=1e-32)
        if config.opt == "lbfgs":
            return torch.optim.LBFGS(params, lr=(config.lr or 1.0) * lr_scale, max_iter=config.lbfgs_max_iter,
                                     history_size=10, line_search_fn="strong_wolfe",
                                     tolerance_grad=1e-32, tolerance_change=1e-32)
        return torch.optim.Adam(params, lr=(config.lr or 1e-2) * lr_scale)

    fused_cache: list = [None, None]  # (optimizer, its FusedObjective or None)

    def fused_for(opt):
        """The hand-differentiated objective for plain spline networks on CPU (see objective.py);
        None means autograd. Built once per optimiser, whose parameter list it indexes."""
        if fused_cache[0] is not opt:
            ok = isinstance(opt, _FlatLBFGS) and FusedObjective.supports(net, opt.params)
            fused_cache[:] = [opt, FusedObjective.for_network(net, X, y, opt.params, config.lamb, config.lamb_l1,
                                                              config.lamb_entropy) if ok else None]
        return fused_cache[1]

    lr_scale = 1.0
    opt = make_optimizer()
    grid_every = max(1, config.stop_grid_update_step // max(1, config.grid_update_num))
    batch = min(n, config.batch or 256)
    emit("start", 0, math.nan, 0.0)
    snap = _Snapshot()
    last_mse, last_reg = math.nan, 0.0
    mse_is_current = False  # last_mse is the training mse of the model as it is now
    step = 0
    shown = 0  # the step of the last progress event
    while step < config.steps:
        if control.paused and step != shown:
            # Progress events are throttled: without this one, the steps done since the last
            # event would only show up after the pause (a Stop from pause seemed to run on).
            emit("progress", step, math.sqrt(max(last_mse, 0.0)), last_reg)
            shown = step
        control.wait_while_paused()
        if control.stop_requested:
            result.status = "stopped"
            break
        if config.time_limit is not None and time.perf_counter() - t0 > config.time_limit:
            result.status, result.message = "stopped", f"time limit of {config.time_limit:g} s reached"
            break
        with lock:
            good = snap.take(net)
            try:
                if config.update_grid and step % grid_every == 0 and step < config.stop_grid_update_step:
                    net.update_grid(X, config.grid_eps)
                if config.opt == "lbfgs":
                    stats = {}
                    fused = fused_for(opt)

                    def closure():
                        if control.stop_requested:
                            raise _Interrupted
                        if fused is not None:
                            loss, grad, stats["mse"], stats["reg"] = fused()
                            stats["x"] = opt.flat.numpy().copy()  # where mse was measured
                            return loss, grad
                        opt.zero_grad()
                        loss, mse, reg = objective(None)
                        loss.backward()
                        stats["mse"], stats["reg"] = float(mse.detach()), float(reg.detach())
                        return loss

                    opt.step(closure)
                    prev = last_mse + config.lamb * last_reg
                    last_mse, last_reg = stats.get("mse", math.nan), stats.get("reg", 0.0)
                    # The line search usually ends on the point it accepts; then the last
                    # evaluation's mse is the model's and the final RMSE needs no forward pass.
                    mse_is_current = "x" in stats and np.array_equal(stats["x"], opt.flat.numpy())
                    if math.isfinite(prev) and not (last_mse + config.lamb * last_reg < prev * (1 - 1e-9)):
                        # No progress in a whole step: the curvature memory is stale (product
                        # nodes' scale symmetry does this), so restart LBFGS from here.
                        opt = make_optimizer(lr_scale)
                else:
                    idx = torch.randint(0, n, (batch,), generator=gen).to(X.device)
                    opt.zero_grad()
                    loss, mse, reg = objective(idx)
                    loss.backward()
                    opt.step()
                    last_mse, last_reg = float(mse.detach()), float(reg.detach())
                    mse_is_current = False  # measured before the step
            except _Interrupted:
                _restore(net, good)
                mse_is_current = False
                result.status = "stopped"
                break
            ok = math.isfinite(last_mse) and math.isfinite(last_reg) and _finite(net)
            if not ok:
                _restore(net, good)
                mse_is_current = False
                result.rollbacks += 1
                lr_scale *= 0.5
                opt = make_optimizer(lr_scale)
                msg = (f"step {step + 1}: loss became NaN/inf; rolled back to the last good state "
                       f"(learning rate now x{lr_scale:g})")
                if result.rollbacks > config.max_rollbacks:
                    result.status = "failed"
                    result.message = (f"training diverged {result.rollbacks} times; the model is the last good "
                                      "state. Try a smaller learning rate or lambda, or normalise the data.")
                    _release(opt)
                    emit("failed", step, math.nan, math.nan, result.message)
                    result.steps = step
                    return result
                emit("rollback", step, math.nan, math.nan, msg)
                continue
            # Still under the lock: whoever takes it sees the model and the last event agree.
            step += 1
            result.steps = step
            if time.perf_counter() - last_emit >= 1.0 / config.max_event_rate or step == config.steps:
                emit("progress", step, math.sqrt(max(last_mse, 0.0)), last_reg)
                shown = step
    result.steps = step
    _release(opt)
    final_rmse = math.sqrt(max(last_mse, 0.0)) if mse_is_current else _current_rmse(net, X, y)
    emit(result.status, step, final_rmse, last_reg, result.message)
    return result


def _release(opt) -> None:
    if isinstance(opt, _FlatLBFGS):
        opt.release()


@torch.no_grad()
def _current_rmse(net: KANNetwork, X: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.sqrt(torch.mean((net(X) - y) ** 2)))


class Trainer:
    """Runs :func:`train` in a daemon thread; ``start`` / ``pause`` / ``resume`` / ``stop``.

    ``on_event`` is called from the training thread: keep it short and do not touch UI objects
    there (publish a snapshot instead). ``lock`` is held during each step, so a reader that
    takes it sees a consistent model.
    """

    def __init__(self, net: KANNetwork, X_train, y_train, X_test=None, y_test=None,
                 config: TrainConfig = TrainConfig(), on_event=None, lock: threading.RLock | None = None):
        self.net = net
        self.config = config.validate()
        self.lock = lock or threading.RLock()
        self.control = TrainControl()
        self.result: TrainResult | None = None
        self.last_event: TrainEvent | None = None
        self.error: BaseException | None = None
        self._args = (X_train, y_train, X_test, y_test)
        self._on_event = on_event
        self._thread: threading.Thread | None = None

    def _emit(self, ev: TrainEvent) -> None:
        self.last_event = ev
        if self._on_event is not None:
            self._on_event(ev)

    def _run(self) -> None:
        try:
            self.result = train(self.net, *self._args, config=self.config, on_event=self._emit,
                                control=self.control, lock=self.lock)
        except BaseException as e:  # the thread must never die silently
            self.error = e
            self.result = TrainResult(status="failed", steps=0, message=f"{type(e).__name__}: {e}")
            self._emit(TrainEvent("failed", 0, self.config.steps, message=self.result.message))

    def start(self) -> "Trainer":
        if self._thread is not None:
            raise RuntimeError("a Trainer runs once; make a new one to train again")
        self._thread = threading.Thread(target=self._run, name="kanstudio-train", daemon=True)
        self._thread.start()
        return self

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def stop(self, join: bool = True, timeout: float | None = 30.0) -> None:
        self.control.stop()
        if join:
            self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def paused(self) -> bool:
        return self.control.paused and self.running


def with_overrides(config: TrainConfig, **kw) -> TrainConfig:
    return replace(config, **{k: v for k, v in kw.items() if v is not None})
