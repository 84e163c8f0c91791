import threading
import time

import numpy as np
import pytest
import torch

import kanstudio.core.train as train_mod
from kanstudio.core.network import KANNetwork
from kanstudio.core.train import Trainer, TrainConfig, train


def _data(n=500):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (n, 2))
    return X, np.exp(np.sin(np.pi * X[:, 0]) + X[:, 1] ** 2)


def test_trainer_start_pause_resume_stop():
    X, y = _data()
    net = KANNetwork([2, 5, 1])
    events = []
    tr = Trainer(net, X, y, X, y, TrainConfig(steps=100000, max_event_rate=50), on_event=events.append).start()
    deadline = time.time() + 20
    while not any(e.kind == "progress" for e in events) and time.time() < deadline:
        time.sleep(0.02)
    tr.pause()
    time.sleep(0.3)
    with tr.lock:
        n_paused = tr.last_event.step
    time.sleep(0.5)
    assert tr.last_event.step == n_paused  # nothing moves while paused
    assert tr.paused
    tr.resume()
    time.sleep(0.5)
    tr.stop()
    assert not tr.running
    assert tr.result.status == "stopped"
    assert events[-1].kind == "stopped"
    assert events[-1].step > n_paused
    assert all(torch.isfinite(p).all() for p in net.parameters())
    # events are rate-bounded
    progress = [e for e in events if e.kind == "progress"]
    span = progress[-1].elapsed - progress[0].elapsed
    assert len(progress) <= span * 50 + 2


def test_stop_from_pause_runs_no_step_the_page_did_not_show():
    """Events are throttled (here at most 2 per second), so steps done after the last event used
    to appear only with the final 'stopped' event: a Stop from pause seemed to run on."""
    X, y = _data(200)
    net = KANNetwork([2, 2, 1])
    events = []
    tr = Trainer(net, X, y, X, y, TrainConfig(steps=100000, max_event_rate=2), on_event=events.append).start()
    deadline = time.time() + 20
    while not any(e.kind == "progress" for e in events) and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # several fast steps after that event, none shown yet
    tr.pause()
    time.sleep(0.5)
    shown_while_paused = tr.last_event.step
    assert tr.last_event.kind == "progress" and shown_while_paused > 1
    tr.stop()
    assert tr.result.status == "stopped"
    assert events[-1].kind == "stopped" and events[-1].step == shown_while_paused == tr.result.steps


@pytest.fixture(params=["fused", "autograd"])
def objective_hook(request, monkeypatch):
    """``install(f)``: every evaluation of the training objective calls ``f(n)`` (n = 1, 2, ...)
    and multiplies the loss by what it returns -- through the hand-differentiated objective
    (plain spline networks on CPU) or through autograd (everything else), so the fault handling
    is tested on both."""
    import kanstudio.core.objective as O

    def install(f):
        n = {"c": 0}
        if request.param == "fused":
            real = O.FusedObjective.__call__

            def hooked(self):
                n["c"] += 1
                factor = f(n["c"])
                loss, grad, mse, reg = real(self)
                return loss * factor, grad * factor, mse, reg * factor

            monkeypatch.setattr(O.FusedObjective, "__call__", hooked)
        else:
            monkeypatch.setattr(O.FusedObjective, "supports", staticmethod(lambda net, params: False))
            real = train_mod.sparsity_penalty

            def hooked(acts, layers, mu1, mu2):
                n["c"] += 1
                factor = f(n["c"])
                return real(acts, layers, mu1, mu2) * factor

            monkeypatch.setattr(train_mod, "sparsity_penalty", hooked)
        return n

    return install


def test_stop_in_the_middle_of_an_lbfgs_step_restores_last_completed_step(objective_hook):
    X, y = _data()
    net = KANNetwork([2, 5, 1])
    control = train_mod.TrainControl()
    snap = {}

    def spy(n):
        if n == 1:
            snap.update({k: v.clone() for k, v in net.state_dict().items()})
        if n == 5:  # inside the first LBFGS step's line search
            control.stop()
        return 1.0

    calls = objective_hook(spy)
    res = train(net, X, y, config=TrainConfig(steps=10, lamb=1e-3, update_grid=False), control=control)
    assert calls["c"] >= 5
    assert res.status == "stopped" and res.steps == 0
    for k, v in net.state_dict().items():
        assert torch.equal(v, snap[k]), k


def test_nan_rolls_back_and_reports(objective_hook):
    X, y = _data()
    net = KANNetwork([2, 3, 1])
    objective_hook(lambda n: float("nan") if 30 <= n < 60 else 1.0)
    events = []
    res = train(net, X, y, config=TrainConfig(steps=8, lamb=1e-3, max_rollbacks=50), on_event=events.append)
    assert res.rollbacks >= 1
    assert any(e.kind == "rollback" and "rolled back" in e.message for e in events)
    assert res.status == "done"
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_repeated_divergence_fails_cleanly(objective_hook):
    X, y = _data()
    net = KANNetwork([2, 3, 1])
    before = {k: v.clone() for k, v in net.state_dict().items()}
    objective_hook(lambda n: float("nan"))
    res = train(net, X, y, config=TrainConfig(steps=5, lamb=1e-3, update_grid=False, max_rollbacks=2))
    assert res.status == "failed" and "diverged" in res.message
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])


def test_many_start_stop_cycles_leave_no_threads():
    X, y = _data(200)
    net = KANNetwork([2, 3, 1])
    base = threading.active_count()
    for _ in range(100):
        t = Trainer(net, X, y, config=TrainConfig(steps=1000, opt="adam")).start()
        t.stop()
    assert threading.active_count() == base
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_final_rmse_is_the_models_without_an_extra_forward_pass(monkeypatch):
    """With the compiled objective the final event reuses the last evaluation when the line
    search ended on the accepted point; the figure must still be the model's own RMSE."""
    from kanstudio.core import train as T
    from kanstudio.core.network import KANNetwork

    g = torch.Generator().manual_seed(3)
    X = torch.rand(400, 2, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.sin(3 * X[:, :1]) * X[:, 1:]
    net = KANNetwork([2, 4, 1], grid=5, k=3, seed=0)
    calls = []
    real = T._current_rmse
    monkeypatch.setattr(T, "_current_rmse", lambda *a: calls.append(1) or real(*a))
    for _ in range(3):
        result = T.train(net, X, y, config=T.TrainConfig(steps=2, opt="lbfgs", update_grid=False))
        with torch.no_grad():
            actual = float(torch.sqrt(torch.mean((net(X) - y) ** 2)))
        assert result.history[-1].train_loss == pytest.approx(actual, rel=1e-9)
    assert len(calls) < 3  # at least one of the three took the shortcut
