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


# --------------------------------------------------------------------------- uniform-knot shortcut

from kanstudio.core.spline import _features_impl  # noqa: E402


def _tables_pair(knots, k):
    """The same knots evaluated by the uniform shortcut and by the general tables."""
    fast, general = KnotTables(knots, k), KnotTables(knots, k)
    general.uniform = None
    return fast, general


def _probe_points(knots, n_random=3000, seed=0):
    """Random points over the knots and beyond, every knot, knots +- a few ulps, far outside."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = knots[:, 0], knots[:, -1]
    span = hi - lo
    kT = knots.T.contiguous()
    eps = torch.finfo(knots.dtype).eps
    return torch.cat([lo + (torch.rand(n_random, knots.shape[0], generator=g, dtype=knots.dtype) * 1.4 - 0.2) * span,
                      kT, kT + 4 * eps * kT.abs().clamp_min(1), kT - 4 * eps * kT.abs().clamp_min(1),
                      torch.full((1, knots.shape[0]), 1e30, dtype=knots.dtype),
                      torch.full((1, knots.shape[0]), -1e30, dtype=knots.dtype)])


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_uniform_shortcut_matches_tables_and_dense(k, dtype):
    for G in (1, 5, 12):
        knots = extend_grid(uniform_grid(torch.tensor([-1.0, 0.5], dtype=dtype), torch.tensor([1.0, 4.0], dtype=dtype), G), k)
        fast, general = _tables_pair(knots, k)
        assert fast.uniform is not None
        x = _probe_points(knots, seed=G + 10 * k)
        ref = bspline_basis_dense(x.double(), knots.double(), k)
        tol = 1e-12 if dtype == torch.float64 else 2e-5
        Ff, Fg = features(x, fast), features(x, general)
        assert Ff.shape == (len(x), 2, G + k + 1)
        assert (Ff[..., :-1].double() - ref).abs().max() <= tol
        assert (Ff - Fg).abs().max() <= tol
        outside = (x < knots[:, 0]) | (x >= knots[:, -1])
        assert outside.any() and torch.all(Ff[..., :-1][outside] == 0)  # exactly 0, not just small
        # the derivatives the backward uses agree between the two paths (the windows may differ
        # for points within rounding of a knot, so compare them as dense blocks)
        _, cols_f, d_f = _features_impl(x, fast, True, True)
        _, cols_g, d_g = _features_impl(x, general, True, True)
        Gf = torch.zeros(len(x) * 2, G + k + 1, dtype=dtype).scatter_(1, cols_f, d_f.T.contiguous())
        Gg = torch.zeros(len(x) * 2, G + k + 1, dtype=dtype).scatter_(1, cols_g, d_g.T.contiguous())
        h = float((knots[:, 1] - knots[:, 0]).min())
        near = ((x.reshape(-1, 2, 1) - knots[None]).abs().amin(-1) < 1e-4 * h).reshape(-1)
        keep = ~near if k == 1 else torch.ones_like(near)  # the derivative of k = 1 jumps at knots
        assert (Gf - Gg)[keep].abs().max() <= (1e-9 if dtype == torch.float64 else 1e-4) / h


@pytest.mark.parametrize("k", [1, 3, 5])
def test_uniform_shortcut_nan_and_inf(k):
    knots = extend_grid(uniform_grid(torch.tensor([-1.0, -1.0], dtype=torch.float64), torch.tensor([1.0, 1.0], dtype=torch.float64), 5), k)
    T = KnotTables(knots, k)
    assert T.uniform is not None
    x = torch.tensor([[0.3, float("nan")], [float("inf"), -float("inf")], [0.1, 0.2]], dtype=torch.float64)
    F = features(x, T)
    assert torch.isnan(F[0, 1]).any() and torch.isnan(F[0, 1, -1])  # NaN stays NaN
    assert torch.equal(F[1, :, :-1], torch.zeros(2, 5 + k, dtype=torch.float64))  # +-inf: outside, exactly 0
    assert torch.all(torch.isfinite(F[[0, 2]][:, 0]))
    assert torch.allclose(F[2, :, :-1], bspline_basis_dense(x[2:], knots, k)[0], atol=1e-12)
    assert torch.allclose(F[2, :, :-1].sum(-1), torch.ones(2, dtype=torch.float64))  # partition of unity inside


def test_uniform_detection():
    k = 3
    knots = extend_grid(uniform_grid(torch.tensor([-1.0]), torch.tensor([1.0]), 5), k)
    assert KnotTables(knots, k).uniform is not None  # float32 rounding of the knots is fine
    bent = knots.clone()
    bent[0, 5] += 1e-4
    assert KnotTables(bent, k).uniform is None
    adaptive = extend_grid(adaptive_grid(torch.rand(200, 2, dtype=torch.float64) ** 3, 5), k)
    assert KnotTables(adaptive, k).uniform is None


@pytest.mark.parametrize("k", [1, 2, 3])
def test_uniform_shortcut_gradcheck(k):
    knots = extend_grid(uniform_grid(torch.tensor([-1.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 2.0], dtype=torch.float64), 4), k)
    T = KnotTables(knots, k)
    assert T.uniform is not None
    g = torch.Generator().manual_seed(k)
    # inside the grid, in the extension spans and outside: both the shortcut and the fix-up rows
    x = (knots[:, 0] - 0.5 + torch.rand(30, 2, generator=g, dtype=torch.float64) * (knots[:, -1] - knots[:, 0] + 1)).requires_grad_()
    assert torch.autograd.gradcheck(lambda z: features(z, T), (x,))
    assert torch.autograd.gradcheck(lambda z: features(z, T, with_silu=False), (x,))


def test_features_contract_and_any_grad_layout():
    """``_features_impl``: F, the distinct column of every local value (silu last) and their
    derivatives; the backward gives the same x-gradient for any layout of the incoming grad."""
    for knots in (extend_grid(uniform_grid(torch.tensor([-1.0, -2.0, 0.0]), torch.tensor([1.0, 2.0, 3.0]), 5), 3),
                  _uneven_knots(5, 3, seed=1).float()):
        T = KnotTables(knots, 3)
        x = torch.rand(50, 3) * 4 - 1.5
        F, cols, dvals = _features_impl(x, T, with_silu=True, need_grad=True)
        N, W = 150, 9
        assert F.shape == (50, 3, W) and cols.shape == (N, 5) and dvals.shape == (5, N)
        assert torch.all(cols[:, -1] == W - 1) and torch.all(cols.sort(1).values.diff(dim=1) > 0)
        rest = F.reshape(N, W).scatter(1, cols, 0.0)
        assert torch.all(rest == 0)  # every nonzero sits at one of the listed columns
        grad = torch.randn(3, 50, W)  # (n_in, batch, M) contiguous -> transposed view
        xg = x.clone().requires_grad_()
        a = torch.autograd.grad(features(xg, T), xg, grad.transpose(0, 1))[0]
        b = torch.autograd.grad(features(xg, T), xg, grad.transpose(0, 1).contiguous())[0]
        ref = (grad.transpose(0, 1).reshape(N, W).gather(1, cols) * dvals.T).sum(1).view(50, 3)
        assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a, ref, atol=1e-5)
