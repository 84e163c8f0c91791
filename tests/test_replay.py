"""kanstudio.core.replay: the exported script rebuilds the same model and formula."""
from __future__ import annotations

import io
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kanstudio.core import replay as replay_mod
from kanstudio.core.data import Dataset
from kanstudio.core.study import Settings, Study

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent


def _data(n=200, names=("a", "b"), seed=0, target="y"):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, len(names)))
    return Dataset.from_arrays(X, np.sin(np.pi * X[:, 0]) + X[:, 1] ** 2, names=list(names), target=target)


def _run_in_process(script: str, tmp_path: Path) -> Study:
    path = tmp_path / "replay_inproc.py"
    path.write_text(script, encoding="utf-8")
    return runpy.run_path(str(path), run_name="replayed")["study"]


def _same_model(a: Study, b: Study) -> None:
    X = a.dataset.X
    assert a.dataset.to_json_dict() == b.dataset.to_json_dict()
    assert np.array_equal(a.model.predict(X), b.model.predict(X))
    ma, ta = a.model.get_state()
    mb, tb = b.model.get_state()
    assert ma == mb and all(torch.equal(ta[k], tb[k]) for k in ta)




def test_the_script_reproduces_predictions_and_formula_in_a_fresh_process(tmp_path, monkeypatch):
    pytest.importorskip("kanstudio.core.formula")
    s = Study(_data(), Settings(width="2,3,1", grid=4, steps=3), name="replay me")
    s.train()
    s.snap(0, 0, 0, "sin")
    s.snap(0, 1, 0, "auto")
    s.prune_edge(0, 1, 1)
    s.update_settings(lamb=0.0, r2_threshold=0.5, lib=["x", "x^2", "sin"])
    s.start_training(2)  # a background run: replayed as a synchronous one
    s.wait_training(60)
    s.prune_node(1, 1)
    s.prune_node(1, 2)
    s.refine(6)
    s.set_roles(test_fraction=0.25)
    s.auto_symbolic()
    s.refit(2)
    s.unsnap(0, 0, 0)
    s.undo()  # undone edits are not replayed
    script = s.replay_script()
    assert "unsnap" not in script and "study.train(steps=2)" in script
    path = tmp_path / "replay.py"
    path.write_text(script, encoding="utf-8")
    out = tmp_path / "pred.csv"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(path), str(out)], capture_output=True, text=True, env=env,
                       timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    formula = s.formula()
    assert r.stdout.splitlines()[0] == formula.sympy_str()
    assert out.read_text(encoding="utf-8") == s.predictions_csv()  # every number, bit for bit


def test_replay_of_every_kind_of_edit_in_process(tmp_path):
    s = Study(settings=Settings(width="2,3,1", grid=4, steps=2))
    s.set_data(_data(120))
    s.train(2, opt="adam", lr=0.02, batch=32, seed=5)
    c = s.suggest(0, 0, 1, lib=["x", "sin"])[0]
    s.snap(0, 0, 1, c)  # a Candidate: written out with its exact constants
    s.snap(0, 0, 2, "x^2", lib=None)
    s.auto_prune(node_th=1e9)  # removes every hidden node
    s.undo()
    s.auto_prune(node_th=0.0, edge_th=1e-3)
    s.set_data(_data(100, names=("p", "q", "r"), seed=2))
    s.update_settings(width="3,2,1", seed=3)
    s.reset_model()
    s.set_roles(inputs=["p", "q"], target="y")
    s.update_settings(width=None)
    s.reset_model()
    s.train(2)
    s.auto_symbolic(r2_threshold=0.0, lib=["x"])
    script = s.replay_script()
    assert "from kanstudio.core.symbolic import Candidate" in script
    _same_model(s, _run_in_process(script, tmp_path))


def test_replay_after_save_and_load(tmp_path):
    s = Study(_data(), Settings(width="2,2,1", grid=3, steps=2))
    s.train()
    s.snap(0, 1, 0, "x^2")
    back = Study.from_bytes(s.to_bytes())
    assert back.replay_script().split("\n")[3:] == s.replay_script().split("\n")[3:]  # all but the date
    _same_model(s, _run_in_process(back.replay_script(), tmp_path))


def test_large_data_is_read_from_its_file(tmp_path, monkeypatch):
    monkeypatch.setattr(replay_mod, "EMBED_LIMIT", 100)
    csv = tmp_path / "big data.csv"
    csv.write_text(_data(80).to_csv())
    s = Study(settings=Settings(width="2,2,1", grid=3))
    s.load_data(csv, test_fraction=0.1)
    s.train(2)
    script = s.replay_script()
    assert repr(str(csv.resolve())) in script and "DATA_0 =" not in script
    _same_model(s, _run_in_process(script, tmp_path))


@pytest.mark.parametrize("names", [("mass, kg", 'say "hi"', "y"), ("1", "2", "y"), ("x\\y", "é", "y"),
                                   ("1", "2", "3")])  # all-numeric header: CSV would read it as data
def test_awkward_column_names_survive(tmp_path, names):
    s = Study(_data(40, names=names[:2], target=names[2]), Settings(width="2,2,1", grid=3))
    s.train(1)
    script = s.replay_script()
    assert ("Dataset(pd.DataFrame(" in script) == (names[2] == "3")
    _same_model(s, _run_in_process(script, tmp_path))


def test_a_study_without_data(tmp_path):
    s = Study(settings=Settings(steps=3))
    replayed = _run_in_process(s.replay_script(), tmp_path)
    assert replayed.model is None and replayed.settings == s.settings


def test_replay_is_refused_while_training():
    from kanstudio.core.study import StudyBusy

    s = Study(_data(), Settings(width="2,2,1", grid=3))
    s.start_training(100000)
    try:
        with pytest.raises(StudyBusy):
            s.replay_script()
    finally:
        s.close()


def test_the_script_csv_is_what_load_csv_reads(tmp_path):
    ds = _data(30)
    s = Study(ds, Settings(width="2,2,1", grid=3))
    script = s.replay_script()
    ns = runpy.run_path(_write(tmp_path, script), run_name="x")
    again = ns["DATA_0_dataset"]()
    assert np.array_equal(again.frame.to_numpy(), ds.frame.to_numpy())
    assert pd.read_csv(io.StringIO(ns["DATA_0"])).shape == (30, 3)


def _write(tmp_path: Path, script: str) -> str:
    p = tmp_path / "s.py"
    p.write_text(script, encoding="utf-8")
    return str(p)
