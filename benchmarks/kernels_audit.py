"""What the compiled kernels (kanstudio/core/csrc) buy, in figures a user sees.

Each row runs in fresh processes (best of two) with the kernels on, then off (the module's
``_kernels`` handle set to None, which is the path a machine without a C compiler takes), and
measures, torch at 2 threads:

- LBFGS step: [10,10,10,1], 4000 samples, lambda 0, mean over 10 steps (after 2 warm-up steps),
  for the default float64 network and for ``dtype="float32"``;
- canonical fit: [2,5,1], exp(sin(pi x)+y^2), 1000 rows, 50 LBFGS steps, lambda 1e-3;
- discovery: ``discover`` on the same law (the unattended shape search);
- layer: one KANLayer 64 -> 64, batch 4096, float32, forward + backward through autograd
  (median of 25), as a multiple of nn.Linear + SiLU.

The one group left is ``objective`` (the hand-differentiated loss and gradient of spline
networks, objective.py: csrc/layer.c, layer_loops.h, loss.c, pool.c). The edge-sum, block and
LBFGS two-loop kernels were measured the same way and removed (each < 1.5x on every figure
above); docs/kernels.md has both tables.

    .venv/bin/python benchmarks/kernels_audit.py
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUPS = {"objective": ["kanstudio.core.objective"]}

CHILD = r"""
import importlib, json, sys, time
import numpy as np, torch
torch.set_num_threads(2)
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)._kernels = None
from kanstudio.core.model import KAN
from kanstudio.core.discover import DiscoverConfig, discover
rng = np.random.default_rng(0)
X = rng.uniform(-1, 1, (4000, 10)); y = np.sin(X).sum(1)
m = KAN([10, 10, 10, 1], seed=0); m.fit(X, y, steps=2)
t = time.perf_counter(); m.fit(steps=10, update_grid=False); step = (time.perf_counter() - t) / 10
m32 = KAN([10, 10, 10, 1], seed=0, dtype="float32"); m32.fit(X, y, steps=2)
t = time.perf_counter(); m32.fit(steps=10, update_grid=False); step32 = (time.perf_counter() - t) / 10
X2 = rng.uniform(-1, 1, (1000, 2)); y2 = np.exp(np.sin(np.pi * X2[:, 0]) + X2[:, 1] ** 2)
t = time.perf_counter(); KAN([2, 5, 1], seed=0).fit(X2, y2, steps=50, lamb=1e-3); fit = time.perf_counter() - t
t = time.perf_counter(); d = discover(X2, y2, ["x", "y"], "f", config=DiscoverConfig(time_limit=60)); disc = time.perf_counter() - t
import statistics
from kanstudio.core.layer import KANLayer
def med(fn, r=25, w=5):
    for _ in range(w): fn()
    ts = []
    for _ in range(r):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)
xl = (torch.rand(4096, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1).requires_grad_()
dense = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.SiLU())
lay = KANLayer(64, 64, grid=5, k=3, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
def fb(mod):
    def run():
        xl.grad = None; mod.zero_grad(set_to_none=True); mod(xl).sum().backward()
    return run
layer = med(fb(lay)) / med(fb(dense))
print(json.dumps({"step": step, "step32": step32, "fit": fit, "layer": layer, "discover": disc, "formula": d.formula.sympy_str()}))
"""


def run(mods, repeat: int = 2) -> dict:
    """The best of ``repeat`` fresh processes for each figure (one run alone moved by up to 40 %)."""
    runs = [_run_once(mods) for _ in range(repeat)]
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]
    return {k: (min(r[k] for r in ok) if k != "formula" else ok[0][k]) for k in ok[0]}


def _run_once(mods) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(mods)], capture_output=True, text=True,
                       cwd=ROOT, timeout=900)
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    print("kernels audit: each group of compiled kernels off in turn (torch 2 threads)")
    base = run([])
    print(f"  {'all kernels on':18s}: LBFGS step {base['step'] * 1e3:7.1f} ms   float32 {base['step32'] * 1e3:7.1f} ms   canonical fit {base['fit']:6.2f} s   "
          f"discovery {base['discover']:6.2f} s   layer {base['layer']:4.1f}x Linear+SiLU   {base['formula']}")
    for g, mods in GROUPS.items():
        r = run(mods)
        if "error" in r:
            print(f"  {g + ' off':18s}: failed: {r['error']}")
            continue
        print(f"  {g + ' off':18s}: LBFGS step {r['step'] * 1e3:7.1f} ms ({r['step'] / base['step']:4.2f}x)   "
              f"float32 {r['step32'] * 1e3:7.1f} ms ({r['step32'] / base['step32']:4.2f}x)   "
              f"canonical fit {r['fit']:6.2f} s ({r['fit'] / base['fit']:4.2f}x)   discovery {r['discover']:6.2f} s "
              f"({r['discover'] / base['discover']:4.2f}x)   layer {r['layer']:4.1f}x Linear+SiLU   {r['formula']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
