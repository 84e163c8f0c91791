"""The dev/holdout split of the suite's new laws: one seeded draw, stratified by category.

Drawn once, before any discovery run on the new laws, and written into suite.csv's ``split``
column; tests/test_benchmark_suite.py re-draws it and fails if the column was edited by hand
(e.g. a law moved out of holdout after a look at its result). How: categories in sorted order,
each category's ids in sorted order, one ``numpy.random.default_rng(SEED)`` for the whole draw;
per category ``floor(SHARE * n + 0.5)`` ids are drawn without replacement into holdout. The 25
feynman_dev laws are all dev. Adding laws later changes the draw for their category: put new
laws in a new file with its own draw instead of appending to suite.csv.

    python benchmarks/laws/split.py           # check suite.csv against the draw
    python benchmarks/laws/split.py --write   # (re)write the split column: only for a new file
"""
from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

SEED = 12  # issue 12
SHARE = 0.4
SUITE = Path(__file__).with_name("suite.csv")
COLUMNS = ["id", "formula", "target", "variables", "units", "source", "category", "split"]


def draw_holdout(laws: list[tuple[str, str]], share: float = SHARE, seed: int = SEED) -> set[str]:
    """``laws``: (id, category) pairs -> the ids drawn into holdout."""
    import numpy as np

    rng = np.random.default_rng(seed)
    by_cat: dict[str, list[str]] = {}
    for id_, cat in laws:
        by_cat.setdefault(cat, []).append(id_)
    out: set[str] = set()
    for cat in sorted(by_cat):
        ids = sorted(by_cat[cat])
        k = math.floor(share * len(ids) + 0.5)
        out.update(str(i) for i in rng.choice(ids, size=k, replace=False))
    return out


def main(argv=None) -> int:
    write = "--write" in (argv if argv is not None else sys.argv[1:])
    with open(SUITE, newline="") as fh:
        rows = list(csv.DictReader(fh))
    hold = draw_holdout([(r["id"], r["category"]) for r in rows])
    want = {r["id"]: "holdout" if r["id"] in hold else "dev" for r in rows}
    if write:
        with open(SUITE, "w", newline="") as fh:
            w = csv.DictWriter(fh, COLUMNS, lineterminator="\n")
            w.writeheader()
            for r in rows:
                w.writerow({**r, "split": want[r["id"]]})
        print(f"wrote {SUITE}: {len(hold)} of {len(rows)} new laws in holdout")
        return 0
    bad = [r["id"] for r in rows if r["split"] != want[r["id"]]]
    print(f"{len(hold)} of {len(rows)} new laws in holdout; " + (f"MISMATCH: {bad}" if bad else "suite.csv matches the draw"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
