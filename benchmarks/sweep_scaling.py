"""How a sweep scales with Dask workers: the same settings on 1, 2, ... local worker processes.

The sweep: f = exp(sin(pi x) + y^2), 1000 rows, widths [2,1,1] and [2,5,1] x seeds 0..S-1 (8
settings by default), each through the whole pipeline (train, prune, snap, refit, constants).
Each worker has one thread; cluster start-up is timed apart from the sweep. The in-process
baseline runs the same tasks one after another with one torch thread, so "speed-up" is against
what one core does without Dask at all.

    .venv/bin/python benchmarks/sweep_scaling.py [--workers 1,2] [--seeds 4]
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--seeds", type=int, default=4)
    a = ap.parse_args(argv)
    import numpy as np
    import torch

    from kanstudio.core.discover import DiscoverConfig, SearchData, _split, run_task
    from kanstudio.core.search_plan import shape_tasks
    from kanstudio.core.sweep import make_client, sweep
    from kanstudio.core.views import View

    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (1000, 2))
    y = np.exp(np.sin(np.pi * X[:, 0]) + X[:, 1] ** 2)
    widths, seeds = ["2,1,1", "2,5,1"], list(range(a.seeds))
    cfg = DiscoverConfig(time_limit=None)
    n = len(widths) * len(seeds)
    print(f"sweep: {len(widths)} widths x {len(seeds)} seeds = {n} settings, 1000 rows, exp(sin(pi x)+y^2)")

    torch.set_num_threads(1)
    Xf, yf, Xv, yv = _split(X, y, cfg.val_fraction, cfg.seed)
    data = SearchData(Xf, yf, Xv, yv, ("x", "y"), "f")
    view = View.identity(["x", "y"])
    t0 = time.perf_counter()
    for w in widths:
        for s in seeds:
            (task,) = shape_tasks(view, [w])
            run_task(task, data, replace(cfg, seed=s))
    base = time.perf_counter() - t0
    print(f"  in process, one thread, no Dask : {base:6.1f} s")

    for k in [int(v) for v in a.workers.split(",")]:
        t0 = time.perf_counter()
        client = make_client(workers=k)
        start = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()
            res = sweep(X, y, ["x", "y"], "f", client, widths=widths, seeds=seeds, config=cfg)
            wall = time.perf_counter() - t0
        finally:
            client.close()
        ok = sum(1 for r in res.rows if not r.error)
        print(f"  {k} worker{'s' if k > 1 else ' '} (cluster start {start:4.1f} s): {wall:6.1f} s  "
              f"speed-up {base / wall:4.2f}x vs in process, {ok}/{n} settings done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
