"""The unattended pipeline: train with sparsification -> prune -> auto-symbolic -> refit -> exact
constants, over a few small network shapes, keeping the formula with the best trade-off.

Shapes tried (n inputs), cheapest first: ``[n, 1]`` (additive law), ``[n, 1x]`` (a product of
one-variable factors, via a multiplication node as in KAN 2.0), ``[n, 1, 1]`` (a function of a
sum), ``[n, 2, 1x]`` (a product of two sums), and the general ``[n, h, 1]``. Most physical laws
are products, sums or compositions of one-variable functions, so the small shapes recover
them exactly and fast; the general shape catches the rest. A user-given width skips the search.

The time limit only decides whether another shape is started; a started shape always runs
to the end, so a result does not depend on how busy the machine was (unless the limit cut the
search, which the progress output says).

Selection uses a held-out validation part of the training data (the test split is only for
reporting): ``n_val * log(MSE) + log(n_val) * complexity`` (BIC-like), so a formula that is
more complex must explain clearly more.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .formula import FormulaResult, build_formula, r2_rmse
from .model import KAN
from .network import format_width, parse_width
from .separable import als_product

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DiscoverConfig:
    width: object = None  # None: search the shapes above
    grid: int = 5
    k: int = 3
    steps: int = 50
    lamb: float = 1e-3  # sparsity for shapes with hidden sum nodes
    seed: int = 0
    lib: tuple[str, ...] | None = None
    r2_threshold: float = 0.99
    refit_steps: int = 30
    refine_grids: tuple[int, ...] = (20,)  # grid extension before snapping (KAN paper: sharper edges)
    refine_steps: int = 30
    edge_rel_th: float = 3e-3  # prune edges whose variation is below this share of the strongest into a node
    node_th: float = 1e-2
    val_fraction: float = 0.2
    time_limit: float | None = 60.0
    good_enough_r2: float = 1 - 1e-8  # stop the search early at an exact formula this accurate


@dataclass
class Attempt:
    width: str
    formula: FormulaResult | None
    val_rmse: float
    criterion: float
    seconds: float
    model: KAN | None = None
    error: str = ""


@dataclass
class Discovery:
    formula: FormulaResult
    model: KAN
    attempts: list[Attempt] = field(default_factory=list)
    seconds: float = 0.0

    def pareto(self) -> list[FormulaResult]:
        """Attempts' formulas that no other beats on both complexity and validation error."""
        items = sorted((a for a in self.attempts if a.formula is not None), key=lambda a: (a.formula.complexity, a.val_rmse))
        front, best = [], math.inf
        for a in items:
            if a.val_rmse < best:
                front.append(a.formula)
                best = a.val_rmse
        return front


def shapes(n: int, hidden: int | None = None) -> list[list]:
    out = [[n, 1]]
    if n > 1:
        out.append([n, (0, 1)])
    out.append([n, 1, 1])
    if n > 2:
        out.append([n, 2, (0, 1)])
    out.append([n, hidden or min(2 * n + 1, 7), 1])
    return out


def _split(X, y, fraction: float, seed: int):
    n = len(X)
    n_val = max(1, int(round(n * fraction))) if n >= 10 else 0
    perm = np.random.default_rng(seed).permutation(n)
    v, t = perm[:n_val], perm[n_val:]
    return X[t], y[t], X[v], y[v]


@torch.no_grad()
def prune_flat_edges(model: KAN, rel: float) -> int:
    """Remove edges whose output barely varies (their mean is folded into the node, so the
    network is unchanged up to that variation). Into a sum node, "barely" is relative to the
    strongest edge into it; into a product node, where factors trade scale freely, relative to
    the factor's own mean (coefficient of variation)."""
    trace = model.trace()
    removed = 0
    for l, acts in enumerate(trace.acts):
        std = acts.std(0)  # (n_in, n_out)
        layer = model.net.layers[l]
        live = layer.mask.cpu() > 0
        top = torch.where(live, std, torch.zeros_like(std)).max(0).values
        flat = std < rel * top[None, :]
        if layer.n_prod:
            cv = std / (acts.mean(0).abs() + 1e-12)
            flat[:, layer.n_sum :] = cv[:, layer.n_sum :] < rel
        for i, j in ((live & flat).nonzero().tolist()):
            model.net.prune_edge(l, i, j, trace)
            removed += 1
    return removed


def _criterion(rmse: float, complexity: int, n: int, scale: float) -> float:
    mse = max(rmse**2, (1e-12 * scale) ** 2)
    return n * math.log(mse) + math.log(max(n, 2)) * complexity


RESTARTS = 2


def _single_path(w: list[tuple[int, int]]) -> bool:
    """Hidden layers of one sum node each: the whole network is one chain of compositions."""
    return len(w) > 2 and all(s + p == 1 for s, p in w[1:-1])


def fit_shape(width, X, y, Xv, yv, names, target, cfg: DiscoverConfig, deadline: float | None) -> Attempt:
    t0 = time.perf_counter()
    w = parse_width(width)
    has_hidden_sums = len(w) > 2 and any(s > 1 for s, _ in w[1:-1])
    model, model_rmse = None, math.inf
    # A composition through one hidden node ([n,1,1]) can stall in a poor minimum from an
    # unlucky start (exp(sin(pi x) + y^2): RMSE 0.6 from 2 of 3 seeds, 0.007 from the third), so
    # it gets up to RESTARTS more seeds while it fits worse than a tenth of the spread of y.
    seeds = [cfg.seed] + ([cfg.seed + r for r in range(1, RESTARTS + 1)] if _single_path(w) else [])
    for seed in seeds:
        if model is not None and (deadline is not None and time.perf_counter() > deadline):
            break
        trial = KAN(width, grid=cfg.grid, k=cfg.k, seed=seed)
        trial.feature_names_, trial.target_name_ = list(names), target
        if len(w) == 2 and w[1] == (0, 1):
            trial.set_data(X, y)
            als_product(trial.net, trial.X_train_, trial.y_train_)  # separable start; LBFGS polishes
        trial.fit(X, y, steps=cfg.steps, lamb=cfg.lamb if has_hidden_sums else 0.0)
        trial_rmse = trial.train_result_.history[-1].train_loss
        if model is None or trial_rmse < model_rmse:
            model, model_rmse = trial, trial_rmse
        if model_rmse <= 0.1 * float(np.std(y)):
            break
    if len(w) > 2:
        model.prune(node_th=cfg.node_th)
    prune_flat_edges(model, cfg.edge_rel_th)
    for g in cfg.refine_grids:
        if g > model.grid:
            model.refine(g)
            model.fit(steps=cfg.refine_steps, update_grid=False)
    lib = list(cfg.lib) if cfg.lib else None
    report = model.auto_symbolic(r2_threshold=cfg.r2_threshold, lib=lib)
    model.fit(steps=cfg.refit_steps, update_grid=False)
    if report["skipped"]:
        # The refit has adapted the rest of the network to the snapped edges, so the leftovers
        # often fit now; snap them to their best candidate and let the validation error judge.
        model.auto_symbolic(r2_threshold=-math.inf, lib=lib)
        model.fit(steps=cfg.refit_steps, update_grid=False)
    f = build_formula(model, Xv, yv)
    scale = float(np.std(yv)) or 1.0
    # Opaque spline terms are not a formula yet: charge them like a large expression.
    cx = f.complexity + (0 if f.exact else 50)
    crit = _criterion(f.rmse_test, cx, len(yv), scale)
    if not np.isfinite(f.evaluate(X)).all():
        crit = math.inf  # undefined somewhere on the training inputs (acos of 1.004): not a law
    return Attempt(format_width(w), f, f.rmse_test, crit, time.perf_counter() - t0, model)


def discover(X, y, names=None, target: str = "y", X_test=None, y_test=None,
             config: DiscoverConfig = DiscoverConfig(), progress: Progress | None = None) -> Discovery:
    """Find a formula for ``y`` from ``X``; reports on ``(X_test, y_test)`` when given."""
    t0 = time.perf_counter()
    say = progress or (lambda s: None)
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    names = list(names) if names is not None else [f"x{i}" for i in range(X.shape[1])]
    deadline = None if config.time_limit is None else t0 + config.time_limit
    Xf, yf, Xv, yv = _split(X, y, config.val_fraction, config.seed)
    if len(Xv) == 0:
        Xf, yf, Xv, yv = X, y, X, y
    widths = [config.width] if config.width is not None else shapes(X.shape[1])
    attempts: list[Attempt] = []
    for width in widths:
        if deadline is not None and time.perf_counter() > deadline and attempts:
            say("time limit reached; skipping the remaining shapes")
            break
        say(f"trying width [{format_width(parse_width(width))}] ...")
        try:
            a = fit_shape(width, Xf, yf, Xv, yv, names, target, config, deadline)
        except Exception as e:  # one bad shape must not end the search
            attempts.append(Attempt(str(width), None, math.inf, math.inf, 0.0, None, f"{type(e).__name__}: {e}"))
            say(f"  failed: {type(e).__name__}: {e}")
            continue
        attempts.append(a)
        say(f"  {a.formula.sympy_str()}   (validation RMSE {a.val_rmse:.3g}, complexity {a.formula.complexity}, {a.seconds:.1f} s)")
        if a.formula.exact and r2_rmse(yv, a.formula.evaluate(Xv))[0] >= config.good_enough_r2:
            break
    ok = [a for a in attempts if a.formula is not None]
    if not ok:
        raise RuntimeError("no network shape could be fitted: " + "; ".join(a.error for a in attempts))
    best = min(ok, key=lambda a: a.criterion)
    model = best.model
    # Report on the test split (or nothing) with the chosen formula's final constants.
    f = best.formula
    if X_test is not None and len(X_test):
        Xt = np.asarray(X_test, dtype=np.float64).reshape(len(X_test), -1)
        yt = np.asarray(y_test, dtype=np.float64).reshape(-1)
        r2, rmse = r2_rmse(yt, f.evaluate(Xt))
        nr2, nrmse = r2_rmse(yt, model.predict(Xt))
        f = FormulaResult(f.expr, f.input_names, f.target_name, f.complexity, r2, rmse, nr2, nrmse, f.exact,
                          f.symbols, f.n_edges)
    return Discovery(f, model, attempts, time.perf_counter() - t0)
