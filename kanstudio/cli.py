"""``kanstudio serve`` (the studio in a browser) and ``kanstudio fit`` (headless discovery)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

FORMATS = ("sympy", "latex", "python", "json")


def _csv_list(s: str | None) -> list[str] | None:
    return [p.strip() for p in s.split(",") if p.strip()] if s else None


def _int_list(s: str) -> list[int]:
    """``0-7`` or ``0,3,5`` (or both: ``0-3,8``)."""
    out = []
    try:
        for part in s.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else ("-" + part[1:].split("-", 1)[0], part[1:].split("-", 1)[1])
                lo, hi = int(lo), int(hi)
                if hi < lo:
                    raise ValueError
                out += list(range(lo, hi + 1))
            elif part:
                out.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 0-7 or 0,3,5, got {s!r}") from None
    if not out:
        raise argparse.ArgumentTypeError("an empty list")
    return out


def _float_list(s: str) -> list[float]:
    try:
        out = [float(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1e-3,1e-2, got {s!r}") from None
    if not out or any(v < 0 for v in out):
        raise argparse.ArgumentTypeError(f"expected non-negative numbers, got {s!r}")
    return out


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _nonneg_float(s: str) -> float:
    v = float(s)
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {s}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kanstudio", description="Find the law behind your data with Kolmogorov-Arnold Networks.")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    f = sub.add_parser("fit", help="train, prune, snap and print a formula (no browser)",
                       description="Run the whole pipeline unattended: train with sparsification, prune, "
                                   "auto-symbolic, refit, exact constants. The formula goes to stdout (or --out), "
                                   "progress to stderr.")
    f.add_argument("data", help="CSV file with a header row")
    f.add_argument("--target", help="column to explain (default: the last column)")
    f.add_argument("--inputs", help="comma-separated input columns (default: every other numeric column)")
    f.add_argument("--width", help="network width, e.g. 2,5,1 (a product node: 2,1x). Default: search small shapes")
    f.add_argument("--grid", type=_positive_int, default=5)
    f.add_argument("--k", type=_positive_int, default=3, help="spline order")
    f.add_argument("--steps", type=_positive_int, default=50, help="LBFGS steps per training")
    f.add_argument("--lamb", type=_nonneg_float, default=1e-3, help="sparsity penalty weight (lambda)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--lib", help="candidate functions, e.g. sin,exp,x^2,log (default: the whole library)")
    f.add_argument("--custom", action="append", default=[], metavar="NAME=EXPR",
                   help="add a candidate function of x, e.g. --custom 'damped=x*exp(-x)' (repeatable)")
    f.add_argument("--r2-threshold", type=float, default=0.99, help="snap an edge only if its best fit reaches this R^2")
    f.add_argument("--test-fraction", type=float, default=0.2)
    f.add_argument("--format", choices=FORMATS, default="sympy")
    f.add_argument("--out", help="write the result to this file instead of stdout")
    f.add_argument("--units", metavar="SPEC",
                   help="physical units of every input and the target, e.g. q=C,v=m/s,B=T,F=N, or a JSON/TOML "
                        "file of column = unit: the search then works on dimensionless groups (Buckingham pi)")
    f.add_argument("--time-limit", type=float, default=60.0, metavar="SECONDS")
    f.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    f.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads (default: torch's)")

    w = sub.add_parser("sweep", help="train many settings at once on a Dask cluster; a table and its Pareto front",
                       description="Train every combination of --widths x --seeds x --grids x --lambdas on Dask "
                                   "workers (an embedded local cluster, or --scheduler), each through the whole "
                                   "pipeline (train, prune, snap, refit, exact constants). A line per finished "
                                   "setting goes to stderr as it arrives; the table (formula, complexity, "
                                   "validation RMSE, test R2, seed, shape, grid, lambda, Pareto flag) to --out.")
    w.add_argument("data", help="CSV file with a header row")
    w.add_argument("--target", help="column to explain (default: the last column)")
    w.add_argument("--inputs", help="comma-separated input columns (default: every other numeric column)")
    w.add_argument("--widths", help='network widths separated by ";", e.g. "2,5,1;2,1x" (default: the search\'s shapes)')
    w.add_argument("--seeds", type=_int_list, default=[0], help="e.g. 0-7 or 0,3,5 (default 0)")
    w.add_argument("--grids", type=_int_list, default=[5], help="grid sizes, e.g. 5,10 (default 5)")
    w.add_argument("--lambdas", type=_float_list, default=[1e-3], help="sparsity weights, e.g. 1e-3,1e-2")
    w.add_argument("--steps", type=_positive_int, default=50, help="LBFGS steps per training")
    w.add_argument("--workers", type=_positive_int, default=2, help="local cluster size (ignored with --scheduler)")
    w.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="an existing Dask scheduler")
    w.add_argument("--out", help="write the table here (.csv or .json)")
    w.add_argument("--time-limit", type=float, default=600.0, metavar="SECONDS",
                   help="no setting starts after this (default 600)")
    w.add_argument("--test-fraction", type=float, default=0.2)
    w.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")

    s = sub.add_parser("serve", help="open the studio in a browser",
                       description="Start the kanstudio web app: one independent study per browser tab.")
    s.add_argument("--port", type=int, default=5006)
    s.add_argument("--address", default="127.0.0.1", help="interface to bind (default: loopback only)")
    show = s.add_mutually_exclusive_group()
    show.add_argument("--show", dest="show", action="store_true", help="open a browser tab")
    show.add_argument("--no-show", dest="show", action="store_false")
    s.set_defaults(show=False)
    s.add_argument("--data", help="CSV to open instead of the built-in example")
    s.add_argument("--target", help="target column of --data")
    s.add_argument("--study", help="a .kanstudio study file to open")
    s.add_argument("--max-upload-mb", type=_positive_int, default=200)
    s.add_argument("--max-trainings", type=_positive_int, default=4, help="concurrent trainings across all sessions")
    s.add_argument("--threads", type=_positive_int, default=1, help="torch CPU threads (1 keeps the page responsive)")

    d = sub.add_parser("datasets", help="list the built-in example datasets")
    d.set_defaults()
    return p


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("kanstudio")
    except Exception:
        return "dev"


def _register_custom(specs: list[str]) -> list[str]:
    from .core.symbolic import parse_function, register_function

    names = []
    for spec in specs:
        if "=" not in spec:
            raise ValueError(f"--custom needs NAME=EXPR, got {spec!r}")
        name, expr = (t.strip() for t in spec.split("=", 1))
        register_function(parse_function(expr, name=name))
        names.append(name)
    return names


def cmd_fit(a) -> int:
    import torch

    from .core.data import DataError, load_csv
    from .core.discover import DiscoverConfig, discover
    from .core.network import parse_width
    from .core.symbolic import default_names, get_function

    if a.threads:
        torch.set_num_threads(a.threads)
    say = (lambda m: None) if a.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    try:
        ds = load_csv(a.data, target=a.target, inputs=_csv_list(a.inputs), test_fraction=a.test_fraction, seed=a.seed)
        custom = _register_custom(a.custom)
        lib = _csv_list(a.lib)
        if lib:
            lib = [get_function(n).name for n in lib]
        if custom:
            lib = (lib or default_names()) + custom
        width = parse_width(a.width) if a.width else None
        if width and width[0][0] != ds.n_inputs:
            raise ValueError(f"--width starts with {width[0][0]} inputs but the data has {ds.n_inputs} "
                             f"({', '.join(ds.inputs)})")
    except (DataError, ValueError, KeyError) as e:
        print(f"kanstudio fit: error: {e}", file=sys.stderr)
        return 2
    for w in ds.warnings:
        say(f"note: {w}")
    say(f"{ds.name}: {ds.n_rows} rows, inputs {', '.join(ds.inputs)} -> target {ds.target}")
    Xtr, ytr, Xte, yte = ds.split()
    cfg = DiscoverConfig(width=width, grid=a.grid, k=a.k, steps=a.steps, lamb=a.lamb, seed=a.seed,
                         lib=tuple(lib) if lib else None, r2_threshold=a.r2_threshold, time_limit=a.time_limit)
    try:
        d = discover(Xtr, ytr, list(ds.inputs), ds.target, Xte, yte, cfg, progress=say, units=a.units)
    except ValueError as e:  # units that cannot be read, or that no law of these columns can have
        print(f"kanstudio fit: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"kanstudio fit: error: {e}", file=sys.stderr)
        return 1
    f = d.formula
    seconds = time.perf_counter() - t0
    say(f"formula R2 {f.r2_test:.6g} (network {f.network_r2_test:.6g}) on {len(yte)} test rows, {seconds:.1f} s")
    if a.format == "json":
        obj = f.to_json()
        obj.update(seconds=round(seconds, 3), width=d.model.width_str if d.model is not None else None,
                   target=ds.target)
        text = json.dumps(obj, indent=2)
    elif a.format == "latex":
        text = f.latex()
    elif a.format == "python":
        text = f.python_source()
    else:
        text = f.sympy_str()
    if a.out:
        Path(a.out).write_text(text + ("\n" if not text.endswith("\n") else ""))
        say(f"wrote {a.out}")
    else:
        print(text)
    return 0


def cmd_sweep(a) -> int:
    from .core.data import DataError, load_csv
    from .core.discover import DiscoverConfig
    from .core.network import parse_width
    from .core.sweep import SweepError, make_client, sweep

    say = (lambda m: None) if a.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    try:
        ds = load_csv(a.data, target=a.target, inputs=_csv_list(a.inputs), test_fraction=a.test_fraction)
        widths = [w.strip() for w in a.widths.split(";") if w.strip()] if a.widths else None
        for w in widths or []:
            pw = parse_width(w)
            if pw[0][0] != ds.n_inputs:
                raise ValueError(f"width {w} starts with {pw[0][0]} inputs but the data has {ds.n_inputs}")
        if a.out and not a.out.lower().endswith((".csv", ".json")):
            raise ValueError(f"--out must end in .csv or .json, got {a.out}")
    except (DataError, ValueError, KeyError) as e:
        print(f"kanstudio sweep: error: {e}", file=sys.stderr)
        return 2
    try:
        client = make_client(a.scheduler, a.workers)
    except SweepError as e:
        print(f"kanstudio sweep: error: {e}", file=sys.stderr)
        return 2
    Xtr, ytr, Xte, yte = ds.split()
    n = len(widths or []) or "the search's"
    say(f"{ds.name}: {ds.n_rows} rows -> {ds.target}; {n} widths x {len(a.seeds)} seeds x {len(a.grids)} grids x "
        f"{len(a.lambdas)} lambdas on {a.scheduler or f'a local cluster of {a.workers} workers'}")
    cfg = DiscoverConfig(steps=a.steps, time_limit=a.time_limit)

    def row(r):
        if r.error:
            say(f"  [{r.shape}] seed {r.seed} grid {r.grid} lambda {r.lamb:g}: failed: {r.error}")
        else:
            say(f"  [{r.shape}] seed {r.seed} grid {r.grid} lambda {r.lamb:g}: {r.formula}   (validation RMSE "
                f"{r.val_rmse:.3g}, complexity {r.complexity}, test R2 {r.test_r2:.6g}, {r.seconds:.1f} s)")

    try:
        res = sweep(Xtr, ytr, list(ds.inputs), ds.target, client, widths=widths, seeds=a.seeds, grids=a.grids,
                    lambdas=a.lambdas, config=cfg, X_test=Xte, y_test=yte, on_row=row)
    finally:
        client.close()
    if res.skipped:
        say(f"time limit reached: {res.skipped} settings not run")
    if a.out:
        res.write(a.out)
        say(f"wrote {a.out}")
    print(f"Pareto front ({len(res.rows)} settings, {res.seconds:.1f} s):")
    for r in res.pareto:
        print(f"  complexity {r.complexity:4d}  validation RMSE {r.val_rmse:.3g}  test R2 {r.test_r2:.6g}  "
              f"[{r.shape}] seed {r.seed}: {r.formula}")
    return 0 if res.rows and any(not r.error for r in res.rows) else 1


def cmd_serve(a) -> int:
    from .ui.app import serve

    serve(port=a.port, address=a.address, show=a.show, data=a.data, target=a.target, study=a.study,
          max_upload_mb=a.max_upload_mb, max_trainings=a.max_trainings, threads=a.threads)
    return 0


def cmd_datasets(a) -> int:
    from .assets import dataset_paths

    for p in dataset_paths():
        print(p)
    return 0


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    return {"fit": cmd_fit, "sweep": cmd_sweep, "serve": cmd_serve, "datasets": cmd_datasets}[a.command](a)


if __name__ == "__main__":
    sys.exit(main())
