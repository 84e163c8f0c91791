import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

from kanstudio.core.spline import (adaptive_grid, bspline_basis, extend_grid, lstsq_coef, spline_eval,
                                   uniform_grid)


def _knots(G, k, seed=0, uniform=False):
    g = torch.Generator().manual_seed(seed)
    if uniform:
        inner = uniform_grid(torch.tensor([-1.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 3.0], dtype=torch.float64), G)
    else:
        inner = torch.sort(torch.rand(2, G + 1, generator=g, dtype=torch.float64) * 4 - 2, dim=1).values
    return extend_grid(inner, k)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("uniform", [True, False])
def test_basis_matches_scipy(k, uniform):
    G = 6
    knots = _knots(G, k, seed=k, uniform=uniform)
    x = torch.linspace(-4, 4, 801, dtype=torch.float64)[:, None].repeat(1, 2)
    B = bspline_basis(x, knots, k)
    assert B.shape == (801, 2, G + k)
    for i in range(2):
        t = knots[i].numpy()
        for m in range(G + k):
            c = np.zeros(G + k)
            c[m] = 1.0
            ref = BSpline(t, c, k, extrapolate=False)(x[:, i].numpy())
            ref = np.nan_to_num(ref, nan=0.0)  # scipy gives NaN outside [t_k, t_{n}); we give 0 outside the knots
            inside = (x[:, i].numpy() >= t[k]) & (x[:, i].numpy() < t[-k - 1])
            np.testing.assert_allclose(B[inside, i, m].numpy(), ref[inside], atol=1e-12)


def test_partition_of_unity_inside_grid():
    knots = _knots(5, 3, uniform=False)
    inner_lo, inner_hi = knots[:, 3], knots[:, -4]
    x = inner_lo + (inner_hi - inner_lo) * torch.rand(500, 2, dtype=torch.float64) * 0.999
    assert torch.allclose(bspline_basis(x, knots, 3).sum(-1), torch.ones(500, 2, dtype=torch.float64))


def test_basis_gradcheck():
    knots = _knots(5, 3)
    x = (torch.rand(40, 2, dtype=torch.float64) * 3 - 1.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda z: bspline_basis(z, knots, 3), (x,))


def test_lstsq_recovers_spline_and_never_raises():
    k, G = 3, 7
    knots = _knots(G, k, uniform=True)
    coef = torch.randn(2, 3, G + k, dtype=torch.float64)
    lo, hi = knots[:, k], knots[:, -k - 1]
    x = lo + (hi - lo) * torch.rand(2000, 2, dtype=torch.float64)
    y = spline_eval(x, knots, coef, k)
    fit = lstsq_coef(x, y, knots, k)
    assert torch.allclose(spline_eval(x, knots, fit, k), y, atol=1e-5)
    # degenerate data: all samples identical, a single sample, samples outside the grid
    for xd in (torch.zeros(50, 2, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64),
               torch.full((10, 2), 100.0, dtype=torch.float64)):
        c = lstsq_coef(xd, torch.ones(len(xd), 2, 3, dtype=torch.float64), knots, k)
        assert torch.isfinite(c).all()


def test_adaptive_grid_handles_constant_and_duplicates():
    x = torch.cat([torch.zeros(100, 1), torch.rand(100, 1)], 1).double()
    x[:, 0] = 3.0
    g = adaptive_grid(x, 5)
    assert torch.isfinite(g).all()
    assert (g.diff(dim=1) > 0).all()  # strictly increasing even for a constant input


# --------------------------------------------------------------------------- local (fast) evaluation

from kanstudio.core.spline import KnotTables, bspline_basis_dense, features  # noqa: E402


def _uneven_knots(G, k, seed):
    g = torch.Generator().manual_seed(seed)
    inner = torch.sort(torch.rand(3, G + 1, generator=g, dtype=torch.float64) * 4 - 2, dim=1).values
    return extend_grid(inner, k)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("G", [1, 3, 5, 20])
def test_local_basis_matches_dense_recursion(k, G):
    """The span-local polynomial evaluation equals the full Cox-de Boor recursion to rounding,
    everywhere: inside, on and next to every knot, outside, far outside."""
    for knots in (_uneven_knots(G, k, seed=10 * k + G), _knots(G, k, uniform=True)):
        g = torch.Generator().manual_seed(G)
        kT = knots.T.contiguous()
        x = torch.cat([torch.rand(2000, knots.shape[0], generator=g, dtype=torch.float64) * 10 - 5,
                       kT, kT + 1e-13, kT - 1e-13, kT * (1 + 1e-16),
                       torch.full((1, knots.shape[0]), 1e300, dtype=torch.float64)])
        B = bspline_basis(x, knots, k)
        assert B.shape == (len(x), knots.shape[0], G + k)
        assert (B - bspline_basis_dense(x, knots, k)).abs().max() <= 1e-12
    n = knots.shape[0]
    inf = torch.tensor([[float("inf")] * n, [-float("inf")] * n], dtype=torch.float64)
    assert torch.equal(bspline_basis(inf, knots, k), torch.zeros(2, n, G + k, dtype=torch.float64))


def test_span_lookup_by_cells_and_by_search_agree():
    """Grids from data use the cell table; a grid with a near-duplicate knot falls back to the
    binary search. Both give the dense basis."""
    x = torch.cat([torch.rand(300, 2, dtype=torch.float64) ** 4, torch.rand(300, 2, dtype=torch.float64)])
    adaptive = extend_grid(adaptive_grid(x, 7), 3)
    crowded = adaptive.clone()
    crowded[:, 6] = crowded[:, 5] + 1e-9 * (crowded[:, 7] - crowded[:, 5])
    assert KnotTables(adaptive, 3).cells is not None and KnotTables(crowded, 3).cells is None
    for knots in (adaptive, crowded):
        pts = torch.cat([x, knots.T.contiguous(), torch.linspace(-3, 3, 1001, dtype=torch.float64)[:, None].repeat(1, 2)])
        assert (bspline_basis(pts, knots, 3) - bspline_basis_dense(pts, knots, 3)).abs().max() <= 1e-12


def test_features_with_silu_gradcheck_and_float32():
    torch.manual_seed(0)
    knots = _knots(5, 3)
    T = KnotTables(knots, 3)
    x = (torch.rand(40, 2, dtype=torch.float64) * 3 - 1.5).requires_grad_()
    F = features(x, T)
    assert torch.allclose(F[:, :, -1], torch.nn.functional.silu(x))
    assert torch.equal(F[:, :, :-1], bspline_basis(x, knots, 3))
    assert torch.autograd.gradcheck(lambda z: features(z, T), (x,))
    x32, k32 = x.detach().float(), knots.float()  # float32 arithmetic, same points and knots
    assert (bspline_basis(x32, k32, 3).double() - bspline_basis(x32.double(), k32.double(), 3)).abs().max() < 1e-5
