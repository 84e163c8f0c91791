"""One LBFGS training step, side by side with pykan 0.2.8 in one process.

[10,10,10,1], grid=5, k=3, 4000 samples x ~ U[-1, 1]^10, smooth target
y = sin(pi x0) + x1 * x2 + exp(x3 / 2) + 0.5 * cos(x4 + x5) (the same tensors for both).
A step is one call of each library's public training entry point with steps=1 (pykan
``MultKAN.fit``, kanstudio ``train``): LBFGS with max_iter=20 (max_eval=25), history 10, strong
Wolfe line search, no grid update, everything the call costs included. Each side continues from
its own state (warm-up steps first); median of the repeats.
Printed: time per step, function evaluations per step, time per evaluation; the last line is the
step speed ratio. Run with lamb=0 (the plain step) and, for reference, lamb=1e-3 (sparsity penalty).

    .venv/bin/python benchmarks/lbfgs_step.py
"""
from __future__ import annotations

import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _pykan import THREADS, quiet, require_pykan  # noqa: E402
WIDTH, N, REPEATS, WARMUP = [10, 10, 10, 1], 4000, 5, 2


def import_pykan():
    return require_pykan("kan").MultKAN


def data():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(N, WIDTH[0], generator=g) * 2 - 1
    y = (torch.sin(torch.pi * X[:, 0]) + X[:, 1] * X[:, 2] + torch.exp(X[:, 3] / 2)
         + 0.5 * torch.cos(X[:, 4] + X[:, 5]))[:, None]
    return X, y


def pykan_stepper(MultKAN, X, y, lamb):
    """One call of pykan's ``fit(steps=1)``: its LBFGS (fresh each call, as in any fit) and closure."""
    with quiet():
        model = MultKAN(width=WIDTH, grid=5, k=3, seed=0, auto_save=False)
    # fit() also evaluates the test loss each step: give it a tiny test set so that costs ~nothing.
    ds = {"train_input": X, "train_label": y, "test_input": X[:50], "test_label": y[:50]}
    evals = [0]
    forward = model.forward

    def counted(*a, **k):
        evals[0] += 1
        return forward(*a, **k)

    model.forward = counted  # one forward per closure call (plus the small test-set one)

    def step():
        with quiet():
            model.fit(ds, opt="LBFGS", steps=1, lamb=lamb, update_grid=False)
        evals[0] -= 1  # the test-set forward

    return step, evals


def ours_stepper(X, y, lamb, dtype):
    """One call of kanstudio's ``train(steps=1)``: fresh LBFGS, snapshot for rollback, closure,
    finiteness check, final RMSE event -- everything a step costs through the public API."""
    from kanstudio.core import train as T
    from kanstudio.core.network import KANNetwork

    net = KANNetwork(WIDTH, grid=5, k=3, seed=0, dtype=dtype)
    Xd, yd = X.to(dtype), y.to(dtype)
    cfg = T.TrainConfig(steps=1, opt="lbfgs", lamb=lamb, update_grid=False)
    from kanstudio.core import objective as O

    evals = [0]
    real_fused = O.FusedObjective.__call__

    def counted_fused(self):  # plain spline networks on CPU: the hand-differentiated objective
        evals[0] += 1
        return real_fused(self)

    O.FusedObjective.__call__ = counted_fused
    if lamb > 0:  # through autograd, the penalty is evaluated once per closure call
        real = T.sparsity_penalty

        def counted(*a):
            evals[0] += 1
            return real(*a)

        T.sparsity_penalty = counted
    else:
        forward = net.forward

        def counted(*a):
            evals[0] += 1
            return forward(*a)

        net.forward = counted

    def step():
        T.train(net, Xd, yd, config=cfg)
        if lamb == 0:
            evals[0] -= 1  # the final-RMSE forward of the "done" event

    def stop():
        O.FusedObjective.__call__ = real_fused
        if lamb > 0:
            T.sparsity_penalty = real

    return step, evals, stop


def time_steps(step, evals):
    for _ in range(WARMUP):
        step()
    times, counts = [], []
    for _ in range(REPEATS):
        e0 = evals[0]
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
        counts.append(evals[0] - e0)
    t = statistics.median(times)
    c = statistics.median(counts)
    return t, c


def main() -> None:
    torch.set_num_threads(THREADS)
    MultKAN = import_pykan()
    X, y = data()
    print(f"one LBFGS step (max_iter 20, max_eval 25, strong Wolfe): {WIDTH}, grid=5, k=3, {N} samples")
    print(f"  torch {torch.__version__}, CPU, torch.set_num_threads({torch.get_num_threads()}) for both sides; "
          f"median of {REPEATS} steps after {WARMUP} warm-up steps")
    ratio = None
    for lamb in (1e-3, 0.0):
        p_step, p_evals = pykan_stepper(MultKAN, X, y, lamb)
        p_t, p_n = time_steps(p_step, p_evals)
        rows = [("pykan 0.2.8 (float32)", p_t, p_n)]
        for dtype, label in ((torch.float64, "kanstudio (float64, the default)"), (torch.float32, "kanstudio (float32)")):
            step, evals, stop = ours_stepper(X, y, lamb, dtype)
            try:
                t, n = time_steps(step, evals)
            finally:
                stop()
            rows.append((label, t, n))
        print(f"lamb={lamb:g}:")
        for label, t, n in rows:
            print(f"  {label:34s}: {t * 1e3:8.2f} ms/step  {n:4.0f} evals  {t / max(n, 1) * 1e3:7.3f} ms/eval")
        ratio = p_t / rows[1][1]
        print(f"  speed-up kanstudio (float64 default) vs pykan at lamb={lamb:g}: {ratio:.1f}x")
    print(f"speed-up of one LBFGS step, kanstudio (float64 default) vs pykan, lamb=0: {ratio:.1f}x")


if __name__ == "__main__":
    main()
