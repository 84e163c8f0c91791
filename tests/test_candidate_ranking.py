"""Candidate ranking (issue #13): near ties go to the simpler, more common function, and a
candidate far below the best R² never outranks a near-perfect one."""
from __future__ import annotations

import numpy as np
import pytest

from kanstudio.core.symbolic import fit_affine
from kanstudio.core.symbolic.affine import FAR_RATIO, NEAR_PERFECT


@pytest.mark.parametrize("seed", range(6))
def test_noisy_parabola_is_x_squared_not_cos_or_the_dead_edge(seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, 400)
    y = x**2 + 0.03 * rng.standard_normal(400)  # R² ~0.99: cos/sin fit it about as well
    ranked = fit_affine(x, y)
    assert ranked[0].name == "x^2", [(c.name, c.r2) for c in ranked[:4]]


def _far_below_never_first(ranked):
    best = max(c.r2 for c in ranked)
    if best < NEAR_PERFECT:
        return
    limit = FAR_RATIO * (1 - best)
    seen_far = False
    for c in ranked:
        far = (1 - c.r2) > limit
        assert not (seen_far and not far), [(c.name, round(c.r2, 5)) for c in ranked]
        seen_far = seen_far or far


def test_dead_edge_ranks_after_a_near_perfect_complex_function():
    x = np.linspace(-3, 3, 300)
    y = np.arctan(2 * x + 0.3) + 2e-2 * np.random.default_rng(0).standard_normal(300)
    ranked = fit_affine(x, y, ["0", "x", "arctan", "x^2"])
    names = [c.name for c in ranked]
    assert names.index("arctan") < names.index("0"), [(c.name, c.r2, c.score) for c in ranked]
    _far_below_never_first(ranked)
    assert [c.score for c in ranked] == sorted(c.score for c in ranked)


def test_exact_cos_is_still_cos_not_shifted_sin():
    x = np.linspace(-2, 2, 200)
    ranked = fit_affine(x, 3 * np.cos(1.7 * x) + 0.5)
    assert ranked[0].name == "cos" and ranked[0].r2 > 0.999999
