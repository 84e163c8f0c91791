import threading
import time

import numpy as np
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


def test_stop_in_the_middle_of_an_lbfgs_step_restores_last_completed_step():
    X, y = _data()
    net = KANNetwork([2, 5, 1])
    calls = {"n": 0}
    control = train_mod.TrainControl()
    real = train_mod.sparsity_penalty
    snap = {}

    def spy(acts, layers, mu1, mu2):
        calls["n"] += 1
        if calls["n"] == 1:
            snap.update({k: v.clone() for k, v in net.state_dict().items()})
        if calls["n"] == 5:  # inside the first LBFGS step's line search
            control.stop()
        return real(acts, layers, mu1, mu2)

    train_mod.sparsity_penalty = spy
    try:
        res = train(net, X, y, config=TrainConfig(steps=10, lamb=1e-3, update_grid=False), control=control)
    finally:
        train_mod.sparsity_penalty = real
    assert res.status == "stopped" and res.steps == 0
    for k, v in net.state_dict().items():
        assert torch.equal(v, snap[k]), k


def test_nan_rolls_back_and_reports():
    X, y = _data()
    net = KANNetwork([2, 3, 1])
    real = train_mod.sparsity_penalty
    n = {"c": 0}

    def poisoned(acts, layers, mu1, mu2):
        n["c"] += 1
        r = real(acts, layers, mu1, mu2)
        return r * float("nan") if 30 <= n["c"] < 60 else r

    train_mod.sparsity_penalty = poisoned
    try:
        events = []
        res = train(net, X, y, config=TrainConfig(steps=8, lamb=1e-3, max_rollbacks=50), on_event=events.append)
    finally:
        train_mod.sparsity_penalty = real
    assert res.rollbacks >= 1
    assert any(e.kind == "rollback" and "rolled back" in e.message for e in events)
    assert res.status == "done"
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_repeated_divergence_fails_cleanly():
    X, y = _data()
    net = KANNetwork([2, 3, 1])
    before = {k: v.clone() for k, v in net.state_dict().items()}
    real = train_mod.sparsity_penalty
    train_mod.sparsity_penalty = lambda *a: real(*a) * float("nan")
    try:
        res = train(net, X, y, config=TrainConfig(steps=5, lamb=1e-3, update_grid=False, max_rollbacks=2))
    finally:
        train_mod.sparsity_penalty = real
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
