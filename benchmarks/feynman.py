"""Discovery benchmark: the unattended pipeline on every law of the suite (benchmarks/laws/).

The suite is the 25 laws of feynman_dev.csv plus benchmarks/laws/suite.csv (102 more, 41 of them
in a seeded ``holdout`` split that nobody tunes on; see benchmarks/README.md). For each law: 1000
uniform training points from its box (fixed seed), 10 000 noise-free test points; optionally
Gaussian noise on the training y with standard deviation ``noise * RMS(y)`` (the SRBench
convention). Prints per law the formula found, then per split, category and number of variables:
exact recovery rate (benchmarks/laws/exact.py: a numeric screen, then a time-bounded SymPy proof,
then a 30-digit numeric proof), rate of test R^2 >= 0.9999, median and max seconds, and how many
laws took longer than the time limit. The last line is the summary as JSON; ``--json FILE`` keeps
every result.

    python benchmarks/feynman.py                          # whole suite, noise 0 and 1 %
    python benchmarks/feynman.py --suite feynman          # the 25 dev laws only (the earlier benchmark)
    python benchmarks/feynman.py --split holdout --noise 0 --json holdout.json
    python benchmarks/feynman.py --noise 0 --ids T1_kan_paper,D05_I.29.4
    python benchmarks/feynman.py --categories gaussian,nested --units
    python benchmarks/feynman.py --list                   # the suite, without running anything
"""
from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import math
import multiprocessing as mp
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.laws.exact import exact_check, exact_match  # noqa: E402,F401  (exact_match: old import path)
from benchmarks.laws.report import format_summary, summarize  # noqa: E402
from benchmarks.laws.suite import DEV_DATA, SUITES, Law, load_csv, load_suite, sample, select  # noqa: E402

DEFAULT_DATA = DEV_DATA  # kept for callers of the old module


def units_supported() -> tuple[bool, str]:
    """Whether discover takes ``units=`` (the lead is adding it); the reason when it does not."""
    from kanstudio.core import discover as dmod

    if "units" not in inspect.signature(dmod.discover).parameters:
        return False, "kanstudio.core.discover.discover() has no units= parameter yet"
    try:  # discover imports its reduction lazily, so a missing module would only show per law
        __import__(dmod.__name__.rsplit(".", 1)[0] + ".units")
    except ImportError as e:
        return False, f"discover takes units= but its units module does not import ({e})"
    return True, ""


def _width(d) -> str:
    best = getattr(d, "best", None)
    if best is not None:
        return getattr(best, "label", "") or str(best.width)
    for a in d.attempts or []:
        if a.formula is d.formula or a.model is d.model:
            return str(a.width)
    return "-"


def run_one(args) -> dict:
    law, noise, time_limit, seed, use_units = args
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from kanstudio.core.discover import DiscoverConfig, discover

    rng = np.random.default_rng(seed)
    X, y = sample(law, 1000, rng)
    Xt, yt = sample(law, 10000, rng)
    if noise:
        y = y + rng.normal(0, noise * np.sqrt(np.mean(y**2)), len(y))
    kw = {"units": law.units_dict()} if use_units and law.units else {}
    error = ""
    t0 = time.perf_counter()
    try:
        d = discover(X, y, law.names, law.target, Xt, yt, DiscoverConfig(seed=seed, time_limit=time_limit), **kw)
        found, r2, width = d.formula.sympy_str(), float(d.formula.r2_test), _width(d)
    except Exception as e:  # one law's failure is a result, not the end of the run
        error = f"{type(e).__name__}: {e}"
        found, r2, width = f"ERROR {error}", float("nan"), "-"
    secs = time.perf_counter() - t0
    exact_by = None
    if not error:
        try:
            exact_by = exact_check(law.formula, found, law.ranges)
        except Exception as e:
            exact_by, error = None, f"exact check failed: {type(e).__name__}: {e}"
    return {"id": law.id, "category": law.category, "split": law.split, "n_vars": len(law.ranges), "noise": noise,
            "target": law.target, "true": law.formula, "found": found, "r2": r2, "exact": exact_by is not None,
            "exact_by": exact_by, "seconds": secs, "width": width, "units_used": bool(kw), "error": error}


def _code_state() -> dict:
    """Which code ran: the commit and a hash of kanstudio's sources (others edit the tree meanwhile)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head = "?"
    h = hashlib.sha256()
    for p in sorted((ROOT / "kanstudio").rglob("*.py")):
        h.update(p.read_bytes())
    return {"git_head": head, "kanstudio_sources_sha256": h.hexdigest()[:16]}


def _list(laws: list[Law]) -> None:
    for law in laws:
        print(f"{law.id:<28} {law.category:<19} {law.split:<7} {len(law.ranges)} vars  {law.target} = {law.formula}")
    by = Counter((law.category, law.split) for law in laws)
    print(f"\n{len(laws)} laws; per category (dev + holdout):")
    for cat in sorted({law.category for law in laws}):
        print(f"  {cat:<20} {by[(cat, 'dev')]:>3} + {by[(cat, 'holdout')]:>3}")
    print(f"  {'all':<20} {sum(v for (c, s), v in by.items() if s == 'dev'):>3} + "
          f"{sum(v for (c, s), v in by.items() if s == 'holdout'):>3}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="full",
                    help=f"{', '.join(SUITES)} (default full: dev file + benchmarks/laws/suite.csv), or CSV paths")
    ap.add_argument("--data", default=None, help="one CSV of laws instead of --suite (e.g. the dev file alone)")
    ap.add_argument("--split", default="all", choices=["dev", "holdout", "all"])
    ap.add_argument("--ids", default=None, help="comma-separated law ids (default: all)")
    ap.add_argument("--categories", default=None, help="comma-separated categories (default: all)")
    ap.add_argument("--noise", default="0,0.01", help="comma-separated noise levels (fraction of RMS(y))")
    ap.add_argument("--units", action="store_true", help="pass each law's units to discover (units=)")
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, metavar="FILE", help="write every result and the summaries here")
    ap.add_argument("--list", action="store_true", help="print the selected laws and their counts, run nothing")
    a = ap.parse_args(argv)
    try:
        laws = load_csv(a.data) if a.data else load_suite(a.suite)
        laws = select(laws, a.split, a.ids, a.categories)
        noises = [float(v) for v in a.noise.split(",")]
    except (OSError, ValueError, KeyError) as e:
        ap.error(str(e))
    if not laws:
        ap.error("no law matches the selection")
    if a.list:
        _list(laws)
        return 0
    use_units = False
    if a.units:
        use_units, why = units_supported()
        if not use_units:
            print(f"note: units were NOT used: {why}", flush=True)
        missing = [law.id for law in laws if not law.units]
        if use_units and missing:
            print(f"note: no units for {', '.join(missing)}; those run without", flush=True)
    state = _code_state()
    print(f"code: {json.dumps(state)}", flush=True)
    all_results, summaries = [], []
    for noise in noises:
        print(f"\n== noise {noise:g} ({len(laws)} laws, {a.jobs} workers, 1 torch thread each"
              f"{', with units' if use_units else ''}) ==", flush=True)
        jobs = [(law, noise, a.time_limit, a.seed, use_units) for law in laws]
        results = []
        with mp.get_context("spawn").Pool(a.jobs) as pool:
            for res in pool.imap(run_one, jobs):
                results.append(res)
                mark = "EXACT" if res["exact"] else ("r2ok " if not math.isnan(res["r2"]) and res["r2"] >= 0.9999
                                                     else "     ")
                print(f"{mark} {res['id']:<28} {res['category']:<19} {res['split']:<7} {res['seconds']:5.1f}s  "
                      f"R2={res['r2']:.6f}  [{res['width']}]  true: {res['true']}   found: {res['found']}", flush=True)
        s = summarize(results, a.time_limit)
        print(format_summary(noise, s, a.time_limit), flush=True)
        all_results.extend(results)
        summaries.append({"noise": noise, **s})
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"config": {**vars(a), "units_used": use_units, **state}, "summaries": summaries,
                       "results": all_results}, fh, indent=1)
    print("\n" + " | ".join(f"noise {s['noise']:g}: exact {s['all']['exact_pct']:.0f}% ({s['all']['exact']}/{s['all']['n']}), "
                            f"R2>=0.9999 {s['all']['r2ok_pct']:.0f}%, median {s['all']['median_s']:.1f} s"
                            for s in summaries))
    compact = [{"noise": s["noise"], **{k: {g: {m: s[k][g][m] for m in ("n", "exact", "r2ok", "median_s", "max_s",
                                                                         "over_budget")} for g in s[k]}
                                         for k in ("split", "category")}, "all": s["all"]} for s in summaries]
    print("SUMMARY_JSON " + json.dumps(compact, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
