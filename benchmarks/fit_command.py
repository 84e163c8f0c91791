"""Time to formula as a user runs it: a whole process, from its start to the printed formula.

Data: f = exp(sin(pi x) + y^2), x, y ~ U[-1, 1], 2000 rows, written to a CSV (x, y, f).

- kanstudio: ``kanstudio fit data.csv`` (defaults: the unattended shape search, 60 s budget),
  timed from spawning the process to its exit; best and median of ``--repeat`` runs.
- pykan 0.2.8: one ``python -c`` process that imports kan, reads the same CSV, and runs the KAN
  paper's pipeline: MultKAN([2,5,1], grid=5, k=3, seed=0) -> fit(LBFGS, 50 steps, lamb=1e-3) ->
  prune() -> auto_symbolic() -> fit(LBFGS, 50 steps) -> symbolic_formula() with ex_round(., 4),
  printed. Timed the same way (process start to exit).

Both formulas are checked for exactness (``sympy.simplify(found - law) == 0``). The ratio on the
last line is pykan's time over kanstudio's median.

    .venv/bin/python benchmarks/fit_command.py [--repeat 3] [--no-pykan]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYKAN = r"""
import sys, numpy as np, torch, tempfile
import kan
from kan.utils import ex_round
d = np.loadtxt(sys.argv[1], delimiter=",", skiprows=1)
X, y = torch.tensor(d[:, :2], dtype=torch.float32), torch.tensor(d[:, 2:3], dtype=torch.float32)
n = int(0.8 * len(X))
ds = {"train_input": X[:n], "train_label": y[:n], "test_input": X[n:], "test_label": y[n:]}
m = kan.MultKAN(width=[2, 5, 1], grid=5, k=3, seed=0, auto_save=False, ckpt_path=tempfile.mkdtemp())
m.fit(ds, opt="LBFGS", steps=50, lamb=1e-3)
m = m.prune()
m.auto_symbolic()
m.fit(ds, opt="LBFGS", steps=50)
print(ex_round(m.symbolic_formula()[0][0], 4))
"""


def _timed(cmd, env=None) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    return time.perf_counter() - t0, r


def _exact(text: str) -> bool:
    import sympy

    x, y = sympy.symbols("x y")
    try:
        e = sympy.sympify(text.strip().splitlines()[-1].replace("x_1", "x").replace("x_2", "y"), locals={"x": x, "y": y})
        return sympy.simplify(e - sympy.exp(sympy.sin(sympy.pi * x) + y**2)) == 0
    except Exception:  # an unparseable or crashed output is not exact
        return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-pykan", action="store_true")
    a = ap.parse_args(argv)
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (2000, 2))
    f = np.exp(np.sin(np.pi * X[:, 0]) + X[:, 1] ** 2)
    path = Path(tempfile.mkdtemp()) / "exp_sin.csv"
    np.savetxt(path, np.column_stack([X, f]), delimiter=",", header="x,y,f", comments="", fmt="%.17g")
    exe = str(Path(sys.executable).with_name("kanstudio"))
    print(f"time to formula, whole process: exp(sin(pi x) + y^2), 2000 rows ({path.name})")
    t_help, _ = _timed([exe, "--help"])
    print(f"  kanstudio --help: {t_help:.2f} s")
    times, out = [], None
    for _ in range(a.repeat):
        t, r = _timed([exe, "fit", str(path), "-q"])
        times.append(t)
        out = r
    ok = out.returncode == 0
    formula = out.stdout.strip() if ok else f"FAILED: {out.stderr.strip()[-300:]}"
    med = statistics.median(times)
    print(f"  kanstudio fit: best {min(times):.2f} s, median {med:.2f} s over {a.repeat}  exact={_exact(formula)}  {formula}")
    if a.no_pykan:
        return 0
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    t_pk, r = _timed([sys.executable, "-c", PYKAN, str(path)], env)
    pk = r.stdout.strip().splitlines()[-1] if r.returncode == 0 and r.stdout.strip() else f"CRASHED: {r.stderr.strip()[-300:]}"
    print(f"  pykan pipeline: {t_pk:.2f} s  exact={_exact(pk)}  {pk}")
    print(f"time to formula as a process: kanstudio {med:.2f} s, pykan {t_pk:.2f} s, ratio {t_pk / med:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
