"""The training fast paths agree with the plain autograd / torch implementations they replace:
the fused layer (one autograd node), the closed-form sparsity penalty, the flat-buffer LBFGS."""
import numpy as np
import pytest
import torch

from kanstudio.core import train as T
from kanstudio.core.layer import KANLayer, _EdgeSum
from kanstudio.core.network import KANNetwork
from kanstudio.core.regularize import _Penalty, layer_penalty
from kanstudio.core.spline import bspline_basis


def _layer(mask=False, node_scale=False):
    layer = KANLayer(3, 4, grid=4, k=3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        layer.coef.normal_(generator=torch.Generator().manual_seed(2))
        layer.bias.normal_(generator=torch.Generator().manual_seed(3))
        if mask:
            layer.mask[1, 2] = 0
        if node_scale:
            layer.node_scale.copy_(torch.tensor([1.0, 2.0, -0.5, 3.0]))
    return layer


def test_fused_layer_matches_autograd_reference_and_gradcheck():
    for mask in (False, True):
        for node_scale in (False, True):
            layer = _layer(mask, node_scale)
            g = torch.Generator().manual_seed(4)
            x = (torch.rand(30, 3, generator=g, dtype=torch.float64) * 2.4 - 1.2).requires_grad_()
            inputs = (x,) + tuple(p.detach().clone().requires_grad_() for p in
                                  (layer.coef, layer.scale_sp, layer.scale_base, layer.bias))

            def reference(z, coef, sp, sb, bias):
                live = layer.mask
                acts = (torch.nn.functional.silu(z).unsqueeze(-1) * (sb * live)
                        + torch.einsum("bim,iom->bio", bspline_basis(z, layer.knots, 3), coef * (sp * live).unsqueeze(-1)))
                return acts.sum(1) * layer.node_scale + bias, acts.abs().mean(0)

            def fused(stats):
                def f(z, coef, sp, sb, bias):
                    live, unit, _ = layer._structure()
                    return _EdgeSum.apply(layer.features(z), coef, sp, sb, bias, live,
                                          None if unit else layer.node_scale, stats)
                return f

            out, mags = reference(*inputs)
            f_out, f_mags = fused(True)(*inputs)
            assert torch.allclose(out, f_out, atol=1e-12) and torch.allclose(mags, f_mags, atol=1e-12)
            assert torch.allclose(out, fused(False)(*inputs), atol=1e-12)
            assert torch.autograd.gradcheck(fused(True), inputs)
            assert torch.autograd.gradcheck(fused(False), inputs)


def test_closed_form_penalty_matches_autograd():
    for dtype in (torch.float64, torch.float32):
        g = torch.Generator().manual_seed(0)
        mags = [torch.rand(3, 4, generator=g, dtype=dtype).requires_grad_(),
                torch.rand(4, 1, generator=g, dtype=dtype).requires_grad_()]
        fast = _Penalty.apply(0.7, 1.3, *mags)
        slow = sum(layer_penalty(m, 0.7, 1.3) for m in mags)
        tol = 1e-12 if dtype == torch.float64 else 1e-5
        assert abs(float(fast.detach()) - float(slow.detach())) < tol * 10
        for a, b in zip(torch.autograd.grad(fast, mags), torch.autograd.grad(slow, mags)):
            assert a.dtype == dtype and torch.allclose(a, b, atol=tol, rtol=0)


def test_flat_lbfgs_follows_torch_lbfgs():
    """Same algorithm: on a smooth problem both take the same steps (to rounding); 60
    iterations with a history of 10, so the curvature memory also rolls over."""
    from kanstudio.core import lbfgs

    g = torch.Generator().manual_seed(0)
    A = torch.randn(40, 6, generator=g, dtype=torch.float64)
    b = torch.randn(40, generator=g, dtype=torch.float64)
    results = []
    for flat in (False, True):
        w = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
        v = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
        kw = dict(lr=1.0, max_iter=20, history_size=10, tolerance_grad=1e-32, tolerance_change=1e-32)
        opt = T._FlatLBFGS([w, v], **kw) if flat else torch.optim.LBFGS([w, v], line_search_fn="strong_wolfe", **kw)

        def closure():
            opt.zero_grad()
            p = torch.cat([w, v])
            loss = ((A @ p - b) ** 2).mean() + 0.1 * (p ** 4).sum()
            loss.backward()
            return loss

        losses = [float(opt.step(closure).detach()) for _ in range(3)]
        if flat:
            opt.release()
        results.append((losses, torch.cat([w, v]).detach().clone()))
        assert w.untyped_storage().data_ptr() != v.untyped_storage().data_ptr() or not flat
    (l0, p0), (l1, p1) = results
    assert np.allclose(l0, l1, rtol=1e-10) and torch.allclose(p0, p1, atol=1e-8)


def test_train_gives_parameters_their_own_storage_back():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (200, 2))
    y = np.sin(np.pi * X[:, 0]) + X[:, 1] ** 2
    net = KANNetwork([2, 3, 1])
    T.train(net, X, y, config=T.TrainConfig(steps=3, lamb=1e-3))
    ptrs = [p.untyped_storage().data_ptr() for p in net.parameters()]
    assert len(set(ptrs)) == len(ptrs)
    assert all(torch.isfinite(p).all() for p in net.parameters())
