"""The Study's background discovery (core/discovery_run.py): progress while it runs, stop,
Pareto flags, units, and an attempt opened as an undoable edit that survives the study file."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from kanstudio.core.data import load_csv
from kanstudio.core.discovery_run import AttemptRow, attempt_dataset, complete_units, pareto_flags
from kanstudio.core.study import Study, StudyBusy


def _lorentz(n=500, seed=0):
    rng = np.random.default_rng(seed)
    q, v, B = (rng.uniform(0.5, 2, n) for _ in range(3))
    th = rng.uniform(0.2, 1.5, n)
    df = pd.DataFrame(dict(q=q, v=v, B=B, theta=th, F=q * v * B * np.sin(th)))
    return load_csv(df.to_csv(index=False), name="lorentz")


def test_discovery_finds_the_law_and_opens_it_as_an_undoable_edit():
    s = Study(_lorentz())
    run = s.start_discovery(time_limit=30)
    assert s.discovering or run.status in ("done", "stopped")
    assert run.join(120)
    lines = run.lines
    assert run.status == "done", (run.status, run.error, lines)
    assert any(ln.startswith("trying") for ln in lines)
    assert len(run.rows) == len(run.attempts) >= 1
    best = run.rows[run.best_index]
    assert best.formula == "B*q*v*sin(theta)" and best.exact and best.openable
    flags = run.pareto()
    assert flags[run.best_index]
    # the flags are Discovery.pareto()'s front
    front = run.result.pareto()
    assert {id(run.attempts[k].formula) for k, f in enumerate(flags) if f} == {id(f) for f in front}
    n = len(s.history_labels)
    s.open_attempt(run.best_index)
    assert len(s.history_labels) == n + 1 and s.history_labels[-1].startswith("open discovery attempt")
    assert s.model.width_str == run.attempts[run.best_index].width
    assert s.formula().sympy_str() == "B*q*v*sin(theta)"
    assert s.model is not run.attempts[run.best_index].model  # a copy: editing it leaves the table's alone
    raw = s.to_bytes()
    s.undo()
    assert len(s.history_labels) == n + 1 and s.history_index == n
    back = Study.from_bytes(raw)
    assert back.formula().sympy_str() == "B*q*v*sin(theta)" and back.history_labels[-1] == s.history_labels[-1]


def test_stop_ends_the_search_after_the_shape_in_progress():
    s = Study(_lorentz())
    run = s.start_discovery(time_limit=120, good_enough_r2=2.0, structure=False)  # nothing is good enough
    run.stop()
    assert run.join(120)
    assert run.status == "stopped"
    assert len(run.attempts) <= 1
    assert not s.discovering


def test_a_second_discovery_while_one_runs_is_refused():
    s = Study(_lorentz())
    run = s.start_discovery(time_limit=60, good_enough_r2=2.0)
    try:
        with pytest.raises(StudyBusy, match="already running"):
            s.start_discovery()
    finally:
        s.stop_discovery(wait=True)
    assert run.status in ("stopped", "done")


def test_bad_options_and_no_data():
    with pytest.raises(ValueError, match="no data"):
        Study().start_discovery()
    s = Study(_lorentz())
    with pytest.raises(ValueError, match="time limit"):
        s.start_discovery(time_limit=-1)
    with pytest.raises(ValueError, match="unknown discovery option"):
        s.start_discovery(colour="red")
    with pytest.raises(ValueError, match="no discovery"):
        s.open_attempt(0)


def test_units_are_checked_and_used_only_when_complete():
    s = Study(_lorentz())
    with pytest.raises(ValueError, match="column 'q'"):
        s.set_units({"q": "furlong"})
    s.set_units({"q": "C", "v": "m/s", "B": "T", "theta": ""})
    assert "theta" not in s.units and complete_units(s.units, s.dataset) is None
    s.set_units({**s.units, "theta": "rad", "F": "N"})
    assert complete_units(s.units, s.dataset) == {"q": "C", "v": "m/s", "B": "T", "theta": "rad", "F": "N"}
    assert Study.from_bytes(s.to_bytes()).units == s.units
    run = s.start_discovery(time_limit=30)
    assert run.join(120) and run.status == "done", run.lines
    assert any(f.startswith("units") for f in run.found), run.found
    k = next(r.index for r in run.rows if r.openable and r.formula == "B*q*v*sin(theta)")
    a = run.attempts[k]
    s.open_attempt(k)
    # the network works on the view's columns (the dimensionless group), the target divided out
    if a.view is not None and not a.view.is_identity:
        assert list(s.dataset.inputs) == [str(n) for n in a.view.names]
        ds = attempt_dataset(run.dataset, a.view)
        assert np.allclose(s.model.predict(ds.X), ds.y, atol=1e-6 * np.std(ds.y) + 1e-9)


def test_pareto_flags():
    def row(i, cx, err):
        return AttemptRow(i, "", "", "", cx, err, 0.0, 0.0, True, "", True)

    rows = [row(0, 10, 1.0), row(1, 5, 2.0), row(2, 20, 0.5), row(3, 7, 3.0), row(4, None, math.nan)]
    assert pareto_flags(rows) == [True, True, True, False, False]
