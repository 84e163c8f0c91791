"""Refit time of a snapped network (the studio's Refit button, and every discovery attempt after
auto-symbolic): snapped edges train through autograd, not the compiled objective.

f = exp(sin(pi x) + y^2), 1000 rows; [2,1,1] trained 30 steps then every edge snapped
(R^2 >= 0.9), and [2,5,1] trained 30 steps (lambda 1e-3) with the edges of R^2 >= 0.999 snapped;
then 50 LBFGS steps without grid updates, best of 3. Torch at 2 threads.

    .venv/bin/python benchmarks/snapped_refit.py
"""
from __future__ import annotations

import time

import numpy as np
import torch


def main() -> None:
    torch.set_num_threads(2)
    from kanstudio.core.model import KAN

    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (1000, 2))
    y = np.exp(np.sin(np.pi * X[:, 0]) + X[:, 1] ** 2)
    for width, r2 in (([2, 1, 1], 0.9), ([2, 5, 1], 0.999)):
        m = KAN(width, seed=0)
        m.fit(X, y, steps=30, lamb=1e-3 if width[1] > 1 else 0.0)
        report = m.auto_symbolic(r2_threshold=r2)
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            m.fit(steps=50, update_grid=False)
            best = min(best, time.perf_counter() - t)
        print(f"{str(width):10s} {len(report['snapped'])} edge(s) snapped: refit 50 steps {best:.3f} s (best of 3)")


if __name__ == "__main__":
    main()
