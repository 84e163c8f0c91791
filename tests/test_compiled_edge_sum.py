"""The compiled edge sum (csrc/edge_sum.c) against the torch path it replaces (layer.py's
_EdgeSum on the dense feature block) and gradcheck, on both instruction sets, one thread and
several, float32 and float64."""
import hashlib
import multiprocessing

import pytest
import torch

from kanstudio.core import compiled_edge_sum as CE
from kanstudio.core.layer import KANLayer, _EdgeSum

pytestmark = pytest.mark.skipif(CE._kernels is None, reason="the compiled kernels are not built")


@pytest.fixture(params=["auto", "generic"])
def isa(request):
    CE._kernels.isa(request.param)
    yield request.param
    CE._kernels.isa("auto")


def _layer(n, o, grid, k, dtype, mask=True, node_scale=True, regrid=False, seed=0):
    layer = KANLayer(n, o, grid=grid, k=k, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        layer.coef.copy_(torch.randn(layer.coef.shape, generator=g, dtype=dtype))
        layer.scale_base.copy_(torch.randn(layer.scale_base.shape, generator=g, dtype=dtype))
        layer.bias.copy_(torch.randn(layer.bias.shape, generator=g, dtype=dtype))
        if mask:
            layer.mask[0, o - 1] = 0
        if node_scale:
            layer.node_scale[0] = 1.75
        if regrid:  # knots that are not equally spaced
            layer.update_grid(torch.randn(500, n, generator=g, dtype=dtype).mul_(0.6).pow_(3), eps=0.3)
    return layer


def _both(layer, x, stats=False):
    """(compiled, torch) -> each (output, [edge magnitudes,] x.grad, coef, scale_sp, scale_base,
    bias grads); with stats the loss also weighs the magnitudes, as the sparsity penalty does."""
    live, unit, _ = layer._structure()
    ns = None if unit else layer.node_scale
    g = torch.Generator().manual_seed(9)
    gy = torch.randn(x.shape[0], layer.n_out, generator=g, dtype=x.dtype)
    gm = torch.randn(layer.n_in, layer.n_out, generator=g, dtype=x.dtype)
    res = []
    for compiled in (True, False):
        xx = x.detach().clone().requires_grad_()
        layer.zero_grad(set_to_none=True)
        args = (layer.coef, layer.scale_sp, layer.scale_base, layer.bias, live, ns, stats)
        if compiled:
            out = CE.CompiledEdgeSum.apply(xx, layer.tables(), *args)
        else:
            out = _EdgeSum.apply(layer.features(xx), *args)
        y, mags = out if stats else (out, None)
        loss = (y * gy).sum() + ((mags * gm).sum() if stats else 0)
        loss.backward()
        res.append([y.detach()] + ([mags.detach()] if stats else []) + [xx.grad] +
                   [p.grad for p in (layer.coef, layer.scale_sp, layer.scale_base, layer.bias)])
    return res


def _close(a, b, dtype):
    tol = 2e-4 if dtype == torch.float32 else 1e-11  # float32: sums of ~100 terms that cancel
    for u, v in zip(a, b):
        assert u.shape == v.shape
        assert torch.allclose(u, v, rtol=tol, atol=tol * float(v.abs().max())), float((u - v).abs().max())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n,o,grid,k,regrid", [(3, 5, 4, 3, False), (4, 9, 6, 2, True), (2, 1, 5, 1, False),
                                               (5, 13, 3, 4, True), (6, 16, 5, 3, True)])
@pytest.mark.parametrize("stats", [False, True])
def test_matches_the_dense_block_path(isa, dtype, n, o, grid, k, regrid, stats):
    layer = _layer(n, o, grid, k, dtype, regrid=regrid)
    g = torch.Generator().manual_seed(3)
    x = torch.rand(157, n, generator=g, dtype=dtype) * 3.2 - 1.6  # some beyond the grid
    _close(*_both(layer, x, stats), dtype)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("stats", [False, True])
def test_a_wide_layer_split_over_jobs_and_threads(isa, threads, stats, monkeypatch):
    """64 -> 64 on 4096 rows (the benchmark's shape): several jobs per thread, each with its own
    weight gradient (and edge magnitudes); the same results as the dense path, and the same
    bits on every call."""
    monkeypatch.setattr(CE, "_threads", lambda b, n, o: threads)
    layer = _layer(64, 64, 5, 3, torch.float32, regrid=True)
    x = torch.rand(4096, 64, generator=torch.Generator().manual_seed(4)) * 2.2 - 1.1
    first, dense = _both(layer, x, stats)
    _close(first, dense, torch.float32)
    again, _ = _both(layer, x, stats)
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_gradcheck_inputs_and_parameters(isa):
    layer = _layer(3, 6, 4, 3, torch.float64, regrid=True)
    live, unit, _ = layer._structure()
    x = (torch.rand(40, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 2.6 - 1.3)
    params = tuple(p.detach().clone().requires_grad_() for p in (layer.coef, layer.scale_sp, layer.scale_base, layer.bias))

    def f(stats):
        def run(z, coef, sp, sb, bias):
            return CE.CompiledEdgeSum.apply(z, layer.tables(), coef, sp, sb, bias, live,
                                            None if unit else layer.node_scale, stats)
        return run

    x.requires_grad_()
    assert torch.autograd.gradcheck(f(False), (x,) + params)
    assert torch.autograd.gradcheck(f(True), (x,) + params)  # through the edge magnitudes too


def test_non_finite_inputs_stay_where_they_are():
    """An infinite input gives zero spline values (its silu is infinite), NaN stays NaN: only the
    rows holding them are non-finite, and the other rows are unaffected."""
    layer = _layer(3, 4, 5, 3, torch.float64, mask=False, node_scale=False)
    x = torch.rand(20, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64) * 2 - 1
    x[2, 1], x[5, 0], x[7, 2] = float("inf"), float("nan"), -1e300
    with torch.no_grad():
        y = layer(x)
        ref = _EdgeSum.apply(layer.features(x), layer.coef, layer.scale_sp, layer.scale_base, layer.bias, None, None, False)
    bad = ~torch.isfinite(y).all(1)
    assert bad.tolist() == [i in (2, 5) for i in range(20)]
    assert torch.allclose(y[~bad], ref[~bad], atol=1e-12)
    assert torch.isnan(y[5]).all()


def test_the_layer_takes_it_on_the_cpu_and_falls_back_without_kernels(monkeypatch):
    layer = _layer(4, 3, 5, 3, torch.float64)
    x = torch.rand(50, 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    calls = []
    real = CE.CompiledEdgeSum.apply
    import kanstudio.core.layer as L

    monkeypatch.setattr(L.CompiledEdgeSum, "apply", lambda *a: calls.append(1) or real(*a))
    y = layer(x)
    assert calls == [1]
    monkeypatch.setattr(CE, "_kernels", None)
    assert not L.edge_sum_ok(x, layer.coef)
    assert torch.allclose(layer(x), y, atol=1e-12) and calls == [1]


def _kernels_run(queue):
    """Forward and backward of a 64 -> 64 layer on two threads, straight through the kernels
    (in a forked child torch's autograd engine may refuse to run)."""
    if queue is not None:  # the child: torch itself on one thread (GNU OpenMP does not survive
        torch.set_num_threads(1)  # fork in torch either)
    layer = _layer(64, 64, 5, 3, torch.float32)
    x = torch.rand(4096, 64, generator=torch.Generator().manual_seed(8)) * 2 - 1
    arrays = CE._tables(layer.tables(), x.dtype)
    W = CE.edge_weights(layer.coef.detach(), layer.scale_sp.detach(), layer.scale_base.detach(), None)[0].contiguous()
    y, gW, gx = x.new_empty(4096, 64), torch.empty_like(W), torch.empty_like(x)
    head = (64, 4096, 64, arrays[0].shape[1], 3, 4, x.numpy(), *arrays, W.numpy())
    CE._kernels.edge_sum_forward(*head, y.numpy(), None, 2)
    CE._kernels.edge_sum_backward(*head, y.numpy(), None, gW.numpy(), gx.numpy(), 2)
    result = tuple(hashlib.sha256(t.numpy().tobytes()).hexdigest() for t in (y, gW, gx))
    return queue.put(result) if queue is not None else result


def test_a_forked_child_runs_it_after_the_parent_did():
    """The threaded run goes through the OpenMP team torch loaded, whose threads do not survive
    fork(): a child must fall back to the pool and finish, with the parent's results."""
    expected = _kernels_run(None)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.SimpleQueue()
    child = ctx.Process(target=_kernels_run, args=(queue,))
    child.start()
    child.join(120)
    if child.exitcode is None:
        child.kill()
    assert child.exitcode == 0
    assert queue.get() == expected  # the same jobs, summed in the same order: the same bits
