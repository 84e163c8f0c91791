"""Generate the built-in example datasets in assets/datasets/ (deterministic: fixed seeds).

    python scripts/make_datasets.py [OUT_DIR]      # default: assets/datasets next to this script

Each law is computed from the inputs *as written* (rounded to 10 significant digits) so the CSV
obeys it to ~1e-10 relative, except where noise is added on purpose. Target is the last column.

- kan_paper.csv         f = exp(sin(pi*x) + y**2), x, y ~ U[-1, 1]  (the KAN paper's example)
- product.csv           F = m*a, m, a ~ U[1, 5]  (a product: needs a multiplication node)
- coulomb.csv           F = q1*q2/(4*pi*epsilon*r**2), q1, q2, epsilon, r ~ U[1, 5]
                        (Feynman I.12.2 with physical column names; epsilon is a sympy-ish name)
- noisy_pendulum.csv    T = 2*pi*sqrt(L/g) * (1 + 0.01*N(0,1)), L ~ U[0.1, 2] m,
                        g ~ U[1.6, 25] m/s^2 (Moon to Jupiter: a wide g range makes g's role
                        identifiable through 1% noise)
- irrelevant_inputs.csv y = sin(pi*x1) + x3**2, x1..x5 ~ U[-1, 1]; x2, x4, x5 are distractors
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

FMT = "%.10g"


def _rounded(a: np.ndarray) -> np.ndarray:
    return np.array([float(FMT % v) for v in a])


def datasets() -> dict[str, tuple[list[str], np.ndarray]]:
    """name -> (column names, (n, k) table); the last column is the target."""
    out = {}

    rng = np.random.default_rng(1)
    x, y = (_rounded(rng.uniform(-1, 1, 1000)) for _ in range(2))
    out["kan_paper"] = (["x", "y", "f"], np.column_stack([x, y, np.exp(np.sin(np.pi * x) + y**2)]))

    rng = np.random.default_rng(2)
    m, a = (_rounded(rng.uniform(1, 5, 1000)) for _ in range(2))
    out["product"] = (["m", "a", "F"], np.column_stack([m, a, m * a]))

    rng = np.random.default_rng(3)
    q1, q2, eps, r = (_rounded(rng.uniform(1, 5, 2000)) for _ in range(4))
    out["coulomb"] = (["q1", "q2", "epsilon", "r", "F"],
                      np.column_stack([q1, q2, eps, r, q1 * q2 / (4 * np.pi * eps * r**2)]))

    rng = np.random.default_rng(4)
    L, g = _rounded(rng.uniform(0.1, 2, 1000)), _rounded(rng.uniform(1.6, 25, 1000))
    T = 2 * np.pi * np.sqrt(L / g) * (1 + 0.01 * rng.standard_normal(1000))
    out["noisy_pendulum"] = (["L", "g", "T"], np.column_stack([L, g, T]))

    rng = np.random.default_rng(5)
    xs = [_rounded(rng.uniform(-1, 1, 2000)) for _ in range(5)]
    out["irrelevant_inputs"] = ([f"x{i}" for i in range(1, 6)] + ["y"],
                                np.column_stack(xs + [np.sin(np.pi * xs[0]) + xs[2] ** 2]))
    return out


def write_all(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (cols, table) in datasets().items():
        path = out_dir / f"{name}.csv"
        lines = [",".join(cols)] + [",".join(FMT % v for v in row) for row in table]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
        paths.append(path)
    return paths


if __name__ == "__main__":
    default = Path(__file__).resolve().parent.parent / "assets" / "datasets"
    for p in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else default):
        print(p)
