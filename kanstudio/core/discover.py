"""The unattended pipeline: structure tests -> train with sparsification -> prune ->
auto-symbolic -> refit -> exact constants, over several views of the data and network shapes,
keeping the formula with the best trade-off.

What is tried, and in what order, is :mod:`.search_plan`'s: the cheapest shapes on the data as
given, then the shapes the structure tests (:mod:`.structure`) point to, on the view of the
data they simplify it to (``x - mu``, ``v/c``, a dropped column, ``log y``), then the general
shapes. With ``units``, everything happens on the dimensionless groups of Buckingham's theorem
(:mod:`.units`), so every formula returned is dimensionally consistent. A user-given width
skips the search.

The time limit decides whether another task is started, and a training still running when it
is reached stops there (its network is snapped and judged as it is); so a search that the limit
did not cut gives the same result however busy the machine was, and one it cut says so in the
progress output.

Selection uses a held-out validation part of the training data (the test split is only for
reporting): ``n_val * log(MSE) + log(n_val) * complexity`` (BIC-like), so a formula that is
more complex must explain clearly more. Errors and complexity are those of the formula in the
original variables, so attempts on different views compete fairly.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import sympy
import torch

from .formula import FormulaResult, build_formula, complexity, evaluate, is_exact, make_symbols, r2_rmse
from .model import KAN
from .network import format_width, parse_width
from .search_plan import ONE_D, RATIOS, TERMS, Task, base_shapes, dedupe, ratio_tasks, shape_tasks, structured_tasks, \
    task_name, terms_task
from .separable import als_product
from .views import View

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DiscoverConfig:
    width: object = None  # None: search views and shapes
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
    structure: bool = True  # run the structure tests (symmetries, separability) and use them


@dataclass
class Attempt:
    width: str
    formula: FormulaResult | None
    val_rmse: float
    criterion: float
    seconds: float
    model: KAN | None = None
    error: str = ""
    label: str = ""
    view: View | None = None  # the model sees view.transform(X); None: the data as given

    def predict(self, X) -> np.ndarray:
        """The attempt's network's prediction of y (mapped back through its view)."""
        X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        if self.view is None or self.view.is_identity:
            return self.model.predict(X)
        p = self.model.predict(self.view.transform(X))
        return self.view.factor_values(X) * (np.exp(p) if self.view.outer == "exp" else p)


@dataclass
class Discovery:
    formula: FormulaResult
    model: KAN
    attempts: list[Attempt] = field(default_factory=list)
    seconds: float = 0.0
    best: Attempt | None = None
    structure: list[str] = field(default_factory=list)  # what the structure tests found
    units: object = None  # the dimensional reduction used, if any

    @property
    def view(self) -> View | None:
        return None if self.best is None else self.best.view

    def predict(self, X) -> np.ndarray:
        return self.best.predict(X) if self.best is not None else self.model.predict(X)

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
    return base_shapes(n, hidden)


@dataclass(frozen=True)
class SearchData:
    """The search's data in the original variables: fit on ``X, y``, select on ``Xv, yv``."""

    X: np.ndarray
    y: np.ndarray
    Xv: np.ndarray
    yv: np.ndarray
    names: tuple[str, ...]
    target: str
    # with units: each name's and the target's Dimension, so that tidying (which rounds each
    # exponent on its own) can be held to formulas that still have the target's units
    dims: dict | None = None


def _units_kept(expr, data: SearchData) -> bool:
    if data.dims is None:
        return True
    from .units import DimensionError, check_dimensions

    try:
        check_dimensions(expr, {n: data.dims[n] for n in data.names}, data.dims[data.target])
        return True
    except DimensionError:
        return False


def _tidy_within_units(expr, syms, data: SearchData, deadline: float | None = None):
    """Constants tidied where the held-out error allows and, with units, only where the formula
    keeps the target's units: (v/c)**0.318 maps back to v**0.318*c**-0.318, and rounding each
    exponent on its own could give v**(1/pi)*c**(-0.318)."""
    from .constants import tidy

    try:
        out = tidy(expr, syms, data.Xv, data.yv, data.X, data.y, deadline=deadline)
    except Exception:  # tidying is an improvement, never a reason to lose the formula
        return expr
    return out if _units_kept(out, data) else expr


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


def fit_shape(width, X, y, Xv, yv, names, target, cfg: DiscoverConfig, deadline: float | None,
              masks=(), seed_offset: int = 0) -> Attempt:
    t0 = time.perf_counter()

    def left() -> float | None:
        # the law's budget is a promise to the user: a training running past the deadline stops
        # there (its network so far is snapped and judged like any other)
        return None if deadline is None else max(0.05, deadline - time.perf_counter())

    w = parse_width(width)
    has_hidden_sums = len(w) > 2 and any(s > 1 for s, _ in w[1:-1])
    model, model_rmse = None, math.inf
    # A composition through one hidden node ([n,1,1]) can stall in a poor minimum from an
    # unlucky start (exp(sin(pi x) + y^2): RMSE 0.6 from 2 of 3 seeds, 0.007 from the third), so
    # it gets up to RESTARTS more seeds while it fits worse than a tenth of the spread of y.
    seed0 = cfg.seed + seed_offset
    seeds = [seed0] + ([seed0 + r for r in range(1, RESTARTS + 1)] if _single_path(w) else [])
    for seed in seeds:
        if model is not None and (deadline is not None and time.perf_counter() > deadline):
            break
        trial = KAN(width, grid=cfg.grid, k=cfg.k, seed=seed)
        trial.feature_names_, trial.target_name_ = list(names), target
        for l, i, j in masks:
            trial.net.layers[l].mask[i, j] = 0.0
        if len(w) == 2 and w[1] == (0, 1):
            trial.set_data(X, y)
            als_product(trial.net, trial.X_train_, trial.y_train_)  # separable start; LBFGS polishes
        trial.fit(X, y, steps=cfg.steps, lamb=cfg.lamb if has_hidden_sums else 0.0, time_limit=left())
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
            model.fit(steps=cfg.refine_steps, update_grid=False, time_limit=left())
    lib = list(cfg.lib) if cfg.lib else None
    report = model.auto_symbolic(r2_threshold=cfg.r2_threshold, lib=lib)
    model.fit(steps=cfg.refit_steps, update_grid=False, time_limit=left())
    if report["skipped"] and (deadline is None or time.perf_counter() < deadline):
        # The refit has adapted the rest of the network to the snapped edges, so the leftovers
        # often fit now; snap them to their best candidate and let the validation error judge.
        model.auto_symbolic(r2_threshold=-math.inf, lib=lib)
        model.fit(steps=cfg.refit_steps, update_grid=False, time_limit=left())
    f = build_formula(model, Xv, yv, deadline=deadline)
    scale = float(np.std(yv)) or 1.0
    # Opaque spline terms are not a formula yet: charge them like a large expression.
    cx = f.complexity + (0 if f.exact else 50)
    crit = _criterion(f.rmse_test, cx, len(yv), scale)
    if not np.isfinite(f.evaluate(X)).all():
        crit = math.inf  # undefined somewhere on the training inputs (acos of 1.004): not a law
    return Attempt(format_width(w), f, f.rmse_test, crit, time.perf_counter() - t0, model)


def fit_1d_attempt(X, y, Xv, yv, names, target, cfg: DiscoverConfig, deadline: float | None = None) -> Attempt:
    """The direct 1-D search (:mod:`.search_1d`) as an attempt, judged like a network's."""
    from .search_1d import fit_1d

    t0 = time.perf_counter()
    lib = list(cfg.lib) if cfg.lib else None
    return _best_direct(fit_1d(X, y, Xv, yv, names, target, cfg, lib, deadline), X, yv, t0, "no 1-D candidate fits")


def _best_direct(results, X, yv, t0: float, none_msg: str) -> Attempt:
    """The best of a direct search's ``(model, formula)`` pairs, judged like a network."""
    scale = float(np.std(yv)) or 1.0
    best = None
    for model, f in results:
        crit = _criterion(f.rmse_test, f.complexity + (0 if f.exact else 50), len(yv), scale)
        if not np.isfinite(f.evaluate(X)).all():
            crit = math.inf
        if best is None or crit < best.criterion:
            best = Attempt(model.width_str, f, f.rmse_test, crit, 0.0, model)
    if best is None:
        raise ValueError(none_msg)
    best.seconds = time.perf_counter() - t0
    return best


def fit_terms_attempt(X, y, Xv, yv, names, target, cfg: DiscoverConfig, deadline: float | None = None,
                      ratios: bool = False) -> Attempt:
    """The term search (:mod:`.term_search`: sums of products of one-variable functions, of y or
    of 1/y, y^2, 1/y^2, log y) as an attempt, judged like a network's; with ``ratios``, the
    ratio search (:mod:`.ratio_search`: ratios of two such sums, of y or y^2)."""
    from .term_search import compile_model, search

    t0 = time.perf_counter()

    def results():
        for k, fit in enumerate(search(X, y, Xv, yv, ratios=ratios, deadline=deadline)[:2]):
            if k and deadline is not None and time.perf_counter() > deadline:
                return
            m = compile_model(fit, X, y, names, target, cfg.seed)
            yield m, build_formula(m, Xv, yv, deadline=deadline)

    return _best_direct(results(), X, yv, t0, "no ratio of sums fits" if ratios else "no sum of products fits")


def _in_original_variables(a: Attempt, view: View, data: SearchData, cfg: DiscoverConfig,
                           deadline: float | None = None) -> Attempt:
    """The attempt's formula (found on ``view``'s columns) as a formula of the original
    variables, with its constants tidied and its error judged there."""

    f = a.formula
    expr = view.map_back(f.expr, f.symbols)
    ref = np.concatenate([data.X, data.Xv])
    syms = make_symbols(list(data.names), ref)
    expr = expr.xreplace({sympy.Symbol(s.name): s for s in syms})
    exact = is_exact(expr)
    if exact and sympy.count_ops(expr) <= 200:
        expr = _tidy_within_units(expr, syms, data, deadline)
    pv = evaluate(expr, syms, data.Xv)
    r2, rmse = r2_rmse(data.yv, pv)
    nr2, nrmse = r2_rmse(data.yv, a.predict(data.Xv))
    cx = complexity(expr)
    g = FormulaResult(expr, list(data.names), data.target, cx, r2, rmse, nr2, nrmse, exact, syms, f.n_edges)
    crit = _criterion(rmse, cx + (0 if exact else 50), len(data.yv), float(np.std(data.yv)) or 1.0)
    if not np.isfinite(g.evaluate(data.X)).all():
        crit = math.inf
    a.formula, a.val_rmse, a.criterion = g, rmse, crit
    return a


def run_task(task: Task, data: SearchData, cfg: DiscoverConfig, deadline: float | None = None) -> Attempt:
    """Run one task to the end: an Attempt whose formula is in the original variables."""
    t0 = time.perf_counter()
    v = task.view
    Xs, ys, Xvs, yvs = v.transform(data.X), v.target(data.X, data.y), v.transform(data.Xv), v.target(data.Xv, data.yv)
    if not (np.isfinite(Xs).all() and np.isfinite(ys).all() and np.isfinite(Xvs).all() and np.isfinite(yvs).all()):
        raise ValueError(f"the view {v.describe()} is undefined on part of the data")
    if tuple(task.width) == ONE_D:
        a = fit_1d_attempt(Xs, ys, Xvs, yvs, v.names, data.target, cfg, deadline)
    elif tuple(task.width) in (TERMS, RATIOS):
        a = fit_terms_attempt(Xs, ys, Xvs, yvs, v.names, data.target, cfg, deadline, tuple(task.width) == RATIOS)
    else:
        a = fit_shape([tuple(w) for w in task.width], Xs, ys, Xvs, yvs, v.names, data.target, cfg, deadline,
                      masks=task.masks, seed_offset=task.seed_offset)
    a.label, a.view = task.label, v
    if not v.is_identity:
        a = _in_original_variables(a, v, data, cfg, deadline)
    a.seconds = time.perf_counter() - t0
    return a


class LocalRunner:
    """Runs submitted tasks one after another in this process, in order."""

    parallel = False

    def __init__(self, data: SearchData, cfg: DiscoverConfig, deadline: float | None, stop=None):
        self.data, self.cfg, self.deadline, self.stop = data, cfg, deadline, stop
        self.queue: list[Task] = []
        self.started = 0

    def submit(self, tasks: list[Task]) -> None:
        self.queue.extend(tasks)

    def results(self):
        """(task, Attempt) as each task ends; stops starting tasks past the deadline or on stop()."""
        while self.queue:
            if self.stop is not None and self.stop():
                self.queue.clear()
                return
            if self.deadline is not None and time.perf_counter() > self.deadline and self.started:
                self.skipped = len(self.queue)
                self.queue.clear()
                return
            task = self.queue.pop(0)
            self.started += 1
            try:
                yield task, run_task(task, self.data, self.cfg, self.deadline)
            except Exception as e:  # one bad task must not end the search
                w = task_name(task.width)
                yield task, Attempt(w, None, math.inf, math.inf, 0.0,
                                    None, f"{type(e).__name__}: {e}", task.label, task.view)

    def cancel(self) -> None:
        self.queue.clear()

    def close(self) -> None:
        pass


def _units_views(names, target, units, X, y) -> list[tuple[View, object]]:
    """Views on the simplest Buckingham reductions that are defined on the data (see
    :func:`.units.reductions`: the choice of repeating variables matters to the search)."""
    from .units import reductions

    out = []
    for red in reductions(list(names), target, units, X, k=2):
        syms = [sympy.Symbol(n) for n in names]
        cols = tuple(sympy.sympify(g).xreplace({sympy.Symbol(s.name): s for s in syms}) for g in red.group_symbols())
        pref = sympy.Integer(1)
        for s, e in zip(syms, red.prefactor_exponents):
            pref = pref * s ** sympy.Rational(e.numerator, e.denominator)
        v = View(tuple(names), cols, pref, (red.describe(),))
        if v.valid_on(X) and v.target_valid(X, y):
            out.append((v, red))
    if not out:
        raise ValueError("the dimensionless groups are undefined on part of the data "
                         "(a column that is 0 or negative raised to a fractional power)")
    return out


def _constant_attempt(view: View, data: SearchData) -> Attempt:
    """``y = factor * C``: the units leave no dimensionless group, so only C is unknown."""

    t0 = time.perf_counter()
    f = view.factor_values(data.X)
    c = float(np.dot(f, data.y) / max(float(np.dot(f, f)), 1e-300))
    ref = np.concatenate([data.X, data.Xv])
    syms = make_symbols(list(data.names), ref)
    expr = (view.factor * sympy.Float(c)).xreplace({sympy.Symbol(s.name): s for s in syms})
    expr = _tidy_within_units(expr, syms, data)
    r2, rmse = r2_rmse(data.yv, evaluate(expr, syms, data.Xv))
    cx = complexity(expr)
    g = FormulaResult(expr, list(data.names), data.target, cx, r2, rmse, r2, rmse, True, syms, 0)
    crit = _criterion(rmse, cx, len(data.yv), float(np.std(data.yv)) or 1.0)
    return Attempt("constant", g, rmse, crit, time.perf_counter() - t0, None, "", f"constant on {view.describe()}", view)


def discover(X, y, names=None, target: str = "y", X_test=None, y_test=None,
             config: DiscoverConfig = DiscoverConfig(), progress: Progress | None = None, *,
             units=None, client=None, on_attempt: Callable[[Attempt], None] | None = None,
             stop: Callable[[], bool] | None = None) -> Discovery:
    """Find a formula for ``y`` from ``X``; reports on ``(X_test, y_test)`` when given.

    ``units``: each column's physical units and the target's (``{"q": "C", "v": "m/s", ...,
    target: "N"}``, a spec string ``"q=C,v=m/s,..."`` or a JSON/TOML file): the search then works
    on dimensionless groups and every formula is dimensionally consistent. ``client``: a
    ``dask.distributed.Client``; the tasks then run on its workers. ``on_attempt`` is called
    with each finished attempt, ``stop()`` is polled before each new one (True ends the search).
    """
    t0 = time.perf_counter()
    say = progress or (lambda s: None)
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    names = list(names) if names is not None else [f"x{i}" for i in range(X.shape[1])]
    deadline = None if config.time_limit is None else t0 + config.time_limit
    Xf, yf, Xv, yv = _split(X, y, config.val_fraction, config.seed)
    if len(Xv) == 0:
        Xf, yf, Xv, yv = X, y, X, y
    data = SearchData(Xf, yf, Xv, yv, tuple(names), target)
    view, reduction, alternatives = View.identity(names), None, []
    if units is not None:
        (view, reduction), *alternatives = _units_views(names, target, units, X, y)
        data = SearchData(Xf, yf, Xv, yv, tuple(names), target, dict(reduction.dims))
        say(f"units: {reduction.describe()}")
        for v, r in alternatives:
            say(f"units, also: {r.describe()}")
    if client is not None:
        from .sweep import DaskRunner

        runner = DaskRunner(client, data, config, deadline, stop)
    else:
        runner = LocalRunner(data, config, deadline, stop)
    attempts: list[Attempt] = []
    found: list[str] = []
    seen: set = set()
    n_cols = len(view.columns)

    if reduction is not None and not view.columns:
        a = _constant_attempt(view, data)
        attempts.append(a)
        say(f"  {a.label}: {a.formula.sympy_str()}   (validation RMSE {a.val_rmse:.3g})")
        if on_attempt is not None:
            on_attempt(a)
        runner.close()
        return Discovery(a.formula, None, attempts, time.perf_counter() - t0, a, found, reduction)

    def good(a: Attempt) -> bool:
        # no float left: a sum of six terms can reach R^2 = 1 - 1e-8 on a smooth law it is not
        # (a heat kernel); the law itself comes back with its constants recognised
        return (a.formula is not None and a.formula.exact and a.formula.r2_test >= config.good_enough_r2
                and not a.formula.expr.atoms(sympy.Float))

    def drain() -> bool:
        for task, a in runner.results():
            if a.formula is not None and reduction is not None and not _units_kept(a.formula.expr, data):
                # cannot happen by construction (constants are dimensionless); a guard, not a filter
                a.criterion, a.error = math.inf, "the formula's units do not agree"
            attempts.append(a)
            if a.formula is None:
                say(f"  {task.label}: failed: {a.error}")
            else:
                say(f"  {task.label}: {a.formula.sympy_str()}   (validation RMSE {a.val_rmse:.3g}, "
                    f"complexity {a.formula.complexity}, {a.seconds:.1f} s)")
            if on_attempt is not None:
                on_attempt(a)
            if good(a):
                runner.cancel()
                return True
        return False

    try:
        if config.width is not None:
            runner.submit(shape_tasks(view, [config.width]))
            drain()
        else:
            cheap = base_shapes(n_cols)[:2]
            first = dedupe(shape_tasks(view, cheap[:1]), seen)
            # y > 0 everywhere: an additive law of log y (exp of a sum: Boltzmann factors,
            # Gaussians, products of powers) costs one more [n, 1], the cheapest shape, so it goes
            # before the product node
            logv = view.with_outer("exp", "log y is a sum")
            if logv.valid_on(data.X) and logv.target_valid(data.X, data.y):
                first += dedupe(shape_tasks(logv, [[n_cols, 1]], "y > 0"), seen)
            first += dedupe(shape_tasks(view, cheap[1:]), seen)
            if n_cols > 1:  # sums of products, of y, 1/y, y^2, 1/y^2 or log y: about a second
                first += dedupe([terms_task(view)], seen)
            for v, _ in alternatives:
                first += dedupe(shape_tasks(v, base_shapes(len(v.columns))[:2]), seen)
            rest = dedupe(shape_tasks(view, base_shapes(n_cols)[2:]), seen)
            say(f"trying {', '.join(t.label for t in first)} ...")
            runner.submit(first)
            done = False if runner.parallel else drain()
            out_of_time = deadline is not None and time.perf_counter() > deadline
            if not done and config.structure and n_cols >= 2 and out_of_time:
                say("time limit reached before the structure tests; not run")
            elif not done and config.structure and n_cols >= 2 and not (stop and stop()):
                structured = dedupe(_structure_tasks(view, data, config, say, found), seen)
                runner.submit(structured)
                done = False if runner.parallel else drain()
                first += structured
            if not done and n_cols > 1:
                runner.submit(dedupe(ratio_tasks(first), seen))
                done = False if runner.parallel else drain()
            if not done:
                runner.submit(rest)
                drain()
            if getattr(runner, "skipped", 0):
                say(f"time limit reached; skipped {runner.skipped} remaining attempts")
    finally:
        runner.close()
    ok = [a for a in attempts if a.formula is not None]
    if not ok:
        if stop is not None and stop():
            raise RuntimeError("the search was stopped before any attempt finished")
        raise RuntimeError("no network shape could be fitted: " + "; ".join(a.error for a in attempts))
    best = min(ok, key=lambda a: a.criterion)
    f = best.formula
    if X_test is not None and len(X_test):
        Xt = np.asarray(X_test, dtype=np.float64).reshape(len(X_test), -1)
        yt = np.asarray(y_test, dtype=np.float64).reshape(-1)
        r2, rmse = r2_rmse(yt, f.evaluate(Xt))
        nr2, nrmse = r2_rmse(yt, best.predict(Xt))
        f = FormulaResult(f.expr, f.input_names, f.target_name, f.complexity, r2, rmse, nr2, nrmse, f.exact,
                          f.symbols, f.n_edges)
    return Discovery(f, best.model, attempts, time.perf_counter() - t0, best, found, reduction)


def _structure_tasks(view: View, data: SearchData, cfg: DiscoverConfig, say, found: list[str]) -> list[Task]:
    from .structure import analyze

    t = time.perf_counter()
    try:
        st = analyze(data.X, data.y, view, data.Xv, data.yv, seed=cfg.seed)
    except Exception as e:  # the tests only add attempts; without them the general shapes remain
        say(f"structure tests failed ({type(e).__name__}: {e}); trying the general shapes")
        return []
    lines = st.describe()
    found.extend(lines)
    say(f"structure ({time.perf_counter() - t:.1f} s): " + "; ".join(lines))
    return structured_tasks(st, data.X, data.y)
