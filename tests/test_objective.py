"""The hand-differentiated objective (core/objective.py) against autograd on the same network."""
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from kanstudio.core import objective as O
from kanstudio.core import train as T
from kanstudio.core.network import KANNetwork
from kanstudio.core.regularize import sparsity_penalty
from kanstudio.core.train import TrainConfig, train


@pytest.fixture(autouse=True, params=["compiled", "compiled-generic", "numpy"])
def backend(request, monkeypatch):
    """Every test runs on every implementation: the compiled loops (float64) with the best
    instruction set of this machine and with the plain one every machine has, and the numpy
    objective that replaces them where no C compiler built ``_kernels``."""
    if request.param == "numpy":
        monkeypatch.setattr(O, "_kernels", None)
        yield request.param
        return
    assert O._kernels is not None, "kanstudio.core._kernels was not built"
    O._kernels.isa("generic" if request.param == "compiled-generic" else "auto")
    try:
        yield request.param.split("-")[0]
    finally:
        O._kernels.isa("auto")


def _data(n_in, n_out, n=300, seed=0, spread=1.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    X = (torch.rand(n, n_in, generator=g, dtype=dtype) * 2 - 1) * spread
    y = torch.sin(2 * X[:, :1]) + X[:, -1:] ** 2
    return X, y.repeat(1, n_out) * torch.arange(1, n_out + 1, dtype=dtype)


def _autograd(net, X, y, lamb, mu1, mu2, params):
    for p in params:
        p.grad = None
    pred, mags = T._forward_magnitudes(net, X, out_affine=True)
    mse = F.mse_loss(pred, y)
    reg = sparsity_penalty(mags, list(net.layers), mu1, mu2) if lamb > 0 else torch.zeros(())  # as train() does
    loss = mse + lamb * reg
    loss.backward()
    grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    return float(loss.detach()), grad.numpy(), float(mse.detach()), float(reg.detach())


def _compare(net, X, y, lamb, mu1=1.0, mu2=2.0, rtol=1e-9):
    params = [p for p in net.parameters() if p.requires_grad]
    assert O.FusedObjective.supports(net, params)
    fused = O.FusedObjective(net, X, y, params, lamb, mu1, mu2)
    assert fused.compiled == (O._kernels is not None)
    loss, grad, mse, reg = fused()
    ref_loss, ref_grad, ref_mse, ref_reg = _autograd(net, X, y, lamb, mu1, mu2, params)
    scale = np.abs(ref_grad).max()
    assert scale > 0
    assert loss == pytest.approx(ref_loss, rel=rtol)
    assert mse == pytest.approx(ref_mse, rel=rtol)
    assert reg == pytest.approx(ref_reg, rel=rtol, abs=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=0, atol=rtol * scale)
    return fused


@pytest.mark.parametrize("lamb", [0.0, 1e-2])
@pytest.mark.parametrize("width,k", [([2, 5, 1], 3), ([3, 4, 4, 2], 2), ([1, 3, 1], 1), ([2, 3, 1], 5),
                                     ([3, 9, 6, 1], 3)])
def test_matches_autograd(width, k, lamb):
    net = KANNetwork(width, grid=5, k=k, seed=1)
    X, y = _data(width[0], width[-1])
    _compare(net, X, y, lamb)


def test_matches_autograd_for_huge_layer_inputs():
    """silu of inputs where exp over- or underflows (csrc/layer_loops.h clamps its vector exp),
    a sample count whose (sample, input) pairs do not fill whole vectors, and inputs that are
    exact integers (the exp's rounding step)."""
    X, y = _data(3, 2, n=301, seed=7)
    X[:40] *= 900.0
    X[40:60] = torch.round(X[40:60] * 5)
    net = KANNetwork([3, 4, 2], grid=5, k=3, seed=2)
    _compare(net, X, y, 1e-2)


@pytest.mark.parametrize("backend", ["compiled"])  # the loops' own threads: both instruction sets inside
@pytest.mark.parametrize("lamb", [0.0, 1e-2])
def test_matches_autograd_with_the_samples_split_over_threads(backend, lamb):
    """Layers large enough to be split over two threads (csrc/pool.c), products included; a
    second run gives bit-identical results (each thread owns a fixed sample range)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for isa in ("generic", "auto"):
            O._kernels.isa(isa)
            net = KANNetwork([4, (9, 1), 3], grid=5, k=3, seed=3)
            X, y = _data(4, 3, n=6000, seed=4)
            assert O.FusedObjective._threads(4 * 6000 * (10 + 8)) == 2
            fused = _compare(net, X, y, lamb, mu1=1.0, mu2=1.0)
            first = fused()
            again = fused()
            assert first[0] == again[0]
            np.testing.assert_array_equal(first[1], again[1])
    finally:
        torch.set_num_threads(before)
        O._kernels.isa("auto")


@pytest.mark.parametrize("backend", ["compiled"])
def test_instruction_sets_can_be_chosen(backend):
    K = O._kernels
    assert K.isa("generic") == "generic"
    best = K.isa("auto")
    assert best in ("generic", "avx2")
    with pytest.raises(ValueError, match="no sse9 loops"):
        K.isa("sse9")
    assert K.isa() == best


def test_matches_autograd_after_grid_update_pruning_and_scaling():
    """Non-uniform knots, a pruned edge, node scales, input/output normalisation and samples
    outside the grid (where only the SiLU part is nonzero)."""
    net = KANNetwork([3, 4, 2], grid=6, k=3, seed=2)
    X, y = _data(3, 2, spread=2.5, seed=3)
    net.update_grid(X[:150] * 0.5)  # knots fitted to half the range: many samples fall outside
    with torch.no_grad():
        net.layers[0].mask[1, 2] = 0
        net.layers[1].mask[3, 0] = 0
        net.layers[1].node_scale.copy_(torch.tensor([0.5, 2.0], dtype=torch.float64))
        net.in_scale.fill_(0.8)
        net.in_shift.fill_(0.1)
        net.out_scale.copy_(torch.tensor([1.5, 0.7], dtype=torch.float64))
        net.out_shift.copy_(torch.tensor([0.3, -1.0], dtype=torch.float64))
    for lamb in (0.0, 3e-3):
        _compare(net, X, y, lamb, mu1=0.7, mu2=1.3)


def test_follows_parameter_changes_and_frozen_parameters():
    net = KANNetwork([2, 3, 1], seed=4)
    X, y = _data(2, 1, seed=5)
    net.layers[0].scale_base.requires_grad_(False)  # frozen: not in the optimiser's list
    fused = _compare(net, X, y, 1e-3)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(6), dtype=p.dtype))
        net.update_grid(X)
    params = [p for p in net.parameters() if p.requires_grad]
    loss, grad, _, _ = fused()
    ref_loss, ref_grad, _, _ = _autograd(net, X, y, 1e-3, 1.0, 2.0, params)
    assert loss == pytest.approx(ref_loss, rel=1e-9)
    np.testing.assert_allclose(grad, ref_grad, atol=1e-9 * np.abs(ref_grad).max())


def test_float32_matches_autograd():
    net = KANNetwork([2, 4, 1], seed=7, dtype=torch.float32)
    X, y = _data(2, 1, dtype=torch.float32)
    fused = _compare(net, X, y, 1e-3, rtol=2e-4)
    assert fused()[1].dtype == np.float32  # the gradient in the network's dtype


@pytest.mark.parametrize("width", [[3, 5, 1], [2, (2, 1), 1]])
def test_a_float32_network_gets_the_float64_objective_of_its_values(width, backend):
    """The compiled loops compute in float64 from the float32 parameters, so the loss is that of
    the same network cast to float64 (the knot tables, rounded to float32, aside)."""
    n32 = KANNetwork(width, grid=5, k=3, seed=0, dtype=torch.float32)
    if width[1] == (2, 1) and backend == "numpy":  # no product nodes there: autograd trains them
        assert not O.FusedObjective.supports(n32, list(n32.parameters()))
        return
    X, y = _data(width[0], 1, n=500, dtype=torch.float32)
    n32.update_grid(X)
    n64 = KANNetwork(width, grid=5, k=3, seed=0)
    n64.load_state_dict({k: v.double() for k, v in n32.state_dict().items()})
    for lamb in (0.0, 1e-2):
        a = O.FusedObjective(n32, X, y, list(n32.parameters()), lamb, 1.0, 1.0)()
        b = O.FusedObjective(n64, X.double(), y.double(), list(n64.parameters()), lamb, 1.0, 1.0)()
        tol = 1e-6 if backend == "compiled" else 1e-4  # numpy: float32 arithmetic throughout
        assert a[0] == pytest.approx(b[0], rel=tol)
        np.testing.assert_allclose(a[1], b[1], rtol=0, atol=tol * np.abs(b[1]).max())


def test_not_used_for_snapped_edges_nor_products_without_the_compiled_loops():
    prod = KANNetwork([2, (0, 1)], seed=0)
    assert O.FusedObjective.supports(prod, list(prod.parameters())) == (O._kernels is not None)
    prod32 = KANNetwork([2, (0, 1)], seed=0, dtype=torch.float32)
    assert O.FusedObjective.supports(prod32, list(prod32.parameters())) == (O._kernels is not None)
    snapped = KANNetwork([2, 2, 1], seed=0)
    snapped.layers[0].set_symbolic(0, 1, "sin")
    assert not O.FusedObjective.supports(snapped, list(snapped.parameters()))


def test_training_with_and_without_it_agrees(monkeypatch):
    """A few LBFGS steps through the fused objective land where autograd's do (to 1e-4: the two
    round differently, and 80 line-searched iterations on an L1 penalty amplify that)."""
    X, y = _data(2, 1, n=400, seed=8)
    cfg = TrainConfig(steps=4, lamb=1e-3, grid_update_num=2, stop_grid_update_step=4)
    fast = KANNetwork([2, 3, 1], seed=9)
    calls = []
    real_call = O.FusedObjective.__call__

    def counting(self):
        calls.append(1)
        return real_call(self)

    monkeypatch.setattr(O.FusedObjective, "__call__", counting)
    train(fast, X, y, config=cfg)
    assert calls, "the fused objective was not used"
    slow = KANNetwork([2, 3, 1], seed=9)
    monkeypatch.setattr(O.FusedObjective, "supports", staticmethod(lambda net, params: False))
    calls.clear()
    train(slow, X, y, config=cfg)
    assert not calls
    with torch.no_grad():
        a, b = fast(X), slow(X)
    assert float((a - b).abs().max()) < 1e-4 * float(b.abs().max())


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_uniform_knots_with_samples_in_the_extension_and_outside(k):
    """Fresh layers have uniform knots (the gather-free path); samples beyond the grid, in the
    k extension spans and past the last knot, must give exactly what the layers compute."""
    net = KANNetwork([3, 4, 2], grid=4, k=k, seed=11)
    X, y = _data(3, 2, spread=2.2, seed=12)
    X[0, 0] = float(net.layers[0].knots[0, -1])  # exactly on the last knot: outside, as in the layer
    X[1, 1] = float(net.layers[0].knots[1, 0])  # exactly on the first knot: inside
    params = [p for p in net.parameters() if p.requires_grad]
    assert O.FusedObjective(net, X, y, params, 0.0, 1.0, 1.0)._basis(0).uniform
    for lamb in (0.0, 1e-3):
        _compare(net, X, y, lamb)
    net.update_grid(X)  # quantile knots: the table path
    assert not O.FusedObjective(net, X, y, params, 0.0, 1.0, 1.0)._basis(0).uniform
    if k > 1:  # (k = 1: knots now sit on samples, where a piecewise-linear spline has no derivative)
        _compare(net, X, y, 1e-3)


@pytest.mark.parametrize("backend", ["compiled"])  # overrides the fixture: both are used inside
def test_compiled_and_numpy_agree_through_training_and_pruning(backend):
    """The two implementations give the same objective after grid updates, a pruned node and a
    frozen parameter, evaluated repeatedly while parameters move (the compiled path keeps views
    of them and rebuilds its plan when knots or masks change)."""
    net = KANNetwork([3, 4, 2], grid=5, k=3, seed=13)
    X, y = _data(3, 2, seed=14, spread=1.4)
    net.layers[0].scale_base.requires_grad_(False)
    params = [p for p in net.parameters() if p.requires_grad]
    a = O.FusedObjective(net, X, y, params, 2e-3, 1.0, 1.0, compiled=True)
    b = O.FusedObjective(net, X, y, params, 2e-3, 1.0, 1.0, compiled=False)
    gen = torch.Generator().manual_seed(15)
    for step in range(6):
        with torch.no_grad():
            for p in params:
                p.add_(0.02 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            if step == 2:
                net.update_grid(X)
            if step == 4:
                net.layers[1].mask[2] = 0
        (la, ga, ma, ra), (lb, gb, mb, rb) = a(), b()
        assert la == pytest.approx(lb, rel=1e-12) and ra == pytest.approx(rb, rel=1e-12, abs=1e-15)
        np.testing.assert_allclose(ga, gb, rtol=0, atol=1e-12 * np.abs(gb).max())


@pytest.mark.parametrize("backend", ["compiled"])
def test_compiled_kernel_rejects_wrong_sizes(backend):
    """A buffer of the wrong size is a ValueError, never a read or write past its end."""
    net = KANNetwork([2, 3, 1], seed=16)
    X, y = _data(2, 1, seed=17)
    params = [p for p in net.parameters() if p.requires_grad]
    fused = O.FusedObjective(net, X, y, params, 1e-3, 1.0, 1.0, compiled=True)
    fused()
    args = list(fused._plan[1]["forward"][1])
    args[1] += 1  # one more sample than the buffers hold
    with pytest.raises(ValueError, match="bytes, expected"):
        O._kernels.layer_forward(*args)
    with pytest.raises(ValueError, match="offsets"):
        O._kernels.layer_backward(*fused._plan[1]["backward"][0], np.zeros(3))


@pytest.mark.parametrize("width", [[2, (0, 1)], [3, (1, 2), 1], [3, (0, 2), (1, 1)]])
@pytest.mark.parametrize("lamb", [0.0, 1e-2])
def test_product_nodes_match_autograd(backend, width, lamb):
    """Product nodes (compiled path only): node_scale * prod_i phi_ij + bias over live edges; the
    penalty covers the sum nodes' edges only, as in sparsity_penalty. One product edge is pruned
    (factor 1) and one is exactly zero for every sample (a zero factor: no division)."""
    net = KANNetwork(width, grid=5, k=3, seed=18)
    X, y = _data(width[0], net.layers[-1].n_out, seed=19)
    params = [p for p in net.parameters() if p.requires_grad]
    if backend == "numpy":
        assert not O.FusedObjective.supports(net, params)
        return
    first = net.layers[0]
    j = first.n_out - 1  # a product node of the first layer
    with torch.no_grad():
        first.mask[0, j] = 0
        first.scale_sp[1, j] = 0.0
        first.scale_base[1, j] = 0.0
        first.node_scale[j] = 1.7
    assert O.FusedObjective.supports(net, params)
    _compare(net, X, y, lamb, mu1=1.0, mu2=1.0)


@pytest.mark.parametrize("backend", ["compiled"])
def test_product_network_trains_through_the_compiled_objective(backend, monkeypatch):
    X, y = _data(2, 1, n=300, seed=20)
    y = (X[:, :1] * X[:, 1:]) * 2.0
    cfg = TrainConfig(steps=3, lamb=1e-3, grid_update_num=1, stop_grid_update_step=3)
    fast = KANNetwork([2, (0, 1)], seed=21)
    calls = []
    real_call = O.FusedObjective.__call__
    monkeypatch.setattr(O.FusedObjective, "__call__", lambda self: calls.append(1) or real_call(self))
    train(fast, X, y, config=cfg)
    assert calls, "the compiled objective was not used for a product network"
    slow = KANNetwork([2, (0, 1)], seed=21)
    monkeypatch.setattr(O.FusedObjective, "supports", staticmethod(lambda net, params: False))
    train(slow, X, y, config=cfg)
    with torch.no_grad():
        a, b = fast(X), slow(X)
    assert float((a - b).abs().max()) < 1e-4 * float(b.abs().max())


@pytest.mark.parametrize("backend", ["compiled"])
def test_an_objective_is_reused_only_for_the_same_problem_and_stays_right(backend):
    """train() asks for_network() once per call; the second ask with the same data, parameters
    and penalty gets the same objective (its buffers and input-layer basis kept), anything
    else a new one. A kept objective follows a grid update and a pruned edge: it still
    matches autograd afterwards."""
    net = KANNetwork([2, 4, 1], grid=5, k=3, seed=5)
    X, y = _data(2, 1, n=200, seed=6)
    params = [p for p in net.parameters() if p.requires_grad]
    first = O.FusedObjective.for_network(net, X, y, params, 0.0, 1.0, 1.0)
    first()
    assert O.FusedObjective.for_network(net, X, y, params, 0.0, 1.0, 1.0) is first
    assert O.FusedObjective.for_network(net, X.clone(), y, params, 0.0, 1.0, 1.0) is first  # equal data
    for other in ((X * 2, y, 0.0), (X, y * 2, 0.0), (X, y, 1e-3)):
        assert O.FusedObjective.for_network(net, other[0], other[1], params, other[2], 1.0, 1.0) is not first
    again = O.FusedObjective.for_network(net, X, y, params, 0.0, 1.0, 1.0)
    again()
    net.update_grid(X, 0.5)
    with torch.no_grad():
        net.layers[0].mask[1, 2] = 0
    kept = O.FusedObjective.for_network(net, X, y, params, 0.0, 1.0, 1.0)
    assert kept is again
    loss, grad, _, _ = kept()
    ref_loss, ref_grad, _, _ = _autograd(net, X, y, 0.0, 1.0, 1.0, params)
    assert loss == pytest.approx(ref_loss, rel=1e-9)
    np.testing.assert_allclose(grad, ref_grad, rtol=0, atol=1e-9 * np.abs(ref_grad).max())


@pytest.mark.parametrize("backend", ["compiled"])
def test_a_kept_objective_neither_outlives_its_network_nor_misses_in_place_changes(backend):
    import gc
    import weakref

    net = KANNetwork([2, 3, 1], grid=5, k=3, seed=8)
    X, y = _data(2, 1, n=100, seed=9)
    params = [p for p in net.parameters() if p.requires_grad]
    first = O.FusedObjective.for_network(net, X, y, params, 0.0, 1.0, 1.0)
    first()
    with torch.no_grad():
        X[0, 0] += 0.5  # the same tensor, changed in place
    assert O.FusedObjective.for_network(net, X, y, params, 0.0, 1.0, 1.0) is not first
    alive = weakref.ref(net)
    del net, params, first
    gc.collect()
    assert alive() is None
    assert not any(o._net() is None for o in O._LAST.values())
