"""Sweeps on a Dask LocalCluster with two worker processes (the CI's cluster)."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="the sweep extra (dask[distributed]) is not installed")

from kanstudio.core.discover import DiscoverConfig, SearchData, _split, discover, run_task  # noqa: E402
from kanstudio.core.search_plan import shape_tasks  # noqa: E402
from kanstudio.core.sweep import make_client, sweep  # noqa: E402
from kanstudio.core.views import View  # noqa: E402


def _data(n=600):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (n, 2))
    return X, np.sin(np.pi * X[:, 0]) + X[:, 1] ** 2


@pytest.fixture(scope="module")
def client():
    c = make_client(workers=2)
    assert len(c.scheduler_info()["workers"]) == 2
    yield c
    c.close()


CFG = DiscoverConfig(steps=20, refit_steps=10, refine_steps=10, time_limit=120)


def test_sweep_streams_every_setting_and_marks_the_pareto_front(client):
    X, y = _data()
    seen = []
    res = sweep(X, y, ["x", "y"], "f", client, widths=["2,1", "2,3,1"], seeds=[0, 1], config=CFG, on_row=seen.append)
    assert len(seen) == 4 and res.skipped == 0
    assert [(r.shape, r.seed) for r in res.rows] == [("2,1", 0), ("2,1", 1), ("2,3,1", 0), ("2,3,1", 1)]
    assert not any(r.error for r in res.rows)
    front = res.pareto
    assert front and all(r.pareto for r in front)
    # nothing off the front beats a front member on both complexity and validation error
    for r in res.rows:
        if not r.pareto:
            assert any(p.complexity <= r.complexity and p.val_rmse <= r.val_rmse for p in front)
    assert any(r.exact and r.test_r2 > 1 - 1e-9 for r in res.rows)


def test_a_worker_gives_the_local_result(client):
    X, y = _data()
    res = sweep(X, y, ["x", "y"], "f", client, widths=["2,1"], seeds=[1], config=CFG)
    Xf, yf, Xv, yv = _split(X, y, CFG.val_fraction, CFG.seed)
    data = SearchData(Xf, yf, Xv, yv, ("x", "y"), "f")
    (task,) = shape_tasks(View.identity(["x", "y"]), ["2,1"])
    local = run_task(task, data, replace(CFG, seed=1))
    assert res.rows[0].formula == local.formula.sympy_str()
    assert res.rows[0].val_rmse == pytest.approx(local.val_rmse, rel=1e-9, abs=1e-12)


def test_discover_on_the_cluster_finds_the_law(client):
    X, y = _data()
    d = discover(X, y, ["x", "y"], "f", config=CFG, client=client)
    assert d.formula.exact and d.formula.r2_test > 1 - 1e-9
    assert d.attempts[0].formula is not None  # the first exact result cancels the rest


def test_stop_ends_a_cluster_search(client):
    X, y = _data()
    with pytest.raises(RuntimeError, match="stopped"):
        discover(X, y, ["x", "y"], "f", config=CFG, client=client, stop=lambda: True)


def test_cli_sweep_writes_csv_and_json(tmp_path):
    X, y = _data(400)
    data = tmp_path / "d.csv"
    np.savetxt(data, np.column_stack([X, y]), delimiter=",", header="x,y,f", comments="")
    for out in ("t.csv", "t.json"):
        r = subprocess.run([sys.executable, "-m", "kanstudio.cli", "sweep", str(data), "--widths", "2,1", "--seeds",
                            "0-1", "--steps", "20", "--workers", "2", "--out", str(tmp_path / out)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert "Pareto front (2 settings" in r.stdout
    rows = list(csv.DictReader(open(tmp_path / "t.csv")))
    assert [(r["shape"], r["seed"]) for r in rows] == [("2,1", "0"), ("2,1", "1")]
    assert {"formula", "complexity", "val_rmse", "test_r2", "pareto"} <= set(rows[0])
    js = json.loads((tmp_path / "t.json").read_text())
    assert [r["formula"] for r in js["rows"]] == [r["formula"] for r in rows]
    bad = subprocess.run([sys.executable, "-m", "kanstudio.cli", "sweep", str(data), "--widths", "3,1"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "starts with 3 inputs" in bad.stderr
