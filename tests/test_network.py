import numpy as np
import pytest
import torch

from kanstudio.core.model import KAN
from kanstudio.core.network import KANNetwork, parse_width


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 2))
    return X, np.exp(np.sin(np.pi * X[:, 0]) + X[:, 1] ** 2)


def test_parse_width():
    assert parse_width([2, 5, 1]) == [(2, 0), (5, 0), (1, 0)]
    assert parse_width("4,2+1x,1") == [(4, 0), (2, 1), (1, 0)]
    assert parse_width([2, (0, 1)]) == [(2, 0), (0, 1)]
    for bad in ([2], [2, 0], "2,a", [(1, 1), 1]):
        with pytest.raises(ValueError):
            parse_width(bad)


def test_pruning_a_constant_edge_changes_nothing():
    X, y = _data()
    m = KAN(width=[2, 3, 1], seed=1).fit(X, y, steps=3)
    layer = m.net.layers[0]
    with torch.no_grad():  # make edge 1 -> 2 output a constant 0.7 (no base, flat spline)
        layer.scale_base[1, 2] = 0.0
        layer.coef[1, 2] = 0.7 / layer.scale_sp[1, 2]
    X_in = np.clip(X, -0.5, 0.5)  # inside the grid, where the spline's partition of unity holds
    m.X_train_ = torch.as_tensor(X_in)
    before = m.predict(X_in)
    m.prune_edge(0, 1, 2)
    assert layer.mask[1, 2] == 0
    assert np.abs(m.predict(X_in) - before).max() < 1e-6


def test_pruning_folds_mean_into_bias_and_node_prune():
    X, y = _data()
    m = KAN(width=[2, 4, 1], seed=0).fit(X, y, steps=5)
    tr = m.trace()
    mean = float(tr.acts[1][:, 2, 0].mean())
    b0 = float(m.net.layers[1].bias[0].detach())
    m.prune_node(1, 2)
    assert float(m.net.layers[1].bias[0]) == pytest.approx(b0 + mean)
    assert m.net.layers[0].mask[:, 2].sum() == 0 and m.net.layers[1].mask[2].sum() == 0
    assert not m.net.live_nodes()[1][2]
    with pytest.raises(ValueError):
        m.prune_node(0, 0)  # inputs cannot be pruned as hidden nodes


def test_auto_prune_removes_dead_nodes_only():
    X, y = _data()
    m = KAN(width=[2, 5, 1], seed=0).fit(X, y, steps=20, lamb=1e-2)
    scores = m.node_scores()[0]
    removed = m.prune(node_th=1e-2)
    dead = {j for j in range(5) if scores[0][j] < 1e-2 or scores[1][j] < 1e-2}
    assert {j for _, j in removed["nodes"]} == dead


def test_fit_is_deterministic():
    X, y = _data()
    a = KAN(width=[2, 3, 1], seed=7).fit(X, y, steps=5, lamb=1e-3)
    b = KAN(width=[2, 3, 1], seed=7).fit(X, y, steps=5, lamb=1e-3)
    for (k, va), (_, vb) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        assert torch.equal(va, vb), k
    c = KAN(width=[2, 3, 1], seed=8).fit(X, y, steps=5, lamb=1e-3)
    assert not torch.equal(a.net.layers[0].coef, c.net.layers[0].coef)
    adam1 = KAN(width=[2, 3, 1], seed=7).fit(X, y, steps=30, opt="adam", batch=64)
    adam2 = KAN(width=[2, 3, 1], seed=7).fit(X, y, steps=30, opt="adam", batch=64)
    assert np.array_equal(adam1.predict(X), adam2.predict(X))


def test_fit_learns_and_predict_shapes():
    X, y = _data(1000)
    m = KAN(width=[2, 5, 1], seed=0).fit(X, y, steps=30)
    assert m.predict(X).shape == (1000,)
    assert m.score(X, y) > 0.999
    with pytest.raises(ValueError):
        m.predict(np.zeros((3, 5)))


def test_auto_width_and_normalisation_of_huge_inputs():
    rng = np.random.default_rng(0)
    X = rng.uniform(1e6, 2e6, (300, 1))
    y = (X[:, 0] / 1e6) ** 2
    m = KAN(seed=0).fit(X, y, steps=20)
    assert m.net.dims == [1, 3, 1]
    assert m.score(X, y) > 0.999


def test_network_clone_is_independent():
    net = KANNetwork([2, 3, 1])
    c = net.clone()
    with torch.no_grad():
        c.layers[0].coef += 1
    assert not torch.equal(c.layers[0].coef, net.layers[0].coef)
