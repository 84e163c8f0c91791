"""Search tasks on a Dask cluster: ``discover(..., client=...)`` and ``kanstudio sweep``.

Every task (a network shape on a view of the data, with its seed, grid and sparsity weight) is
independent of the others, so a sweep scales with the number of workers until there are fewer
tasks than workers. The data travels once (``client.scatter``), each task's settings and result
(formula and network, a few hundred kB) per task. A worker runs one task at a time on one torch
thread: small KANs gain nothing from more threads, and processes do not share a GIL.

Deadlines cross machines as wall-clock times: ``time.perf_counter`` has no meaning on another
host. A task that reaches a worker after the deadline is not run (it comes back as skipped).
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, replace

import numpy as np

from .discover import Attempt, DiscoverConfig, SearchData, _split, run_task
from .search_plan import Task, base_shapes, shape_tasks
from .views import View

__all__ = ["DaskRunner", "SweepRow", "SweepResult", "sweep", "sweep_settings", "pareto_flags", "make_client", "SweepError"]


class SweepError(RuntimeError):
    """Dask is missing, or the scheduler cannot be reached."""


def _import_distributed():
    try:
        import distributed
    except ImportError as e:
        raise SweepError("sweeps need Dask: install the sweep extra, "
                         "pip install 'kanstudio[sweep]' -c constraints.txt") from e
    return distributed


def make_client(scheduler: str | None = None, workers: int = 2, timeout: float = 10.0):
    """A client of ``scheduler`` (``tcp://host:port``), or of a new local cluster of ``workers``
    single-threaded worker processes."""
    distributed = _import_distributed()
    if scheduler:
        try:
            return distributed.Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as e:
            raise SweepError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    return distributed.Client(cluster)


_THREADS_SET = False


def _run_remote(task: Task, data: SearchData, cfg: DiscoverConfig, wall_deadline: float | None):
    global _THREADS_SET
    if not _THREADS_SET:
        import torch

        torch.set_num_threads(1)
        _THREADS_SET = True
    if wall_deadline is not None and time.time() > wall_deadline:
        return None
    deadline = None if wall_deadline is None else time.perf_counter() + (wall_deadline - time.time())
    try:
        return run_task(task, data, cfg, deadline)
    except Exception as e:  # one bad task must not end the sweep
        return Attempt(_width_text(task), None, math.inf, math.inf, 0.0, None, f"{type(e).__name__}: {e}",
                       task.label, task.view)


def _width_text(task: Task) -> str:
    from .search_plan import task_name

    return task_name(task.width)


class DaskRunner:
    """:class:`~kanstudio.core.discover.LocalRunner`'s interface on a Dask client: submitted
    tasks run at once on the cluster's workers; ``results()`` yields them as they finish."""

    parallel = True

    def __init__(self, client, data: SearchData, cfg: DiscoverConfig, deadline: float | None, stop=None,
                 configs: dict | None = None):
        distributed = _import_distributed()
        self._as_completed = distributed.as_completed
        self.client, self.cfg, self.stop = client, cfg, stop
        self.wall_deadline = None if deadline is None else time.time() + (deadline - time.perf_counter())
        self.data = client.scatter(data, broadcast=True, hash=False)  # a key of its own: two runs on equal data must not share (and release) one
        self.futures: dict = {}  # future -> task
        self.skipped = 0
        self._ac = None

    def submit(self, tasks: list[Task], cfgs: list[DiscoverConfig] | None = None) -> None:
        for k, task in enumerate(tasks):
            cfg = cfgs[k] if cfgs is not None else self.cfg
            fut = self.client.submit(_run_remote, task, self.data, cfg, self.wall_deadline, pure=False)
            self.futures[fut] = task
            if self._ac is not None:
                self._ac.add(fut)

    def results(self):
        self._ac = self._as_completed(list(self.futures))
        try:
            for fut in self._ac:
                task = self.futures.pop(fut)
                if self.stop is not None and self.stop():
                    self.cancel()
                    return
                try:
                    a = fut.result()
                except Exception as e:  # a worker that died, a cancelled future
                    a = Attempt(_width_text(task), None, math.inf, math.inf, 0.0, None,
                                f"{type(e).__name__}: {e}", task.label, task.view)
                if a is None:
                    self.skipped += 1
                    continue
                yield task, a
        finally:
            self._ac = None

    def cancel(self) -> None:
        if self.futures:
            self.client.cancel(list(self.futures))
            self.futures.clear()

    def close(self) -> None:
        self.cancel()


# ----------------------------------------------------------------------------- sweeps


@dataclass
class SweepRow:
    shape: str
    seed: int
    grid: int
    lamb: float
    formula: str
    complexity: int | None
    val_rmse: float
    test_r2: float
    test_rmse: float
    seconds: float
    exact: bool
    pareto: bool = False
    error: str = ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def sweep_settings(widths, seeds, grids, lambdas):
    """Every (width, seed, grid, lambda), in a fixed order (widths outermost)."""
    return list(itertools.product(widths, seeds, grids, lambdas))


def pareto_flags(rows: list[SweepRow]) -> list[SweepRow]:
    """Mark rows no other row beats on both complexity and validation error."""
    ok = sorted((r for r in rows if r.complexity is not None and math.isfinite(r.val_rmse)),
                key=lambda r: (r.complexity, r.val_rmse))
    best = math.inf
    for r in ok:
        r.pareto = r.val_rmse < best
        best = min(best, r.val_rmse)
    return rows


def sweep(X, y, names, target, client, *, widths=None, seeds=(0,), grids=(5,), lambdas=(1e-3,),
          config: DiscoverConfig = DiscoverConfig(), X_test=None, y_test=None, on_row=None) -> "SweepResult":
    """Train every combination of ``widths x seeds x grids x lambdas`` on ``client``'s workers.

    Rows arrive through ``on_row`` as tasks finish (in whatever order the cluster gives); the
    result's rows are in the settings' order, with Pareto flags. ``config`` supplies the rest
    (steps, refits, snapping threshold, time limit)."""
    t0 = time.perf_counter()
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    names = list(names)
    widths = list(widths) if widths else base_shapes(len(names))
    Xf, yf, Xv, yv = _split(X, y, config.val_fraction, config.seed)
    data = SearchData(Xf, yf, Xv, yv, tuple(names), target)
    view = View.identity(names)
    settings = sweep_settings(widths, seeds, grids, lambdas)
    tasks, cfgs = [], []
    for w, seed, grid, lamb in settings:
        (task,) = shape_tasks(view, [w])[-1:]
        tasks.append(task)
        cfgs.append(replace(config, width=None, seed=int(seed), grid=int(grid), lamb=float(lamb)))
    deadline = None if config.time_limit is None else t0 + config.time_limit
    runner = DaskRunner(client, data, config, deadline)
    index = {id(t): k for k, t in enumerate(tasks)}
    rows: list[SweepRow | None] = [None] * len(tasks)
    Xt = None if X_test is None else np.asarray(X_test, dtype=np.float64).reshape(len(X_test), -1)
    yt = None if y_test is None else np.asarray(y_test, dtype=np.float64).reshape(-1)
    try:
        runner.submit(tasks, cfgs)
        for task, a in runner.results():
            k = index[id(task)]
            _, seed, grid, lamb = settings[k]
            rows[k] = _row(a, task, seed, grid, lamb, Xt, yt)
            if on_row is not None:
                on_row(rows[k])
    finally:
        runner.close()
    done = [r for r in rows if r is not None]
    pareto_flags(done)
    return SweepResult(done, len(rows) - len(done), time.perf_counter() - t0)


@dataclass
class SweepResult:
    rows: list[SweepRow]
    skipped: int  # settings the time limit left unrun
    seconds: float

    @property
    def pareto(self) -> list[SweepRow]:
        return sorted((r for r in self.rows if r.pareto), key=lambda r: r.complexity)

    def write(self, path) -> None:
        """CSV or JSON, by the file's extension."""
        import csv
        import json
        from pathlib import Path

        p = Path(path)
        dicts = [r.as_dict() for r in self.rows]
        if p.suffix.lower() == ".json":
            clean = [{k: _json_float(v) for k, v in d.items()} for d in dicts]
            p.write_text(json.dumps({"rows": clean, "skipped": self.skipped, "seconds": round(self.seconds, 3)},
                                    indent=2, allow_nan=False))
            return
        if p.suffix.lower() != ".csv":
            raise ValueError(f"--out must end in .csv or .json, got {p.name}")
        with p.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(SweepRow.__dataclass_fields__))
            w.writeheader()
            w.writerows(dicts)


def _json_float(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _row(a: Attempt, task: Task, seed, grid, lamb, Xt, yt) -> SweepRow:
    if a.formula is None:
        return SweepRow(a.width, int(seed), int(grid), float(lamb), "", None, math.inf, math.nan, math.nan,
                        a.seconds, False, False, a.error)
    f = a.formula
    r2, rmse = f.r2_test, f.rmse_test
    if Xt is not None and len(Xt):
        from .formula import r2_rmse

        r2, rmse = r2_rmse(yt, f.evaluate(Xt))
    return SweepRow(a.width, int(seed), int(grid), float(lamb), f.sympy_str(), int(f.complexity), float(a.val_rmse),
                    float(r2), float(rmse), float(a.seconds), bool(f.exact))
