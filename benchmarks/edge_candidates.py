"""Rank every symbolic candidate for one KAN edge: kanstudio vs pykan 0.2.8, same process, same data.

A ``MultKAN(width=[1,1], grid=5, k=3, seed=0)`` is fitted briefly to 1000 samples of a known
function; both libraries then rank 29 candidates on that edge's own (pre-activation,
activation) samples: pykan with ``suggest_symbolic(0, 0, 0, lib=<its full SYMBOLIC_LIB>, topk=29)``,
kanstudio with ``fit_affine`` over its 26 built-ins plus 3 functions parsed from strings.

    .venv/bin/python benchmarks/edge_candidates.py [--runs 20] [--pykan-runs 1] [--threads N]

The last line is the speed ratio.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

try:
    import kanstudio  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kanstudio.core.symbolic import default_names, fit_affine, parse_function

USER_FUNCTIONS = ["1/x^4", "1/x^5", "x*exp(-x)"]  # pykan's extra entries, plus one of ours
TRUE_LAW = "0.8*sin(2.5*x + 0.4) + 0.3"


def _true_law(x: torch.Tensor) -> torch.Tensor:
    return 0.8 * torch.sin(2.5 * x + 0.4) + 0.3


def _import_pykan():
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import kan
            from kan.utils import SYMBOLIC_LIB
    except ImportError as err:
        sys.exit(f"pykan is not installed ({err}); install the benchmark extras: pip install -e .[bench]"
                 " -c constraints.txt")
    return kan, SYMBOLIC_LIB


def _trained_edge(kan, n: int, steps: int, workdir: str):
    """A [1,1] pykan model fitted to the law; returns the model and its edge's samples."""
    torch.manual_seed(0)
    x = torch.rand(n, 1) * 2 - 1
    dataset = {"train_input": x, "train_label": _true_law(x), "test_input": x, "test_label": _true_law(x)}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        model = kan.MultKAN(width=[1, 1], grid=5, k=3, seed=0, auto_save=False, ckpt_path=workdir)
        model.fit(dataset, opt="LBFGS", steps=steps)
        model(dataset["train_input"])  # caches acts / spline_postacts for suggest_symbolic
    x_edge = model.acts[0][:, 0].detach().clone()
    y_edge = model.spline_postacts[0][:, 0, 0].detach().clone()
    return model, x_edge, y_edge


def _pykan_rank(model, lib: list[str]) -> tuple[float, list[str]]:
    buf = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        model.suggest_symbolic(0, 0, 0, lib=lib, topk=len(lib), verbose=True)
    elapsed = time.perf_counter() - t0
    rows = [line.split() for line in buf.getvalue().splitlines()[1:]]
    top = [f"{r[1]} (r2 {float(r[2]):.6f})" for r in rows if len(r) >= 3 and r[0].isdigit()]
    return elapsed, top


def _time_ours(x, y, functions, runs: int):
    fit_affine(x, y, functions)  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        ranked = fit_affine(x, y, functions)
        times.append(time.perf_counter() - t0)
    return times, ranked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=20, help="timed kanstudio runs (median)")
    ap.add_argument("--pykan-runs", type=int, default=1, help="timed pykan runs (median)")
    ap.add_argument("--steps", type=int, default=20, help="LBFGS steps fitting the pykan model")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    kan, SYMBOLIC_LIB = _import_pykan()
    pykan_lib = list(SYMBOLIC_LIB)
    ours = default_names() + [parse_function(s) for s in USER_FUNCTIONS]

    with tempfile.TemporaryDirectory() as workdir:
        model, x_edge, y_edge = _trained_edge(kan, args.samples, args.steps, workdir)

        times, ranked = _time_ours(x_edge, y_edge, ours, args.runs)
        t_ours = statistics.median(times)

        pk = [_pykan_rank(model, pykan_lib) for _ in range(args.pykan_runs)]
        t_pykan = statistics.median(t for t, _ in pk)
        pykan_top = pk[-1][1]

    print(f"edge: {args.samples} samples of y = {TRUE_LAW} on [-1, 1], through a pykan [1,1] KAN "
          f"(grid 5, k 3, {args.steps} LBFGS steps); torch threads {torch.get_num_threads()}, "
          f"CPU load {os.getloadavg()[0]:.1f}")
    print(f"kanstudio: {len(ours)} candidates, median of {args.runs} runs {t_ours * 1e3:.1f} ms "
          f"(min {min(times) * 1e3:.1f} ms)")
    for i, c in enumerate(ranked[:5]):
        print(f"  {i}  {c.name:10s} r2 {c.r2:.6f}  score {c.score:7.3f}  "
              f"y = {c.c:.4g}*f({c.a:.4g}*x + {c.b:.4g}) + {c.d:.4g}")
    print(f"pykan 0.2.8: {len(pykan_lib)} candidates, suggest_symbolic {t_pykan:.2f} s "
          f"(median of {args.pykan_runs})")
    for i, row in enumerate(pykan_top[:5]):
        print(f"  {i}  {row}")
    print(f"edge candidates: kanstudio {t_ours:.3f} s, pykan {t_pykan:.1f} s, ratio {t_pykan / t_ours:.0f}x")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
