"""Summaries of a discovery benchmark run: per split, per category, per number of variables."""
from __future__ import annotations

import math
import statistics

R2_OK = 0.9999


def r2_ok(r) -> bool:
    return isinstance(r["r2"], (int, float)) and not math.isnan(r["r2"]) and r["r2"] >= R2_OK


def vars_bucket(n: int) -> str:
    return "1-2 vars" if n <= 2 else "3-4 vars" if n <= 4 else "5-9 vars"


def stats(results: list[dict], time_limit: float | None) -> dict:
    n = len(results)
    secs = [r["seconds"] for r in results]
    return {
        "n": n,
        "exact": sum(bool(r["exact"]) for r in results),
        "exact_pct": 100.0 * sum(bool(r["exact"]) for r in results) / n if n else float("nan"),
        "r2ok": sum(r2_ok(r) for r in results),
        "r2ok_pct": 100.0 * sum(r2_ok(r) for r in results) / n if n else float("nan"),
        "median_s": statistics.median(secs) if secs else float("nan"),
        "max_s": max(secs) if secs else float("nan"),
        "over_budget": sum(s > time_limit for s in secs) if time_limit else 0,
        "errors": sum(bool(r.get("error")) for r in results),
    }


def summarize(results: list[dict], time_limit: float | None) -> dict:
    """``{"all": stats, "split": {name: stats}, "category": {...}, "vars": {...}}`` for one noise level."""
    def groups(key):
        out: dict[str, list] = {}
        for r in results:
            out.setdefault(key(r), []).append(r)
        return {k: stats(v, time_limit) for k, v in sorted(out.items())}

    return {
        "all": stats(results, time_limit),
        "split": groups(lambda r: r["split"]),
        "category": groups(lambda r: r["category"]),
        "vars": groups(lambda r: vars_bucket(r["n_vars"])),
    }


def _line(name: str, s: dict) -> str:
    return (f"  {name:<22} {s['n']:>4}  exact {s['exact_pct']:5.1f}% ({s['exact']:>3})  R2>=0.9999 {s['r2ok_pct']:5.1f}%"
            f"  median {s['median_s']:5.1f} s  max {s['max_s']:6.1f} s  over budget {s['over_budget']:>3}"
            + (f"  errors {s['errors']}" if s["errors"] else ""))


def format_summary(noise: float, summary: dict, time_limit: float | None) -> str:
    lines = [f"-- noise {noise:g}: summary (budget {time_limit:g} s; 'over budget' = seconds > budget) --"
             if time_limit else f"-- noise {noise:g}: summary --"]
    lines.append(_line("all", summary["all"]))
    for title in ("split", "category", "vars"):
        lines.append(f" by {title}:")
        lines.extend(_line(k, v) for k, v in summary[title].items())
    return "\n".join(lines)
