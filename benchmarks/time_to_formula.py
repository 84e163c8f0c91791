"""Time to formula, side by side: the canonical KAN-paper pipeline on exp(sin(pi x) + y^2).

Both sides run the same steps on the same data (pykan's create_dataset, seed 0, 1000/1000):
[2,5,1] fit (50 LBFGS steps, lamb=1e-3) -> prune -> auto-symbolic -> refit (50 steps) -> formula.
Prints each side's seconds and formula, whether it is exactly exp(sin(pi*x) + y**2), and the ratio.
kanstudio's unattended `discover` (which also searches small shapes) is timed for reference.
"""
from __future__ import annotations

import contextlib
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    try:
        import kan
    except ImportError:
        print("pykan is not installed: pip install -e .[bench]", file=sys.stderr)
        return 1
    import sympy
    import torch

    from kanstudio.core.discover import DiscoverConfig, discover
    from kanstudio.core.formula import build_formula
    from kanstudio.core.model import KAN

    torch.set_num_threads(2)
    f = lambda x: torch.exp(torch.sin(torch.pi * x[:, [0]]) + x[:, [1]] ** 2)  # noqa: E731
    ds = kan.utils.create_dataset(f, n_var=2, train_num=1000, test_num=1000, seed=0)
    X, y = ds["train_input"].double().numpy(), ds["train_label"].double().numpy()[:, 0]
    Xt, yt = ds["test_input"].double().numpy(), ds["test_label"].double().numpy()[:, 0]
    x_, y_ = sympy.symbols("x y")
    truth = sympy.exp(sympy.sin(sympy.pi * x_) + y_**2)

    def exact(expr) -> bool:
        try:
            return sympy.simplify(expr - truth) == 0
        except Exception:
            return False

    t = time.perf_counter()
    m = KAN(width=[2, 5, 1], grid=5, k=3, seed=0)
    m.feature_names_ = ["x", "y"]
    m.fit(X, y, steps=50, lamb=1e-3)
    m.prune()
    m.auto_symbolic(r2_threshold=0.9)
    m.fit(steps=50, update_grid=False)
    ours = build_formula(m, Xt, yt)
    t_ours = time.perf_counter() - t
    ours_expr = ours.plain_expr().subs({sympy.Symbol("x"): x_, sympy.Symbol("y"): y_})

    t = time.perf_counter()
    d = discover(X, y, ["x", "y"], "f", Xt, yt, DiscoverConfig(seed=0))
    t_disc = time.perf_counter() - t

    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import tempfile

        pk = kan.MultKAN(width=[2, 5, 1], grid=5, k=3, seed=0, auto_save=False, ckpt_path=tempfile.mkdtemp())
        pk.fit(ds, opt="LBFGS", steps=50, lamb=1e-3)
        pk = pk.prune()
        pk.auto_symbolic()
        pk.fit(ds, opt="LBFGS", steps=50)
        pk_expr = pk.symbolic_formula()[0][0]
    t_pk = time.perf_counter() - t
    pk_expr = pk_expr.subs({sympy.Symbol("x_1"): x_, sympy.Symbol("x_2"): y_})
    pk_rounded = kan.utils.ex_round(pk_expr, 4)

    print("time to formula: [2,5,1] fit 50 LBFGS (lamb 1e-3) -> prune -> auto-symbolic -> refit 50 -> formula")
    print(f"kanstudio : {t_ours:7.1f} s  exact={exact(ours_expr)}  test R2 {ours.r2_test:.6f}  {ours.sympy_str()}")
    print(f"pykan     : {t_pk:7.1f} s  exact={exact(pk_rounded)}  {pk_rounded}")
    print(f"kanstudio discover (shape search, reference): {t_disc:.1f} s  {d.formula.sympy_str()}")
    print(f"time to formula: kanstudio {t_ours:.1f} s, pykan {t_pk:.1f} s, ratio {t_pk / t_ours:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
