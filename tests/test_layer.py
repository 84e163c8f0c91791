import numpy as np
import torch

from kanstudio.core.layer import KANLayer
from kanstudio.core.network import KANNetwork
from kanstudio.core.regularize import layer_penalty, sparsity_penalty


def _x(n=300, d=3, lo=-1.0, hi=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(n, d, generator=g, dtype=torch.float64)


def test_fast_path_equals_activation_sum():
    layer = KANLayer(3, 4, grid=5, k=3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        layer.coef.normal_()
        layer.bias.normal_()
    layer.mask[1, 2] = 0
    x = _x()
    out, acts = layer(x, return_acts=True)
    assert torch.allclose(layer(x), out, atol=1e-12)
    assert torch.allclose(acts.sum(1) + layer.bias, out, atol=1e-12)
    assert torch.all(acts[:, 1, 2] == 0)


def test_layer_gradcheck_inputs_and_params():
    layer = KANLayer(2, 2, grid=4, k=3, n_prod=1, generator=torch.Generator().manual_seed(0))
    x = _x(20, 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda z, c, sb: _with(layer, c, sb)(z), (x, layer.coef.detach().clone().requires_grad_(),
                                    layer.scale_base.detach().clone().requires_grad_()))


def _with(layer, coef, sb):
    def f(z):
        layer.coef.data = coef.data
        wb = sb * layer.mask
        from kanstudio.core.spline import bspline_basis
        acts = torch.nn.functional.silu(z).unsqueeze(-1) * wb + torch.einsum(
            "bim,iom->bio", bspline_basis(z, layer.knots, layer.k), coef * (layer.scale_sp * layer.mask).unsqueeze(-1))
        return layer.combine(acts)
    return f


def test_update_grid_preserves_function():
    from kanstudio.core.spline import lstsq_coef
    layer = KANLayer(2, 3, grid=10, k=3, generator=torch.Generator().manual_seed(0))
    dense = _x(4000, 2)
    with torch.no_grad():  # a smooth edge function, as training produces
        target = torch.sin(2 * dense).unsqueeze(-1).repeat(1, 1, 3)
        layer.coef.copy_(lstsq_coef(dense, target, layer.knots, 3))
    x = _x(2000, 2, -0.8, 0.8)
    before = layer(x)
    layer.update_grid(x)
    assert layer.knots[:, 3].min() >= -0.81  # knots moved to the data
    assert torch.allclose(layer(x), before, atol=1e-3)


def test_grid_extension_preserves_function():
    layer = KANLayer(2, 3, grid=5, k=3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        layer.coef.normal_()
    x = _x(2000, 2)
    layer.update_grid(x)
    before = layer(x)
    layer.extend(x, 20)
    assert layer.coef.shape == (2, 3, 23)
    assert torch.allclose(layer(x), before, atol=1e-6)


def test_regulariser_matches_direct_computation():
    net = KANNetwork([3, 4, 2], seed=3)
    x = _x()
    _, acts = net.forward_with_acts(x)
    got = sparsity_penalty(acts, list(net.layers), mu1=0.7, mu2=1.3)
    want = 0.0
    for a in acts:
        a = a.detach().numpy()
        mag = np.abs(a).mean(0)
        p = mag / mag.sum()
        want += 0.7 * mag.sum() + 1.3 * -(p * np.log(p)).sum()
    assert abs(float(got.detach()) - want) < 1e-8
    assert float(layer_penalty(torch.zeros(2, 2, dtype=torch.float64), 1, 1)) == 0.0


def test_product_node_multiplies():
    layer = KANLayer(2, 1, n_prod=1, generator=torch.Generator().manual_seed(0))
    x = _x(50, 2)
    out, acts = layer(x, return_acts=True)
    assert torch.allclose(out[:, 0], acts[:, 0, 0] * acts[:, 1, 0])


def test_a_fully_snapped_layer_skips_the_basis_and_computes_the_same():
    """When every live edge is symbolic the spline basis is not evaluated; outputs, edge values
    and gradients must be what the general path gives."""
    import kanstudio.core.layer as layer_mod

    torch.manual_seed(0)
    layer = KANLayer(2, 3)
    x = (torch.rand(50, 2, dtype=torch.float64) * 2 - 1).requires_grad_()
    names = ["sin", "x^2", "exp", "tanh", "x", "cos"]
    for n, (i, j) in enumerate([(i, j) for i in range(2) for j in range(3)]):
        layer.set_symbolic(i, j, names[n], a=1.0 + 0.1 * n, b=0.05 * n, c=1.0 - 0.1 * n, d=0.02 * n)
    with torch.no_grad():
        layer.mask[1, 2] = 0
    out = layer(x)
    gx, = torch.autograd.grad(out.sum(), x)
    acts = layer.edge_values(x)
    assert layer._no_splines
    calls = []
    real = layer_mod.KANLayer.features
    layer_mod.KANLayer.features = lambda self, t: calls.append(1) or real(self, t)
    try:
        layer._no_splines = False  # force the general path for the reference
        layer._structure = lambda: (layer.mask * (~layer.sym_mask).to(layer.mask.dtype), True, True)
        ref = layer(x)
        ref_gx, = torch.autograd.grad(ref.sum(), x)
        ref_acts = layer.edge_values(x)
    finally:
        layer_mod.KANLayer.features = real
    assert calls  # the reference really went through the basis
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, ref_gx, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(acts, ref_acts, rtol=1e-12, atol=1e-12)
    assert float(acts[:, 1, 2].abs().max()) == 0.0  # the pruned edge
