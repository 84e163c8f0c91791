"""Where discovery spends time past its time limit, stage by stage.

Runs the unattended search on chosen laws of the suite (benchmarks/laws/) with a time limit and
wraps its stages (training, pruning, grid refinement, auto-symbolic, formula building, constant
tidying, structure tests, the 1-D search) to charge each second spent after the deadline to the
innermost stage running then. Prints per law the total time and the overshoot by stage, then the
sum over laws. One torch thread per law, as in benchmarks/feynman.py.

    python benchmarks/time_limit.py --split holdout --noise 0.01 --min-vars 4
    python benchmarks/time_limit.py --ids S86_test_1,S88_II.36.38 --time-limit 20
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.laws.suite import load_suite, sample, select  # noqa: E402


def _instrument(deadline_box: list, over: dict, stack: list):
    import kanstudio.core.constants as constants
    import kanstudio.core.discover as discover
    import kanstudio.core.structure as structure
    from kanstudio.core.model import KAN

    def wrap(owner, name, label):
        fn = getattr(owner, name)

        def inner(*a, **k):
            t = time.perf_counter()
            if stack:  # the enclosing stage stops being charged while this one runs
                _charge(stack[-1], t)
            stack.append([label, t])
            try:
                return fn(*a, **k)
            finally:
                _charge(stack.pop(), time.perf_counter())
                if stack:
                    stack[-1][1] = time.perf_counter()

        setattr(owner, name, inner)

    def _charge(frame, now):
        label, since = frame
        dl = deadline_box[0]
        if dl is not None and now > dl:
            over[label] += now - max(since, dl)
        frame[1] = now

    for name in ("fit", "prune", "refine", "auto_symbolic"):
        wrap(KAN, name, name)
    wrap(discover, "build_formula", "build_formula")
    wrap(constants, "tidy", "tidy")
    wrap(constants, "refit_floats", "tidy: refit")
    wrap(constants, "simplify_expr", "tidy: simplify")
    wrap(constants._Judge, "err", "tidy: judge")
    wrap(discover, "_structure_tasks", "structure")
    wrap(discover, "fit_1d_attempt", "search_1d")
    wrap(discover, "_in_original_variables", "map_back")
    wrap(discover, "run_task", "task (other)")


def run_one(args) -> dict:
    law, noise, time_limit, seed = args
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from kanstudio.core.discover import DiscoverConfig, discover

    deadline_box, over, stack = [None], defaultdict(float), []
    _instrument(deadline_box, over, stack)
    rng = np.random.default_rng(seed)
    X, y = sample(law, 1000, rng)
    Xt, yt = sample(law, 10000, rng)
    if noise:
        y = y + rng.normal(0, noise * np.sqrt(np.mean(y**2)), len(y))
    t0 = time.perf_counter()
    deadline_box[0] = t0 + time_limit
    error = ""
    try:
        discover(X, y, law.names, law.target, Xt, yt, DiscoverConfig(seed=seed, time_limit=time_limit))
    except Exception as e:  # a failed law still reports its time
        error = f"{type(e).__name__}: {e}"
    total = time.perf_counter() - t0
    return {"id": law.id, "n_vars": len(law.ranges), "seconds": total, "over": dict(over), "error": error}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="full")
    ap.add_argument("--split", default="all", help="dev, holdout or all")
    ap.add_argument("--ids", default=None, help="comma-separated law ids")
    ap.add_argument("--min-vars", type=int, default=1)
    ap.add_argument("--noise", type=float, default=0.0)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    a = ap.parse_args()
    laws = select(load_suite(a.suite), split=a.split, ids=a.ids)
    laws = [law for law in laws if len(law.ranges) >= a.min_vars]
    print(f"{len(laws)} laws, noise {a.noise:g}, time limit {a.time_limit:g} s, {a.jobs} workers", flush=True)
    total = defaultdict(float)
    n_over, worst = 0, 0.0
    with mp.get_context("spawn").Pool(a.jobs) as pool:
        for r in pool.imap(run_one, [(law, a.noise, a.time_limit, a.seed) for law in laws]):
            past = r["seconds"] - a.time_limit
            stages = ", ".join(f"{k} {v:.1f}" for k, v in sorted(r["over"].items(), key=lambda kv: -kv[1]) if v >= 0.05)
            print(f"{r['id']:<28} {r['n_vars']} vars  {r['seconds']:6.1f} s"
                  + (f"  over by {past:5.1f} s: {stages}" if past > 0 else "")
                  + (f"  [{r['error']}]" if r["error"] else ""), flush=True)
            for k, v in r["over"].items():
                total[k] += v
            n_over += past > 0
            worst = max(worst, r["seconds"])
    print(f"\n{n_over}/{len(laws)} laws over {a.time_limit:g} s; longest {worst:.1f} s")
    print("seconds past the limit, summed over laws: "
          + ", ".join(f"{k} {v:.1f}" for k, v in sorted(total.items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main()
