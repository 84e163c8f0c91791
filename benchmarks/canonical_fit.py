"""The KAN paper's canonical example, side by side with pykan 0.2.8 in one process.

[2,5,1], grid=5, k=3 on f(x, y) = exp(sin(pi x) + y^2), x, y ~ U[-1, 1], 1000 train and 1000 test
rows from pykan's own ``create_dataset(seed=0)`` (the same tensors for both), 50 LBFGS steps with
lamb=1e-3, grid updates every 5 steps until step 50 on both sides, each side with its own default
sparsity weights: ours mu1 = mu2 = 1 on the KAN paper's layer-wide L1 + entropy of mean |phi|;
pykan's fit() mu1 = 1, mu2 = 2 on its row/column entropy of std(phi) / (std(x) + 0.1).
Model seeds 0..N-1 on both sides (``--seeds N``, default 16): one seed's test RMSE swings 2-3x from
seed to seed on both sides (and pykan's own runs of a seed are not repeatable), so medians are
compared, and the tails: the distribution (min, p10, median, p90, max) over the seeds is printed for
both sides. Prints each seed's wall time and test RMSE, then the medians; the last line is the speed ratio of the median wall times. Both sides run
their default dtype (ours float64, pykan float32); ours in float32 is printed for reference.
``BENCH_THREADS=1`` overrides the thread count (2, as specified) for both sides.

    .venv/bin/python benchmarks/canonical_fit.py [--seeds 16]
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _pykan import THREADS, quiet, require_pykan  # noqa: E402
STEPS, LAMB = 50, 1e-3


def import_pykan():
    kan, utils = require_pykan("kan", "kan.utils")
    return kan.MultKAN, utils.create_dataset


def rmse(pred, y) -> float:
    pred, y = np.asarray(pred, dtype=np.float64).reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)
    return float(np.sqrt(np.mean((pred - y) ** 2)))


def run_pykan(MultKAN, ds, seed: int = 0) -> tuple[float, float]:
    torch.manual_seed(seed)
    np.random.seed(seed)
    with quiet():
        t0 = time.perf_counter()
        model = MultKAN(width=[2, 5, 1], grid=5, k=3, seed=seed, auto_save=False)
        model.fit(ds, opt="LBFGS", steps=STEPS, lamb=LAMB)  # defaults: grid update every 5 steps until 50
        wall = time.perf_counter() - t0
    with torch.no_grad():
        pred = model(ds["test_input"]).numpy()
    return wall, rmse(pred, ds["test_label"].numpy())


def run_ours(ds, dtype: str, seed: int = 0) -> tuple[float, float]:
    from kanstudio.core.model import KAN

    X, y = ds["train_input"].double().numpy(), ds["train_label"].double().numpy()[:, 0]
    t0 = time.perf_counter()
    model = KAN(width=[2, 5, 1], grid=5, k=3, seed=seed, device="cpu", dtype=dtype)
    model.fit(X, y, steps=STEPS, opt="lbfgs", lamb=LAMB)  # defaults: grid update every 5 steps until 50
    wall = time.perf_counter() - t0
    return wall, rmse(model.predict(ds["test_input"].double().numpy()), ds["test_label"].numpy())


def main() -> None:
    n_seeds = int(sys.argv[sys.argv.index("--seeds") + 1]) if "--seeds" in sys.argv else 16
    torch.set_num_threads(THREADS)
    MultKAN, create_dataset = import_pykan()
    f = lambda x: torch.exp(torch.sin(torch.pi * x[:, [0]]) + x[:, [1]] ** 2)  # noqa: E731
    ds = create_dataset(f, n_var=2, train_num=1000, test_num=1000, seed=0)

    print("canonical fit: [2,5,1] grid=5 k=3, exp(sin(pi x)+y^2), 1000 train / 1000 test,")
    print(f"  {STEPS} LBFGS steps (max_iter 20 each), lamb={LAMB:g}, grid update every 5 steps until step 50,")
    print(f"  model seeds 0..{n_seeds - 1} on both sides (one seed's RMSE swings 2-3x on both sides)")
    print(f"  torch {torch.__version__}, CPU, torch.set_num_threads({torch.get_num_threads()}) for both sides")
    run_ours(ds, "float64")  # warm-up: imports and first-call dispatch, not counted on either side
    rows = []
    for seed in range(n_seeds):
        p_wall, p_rmse = run_pykan(MultKAN, ds, seed)
        o_wall, o_rmse = run_ours(ds, "float64", seed)
        rows.append((p_wall, p_rmse, o_wall, o_rmse))
        print(f"  seed {seed}: pykan {p_wall:6.3f} s  RMSE {p_rmse:.5f}   kanstudio {o_wall:6.3f} s  RMSE {o_rmse:.5f}",
              flush=True)
    p_wall, p_rmse, o_wall, o_rmse = (float(np.median([r[i] for r in rows])) for i in range(4))
    o32_wall, o32_rmse = run_ours(ds, "float32", 0)
    print(f"median over seeds, pykan 0.2.8 (float32)         : {p_wall:7.3f} s   test RMSE {p_rmse:.5f}")
    print(f"median over seeds, kanstudio (float64, default)  : {o_wall:7.3f} s   test RMSE {o_rmse:.5f}")
    print(f"kanstudio float32, seed 0 (for reference)        : {o32_wall:7.3f} s   test RMSE {o32_rmse:.5f}")
    for name, col in (("pykan", 1), ("kanstudio", 3)):
        v = np.array([r[col] for r in rows])
        print(f"test RMSE over seeds, {name:9s}: min {v.min():.5f}  p10 {np.percentile(v, 10):.5f}  median "
              f"{np.median(v):.5f}  p90 {np.percentile(v, 90):.5f}  max {v.max():.5f}")
    p90 = [float(np.percentile([r[c] for r in rows], 90)) for c in (1, 3)]
    print(f"median RMSE ratio pykan/kanstudio (>= 1: ours at least as accurate): {p_rmse / o_rmse:.2f}")
    print(f"90th-percentile RMSE ratio pykan/kanstudio (>= 1: ours at least as accurate): {p90[0] / p90[1]:.2f}")
    print(f"speed-up kanstudio (float64 default) vs pykan, median wall time: {p_wall / o_wall:.1f}x")


if __name__ == "__main__":
    main()
