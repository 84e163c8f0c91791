"""The engine on a CUDA device: the same network, training and formulas as on the CPU.

These run only where torch sees a GPU (CI machines have none; they ran on a lent H100, see the
README). Every other test also runs there with ``device='auto'``, i.e. on the GPU."""
import numpy as np
import pytest
import torch

from kanstudio import KAN
from kanstudio.core.formula import evaluate, make_symbols, network_expression
from kanstudio.core.network import KANNetwork

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 2))
    return X, np.exp(np.sin(np.pi * X[:, 0]) + X[:, 1] ** 2)


def test_a_network_computes_the_same_on_the_gpu():
    """Forward pass and gradients of every kind of layer (sum and product nodes, a pruned edge,
    a snapped edge, non-uniform knots) agree with the CPU's to float64 rounding."""
    net = KANNetwork([[3, 0], [3, 1], [1, 0]], grid=5, k=3, seed=0)
    x = torch.rand(300, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        net.update_grid(x)
        net.layers[0].mask[1, 2] = 0
        net.layers[1].set_symbolic(0, 0, "sin", a=2.0, b=0.1, c=0.5, d=0.0)
    gpu = KANNetwork([[3, 0], [3, 1], [1, 0]], grid=5, k=3, seed=0)
    gpu.load_state_dict(net.state_dict())
    for a, b in zip(gpu.layers, net.layers):
        a.load_extra_state_dict(b.extra_state_dict())
    gpu = gpu.cuda()
    xc = x.cuda().requires_grad_()
    xs = x.clone().requires_grad_()
    yc, ys = gpu(xc), net(xs)
    assert yc.device.type == "cuda"
    assert torch.allclose(yc.cpu(), ys, atol=1e-10)
    yc.square().sum().backward()
    ys.square().sum().backward()
    assert torch.allclose(xc.grad.cpu(), xs.grad, atol=1e-9)
    for (name, p), q in zip(gpu.named_parameters(), net.parameters()):
        if q.grad is not None:
            assert torch.allclose(p.grad.cpu(), q.grad, atol=1e-8), name


@pytest.mark.parametrize("opt", ["lbfgs", "adam"])
def test_fit_on_the_gpu_is_deterministic_and_as_good_as_on_the_cpu(opt):
    X, y = _data()
    steps = 20 if opt == "lbfgs" else 200
    fits = [KAN([2, 5, 1], seed=0, device=dev).fit(X, y, steps=steps, opt=opt, lamb=1e-3)
            for dev in ("cuda", "cuda", "cpu")]
    assert fits[0].net.layers[0].coef.device.type == "cuda"
    a, b, cpu = ({k: v.cpu() for k, v in m.net.state_dict().items()} for m in fits)
    assert all(torch.equal(a[k], b[k]) for k in a), "two GPU fits with the same seed differ"
    rmse = [float(np.sqrt(np.mean((m.predict(X) - y) ** 2))) for m in fits]
    assert rmse[0] < 0.1 * float(np.std(y)) or opt == "adam"
    assert rmse[0] < 2 * rmse[2] + 1e-3


def test_prune_snap_and_formula_on_the_gpu():
    X, y = _data()
    model = KAN([2, 5, 1], seed=0, device="cuda").fit(X, y, steps=40, lamb=1e-3)
    pred = model.predict(X)
    assert isinstance(pred, np.ndarray) and pred.shape == (len(X),)
    model.prune()
    model.fit(steps=20)
    model.auto_symbolic(r2_threshold=0.0)
    syms = make_symbols(["x", "y"])
    # the exported formula computes what the network computes
    assert np.allclose(evaluate(network_expression(model.net, syms)[0], syms, X), model.predict(X),
                       atol=1e-6 * np.abs(model.predict(X)).max())
    assert model.formula(X, y).r2_test > 0.99
