"""Discovery benchmark: the unattended pipeline on every equation of feynman_dev.csv.

For each equation: 1000 uniform training points from the published ranges (fixed seed), 10 000
noise-free test points; optionally Gaussian noise on the training y with standard deviation
``noise * RMS(y)`` (the SRBench convention). Prints per equation the formula found, then:
exact recovery rate (SymPy: simplify(true - found) == 0, after rounding floats within 1e-6 of a
nice number), rate of test R^2 >= 0.9999, median seconds per equation.

    python benchmarks/feynman.py                # noise 0 and 1 %
    python benchmarks/feynman.py --noise 0 --ids T1_kan_paper,D05_I.29.4
"""
from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "feynman_dev.csv"


def parse_ranges(spec: str) -> list[tuple[str, float, float]]:
    out = []
    for part in spec.split(";"):
        name, lo, hi = part.split(":")
        out.append((name, float(lo), float(hi)))
    return out


def exact_match(true_str: str, found_str: str, ranges) -> bool:
    import sympy
    from sympy.parsing.sympy_parser import parse_expr

    syms = {n: sympy.Symbol(n, positive=True) if lo > 0 else sympy.Symbol(n, real=True) for n, lo, _ in ranges}
    true = parse_expr(true_str, local_dict=dict(syms))
    found = parse_expr(found_str, local_dict=dict(syms))
    # "after rounding": floats within 1e-6 (relative) of a simple number are that number
    from kanstudio.core.constants import nice_values

    rep = {}
    for f in found.atoms(sympy.Float):
        for c in nice_values(float(f), rel=1e-6):
            rep[f] = c
            break
    found = found.xreplace(rep)
    if sympy.count_ops(found) > 300:
        return False
    # Numeric screen first: SymPy's simplify can run for many minutes on a wrong trig formula,
    # and only a formula that agrees to ~1e-9 at random points can be exactly right.
    import numpy as np

    names = [n for n, _, _ in ranges]
    pts = np.random.default_rng(1).uniform([lo for _, lo, _ in ranges], [hi for _, _, hi in ranges], (64, len(names)))
    ft = sympy.lambdify([syms[n] for n in names], true, "numpy")
    ff = sympy.lambdify([syms[n] for n in names], found, "numpy")
    with np.errstate(all="ignore"):
        a, b = np.broadcast_to(ft(*pts.T), 64), np.broadcast_to(ff(*pts.T), 64)
    if not (np.all(np.isfinite(b)) and np.allclose(a, b, rtol=1e-9, atol=1e-12)):
        return False
    diff = sympy.simplify(true - found)
    if diff == 0:
        return True
    ratio = sympy.simplify(found / true)
    return ratio == 1


def run_one(args):
    row, noise, time_limit, seed = args
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from kanstudio.core.discover import DiscoverConfig, discover
    import sympy
    from sympy.parsing.sympy_parser import parse_expr

    ranges = parse_ranges(row["variables"])
    names = [n for n, _, _ in ranges]
    rng = np.random.default_rng(seed)
    draw = lambda n: np.column_stack([rng.uniform(lo, hi, n) for _, lo, hi in ranges])  # noqa: E731
    syms = [sympy.Symbol(n) for n in names]
    f = sympy.lambdify(syms, parse_expr(row["formula"], local_dict={n: s for n, s in zip(names, syms)}), "numpy")
    X, Xt = draw(1000), draw(10000)
    y, yt = f(*X.T), f(*Xt.T)
    y = np.broadcast_to(y, (len(X),)).astype(float)
    yt = np.broadcast_to(yt, (len(Xt),)).astype(float)
    if noise:
        y = y + rng.normal(0, noise * np.sqrt(np.mean(y**2)), len(y))
    t0 = time.perf_counter()
    try:
        d = discover(X, y, names, "y", Xt, yt, DiscoverConfig(seed=seed, time_limit=time_limit))
        found, r2 = d.formula.sympy_str(), d.formula.r2_test
        width = d.attempts and [a.width for a in d.attempts if a.formula is d.formula or a.model is d.model][0]
    except Exception as e:
        found, r2, width = f"ERROR {type(e).__name__}: {e}", float("nan"), "-"
    secs = time.perf_counter() - t0
    try:
        exact = (not found.startswith("ERROR")) and exact_match(row["formula"], found, ranges)
    except Exception:
        exact = False
    return {"id": row["id"], "true": row["formula"], "found": found, "r2": r2, "exact": exact, "seconds": secs,
            "width": width}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--noise", default="0,0.01", help="comma-separated noise levels (fraction of RMS(y))")
    ap.add_argument("--ids", default=None, help="comma-separated equation ids (default: all)")
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    with open(a.data, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if a.ids:
        keep = set(a.ids.split(","))
        rows = [r for r in rows if r["id"] in keep]
    summary = []
    for noise in [float(v) for v in a.noise.split(",")]:
        print(f"\n== noise {noise:g} ({len(rows)} equations, {a.jobs} workers, 1 torch thread each) ==", flush=True)
        jobs = [(r, noise, a.time_limit, a.seed) for r in rows]
        ctx = mp.get_context("spawn")
        with ctx.Pool(a.jobs) as pool:
            results = []
            for res in pool.imap(run_one, jobs):
                results.append(res)
                mark = "EXACT" if res["exact"] else ("r2ok " if res["r2"] >= 0.9999 else "     ")
                print(f"{mark} {res['id']:<16} {res['seconds']:5.1f}s  R2={res['r2']:.6f}  [{res['width']}]  "
                      f"true: {res['true']}   found: {res['found']}", flush=True)
        n = len(results)
        exact = sum(r["exact"] for r in results) / n
        r2ok = sum(r["r2"] >= 0.9999 for r in results) / n
        med = statistics.median(r["seconds"] for r in results)
        summary.append((noise, exact, r2ok, med, n))
        print(f"noise {noise:g}: exact {exact:.0%}, R2>=0.9999 {r2ok:.0%}, median {med:.1f} s/equation", flush=True)
    print("\n" + " | ".join(f"noise {nz:g}: exact {ex:.0%} ({round(ex * n)}/{n}), R2>=0.9999 {ok:.0%}, median {m:.1f} s"
                            for nz, ex, ok, m, n in summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
