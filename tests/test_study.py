"""kanstudio.core.study: recorded edits, exact undo/redo, background training, the cap, caches."""
from __future__ import annotations

import copy
import threading
import time

import numpy as np
import pytest
import torch

from kanstudio.core.data import DataError, Dataset
from kanstudio.core.study import Settings, Study, StudyBusy, active_trainings, set_max_concurrent_trainings

torch.set_num_threads(1)

SETTINGS = Settings(width="2,3,1", grid=4, steps=4)


def _data(n=200, seed=0, extra=False):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 3 if extra else 2))
    y = np.sin(np.pi * X[:, 0]) + X[:, 1] ** 2
    return Dataset.from_arrays(X, y, names=["a", "b", "c"] if extra else ["a", "b"])


DS = _data()
X = DS.X


@pytest.fixture(scope="module")
def trained_state():
    """One trained model, shared: each test starts from it via a cheap set-up (no retraining)."""
    s = Study(DS, SETTINGS)
    s.train()
    return s.history.entries[-1].after


def _study(trained_state, **kw) -> Study:
    s = Study(DS, SETTINGS, **kw)
    s._apply_state(trained_state)
    s._bump()
    s.base = s._state()
    return s


def _state(s: Study):
    meta, t = s.model.get_state()
    return copy.deepcopy(meta), t  # get_state shares lists with the live network


def _same_state(a, b) -> bool:
    (ma, ta), (mb, tb) = a, b
    return ma == mb and set(ta) == set(tb) and all(torch.equal(ta[k], tb[k]) for k in ta)


def _pred(s: Study) -> np.ndarray:
    return s.model.predict(s.dataset.X)


def _live_hidden_node(s: Study) -> int:
    return int(np.flatnonzero(s.model.net.live_nodes()[1].numpy())[0])


# --------------------------------------------------------------------------- undo / redo of every edit kind

def _edit_snap(s):
    s.snap(0, 0, 0, "sin")


def _edit_snap_auto(s):
    s.snap(0, 1, 1, "auto")


def _edit_unsnap(s):
    s.unsnap(0, 0, 0)


def _edit_prune_edge(s):
    s.prune_edge(1, 0, 0)


def _edit_prune_node(s):
    s.prune_node(1, _live_hidden_node(s))


def _edit_auto_prune(s):
    scores = s.model.node_scores()[0]
    th = float(np.median(np.minimum(*scores))) + 1e-12
    out = s.auto_prune(node_th=th)
    assert out["nodes"]


def _edit_auto_symbolic(s):
    out = s.auto_symbolic(r2_threshold=0.5, lib=["x", "x^2", "sin"])
    assert out["snapped"]


def _edit_refine(s):
    s.refine(7)
    assert s.model.grid == 7


def _edit_train(s):
    assert s.train(3).steps == 3


def _edit_refit(s):
    s.refit(2)


def _edit_background_train(s):
    s.start_training(3)
    res = s.wait_training(60)
    assert res is not None and res.steps == 3


def _edit_set_data(s):
    s.set_data(_data(150, seed=1, extra=True))
    assert s.model.net.dims[0] == 3


def _edit_set_roles(s):
    s.set_roles(inputs=["a"])
    assert s.model.net.dims[0] == 1


def _edit_test_fraction(s):
    s.set_roles(test_fraction=0.5)


def _edit_reset(s):
    s.reset_model()


EDITS = [_edit_snap, _edit_snap_auto, _edit_unsnap, _edit_prune_edge, _edit_prune_node, _edit_auto_prune,
         _edit_auto_symbolic, _edit_refine, _edit_train, _edit_refit, _edit_background_train, _edit_set_data,
         _edit_set_roles, _edit_test_fraction, _edit_reset]


@pytest.mark.parametrize("edit", EDITS, ids=lambda f: f.__name__[6:])
def test_undo_and_redo_restore_exactly(trained_state, edit):
    s = _study(trained_state)
    if edit is _edit_unsnap:
        s.snap(0, 0, 0, "x^2")
    ds0, st0, p0 = s.dataset, _state(s), _pred(s)
    n0, v0 = s.history_index, s.version
    edit(s)
    assert s.version > v0
    assert s.history_index == n0 + 1 and s.can_undo and not s.can_redo
    ds1, st1, p1 = s.dataset, _state(s), _pred(s)
    assert not _same_state(st0, st1) or ds1 is not ds0  # the edit did something

    label = s.undo()
    assert label == s.history_labels[-1]
    assert s.dataset is ds0 and _same_state(_state(s), st0)
    assert np.array_equal(_pred(s), p0)
    assert s.can_redo and s.history_index == n0

    assert s.redo() == label
    assert s.dataset is ds1 and _same_state(_state(s), st1)
    assert np.array_equal(_pred(s), p1)
    assert not s.can_redo


def test_undo_after_many_edits_walks_back_to_each_state(trained_state):
    s = _study(trained_state)
    preds = [_pred(s)]
    for edit in (_edit_snap, _edit_prune_edge, _edit_refine, _edit_train, _edit_set_roles):
        edit(s)
        preds.append(_pred(s))
    for p in reversed(preds[:-1]):
        s.undo()
        assert np.array_equal(_pred(s), p)
    assert s.undo() is None and not s.can_undo
    for p in preds[1:]:
        s.redo()
        assert np.array_equal(_pred(s), p)


def test_a_new_edit_after_undo_drops_the_redo_tail(trained_state):
    s = _study(trained_state)
    s.snap(0, 0, 0, "sin")
    s.prune_edge(1, 0, 0)
    s.undo()
    assert s.can_redo
    s.snap(0, 1, 0, "x")
    assert not s.can_redo
    assert len(s.history_labels) == 2 and s.history_index == 2
    assert "x" in s.history_labels[-1]


def test_history_is_bounded_but_keeps_every_spec(trained_state):
    s = _study(trained_state, max_undo=3)
    for j in range(3):
        s.snap(0, 0, j, "x")
        s.unsnap(0, 0, j)
    assert len(s.history_labels) == 6
    undone = 0
    while s.undo() is not None:
        undone += 1
    assert undone == 3
    assert s.history_index == 3
    assert all(e.before is None for e in s.history.entries[:3])  # mementos dropped, specs kept
    assert [e.spec["op"] for e in s.history.entries] == ["snap", "unsnap"] * 3


# --------------------------------------------------------------------------- impossible edits

@pytest.mark.parametrize("bad", [
    lambda s: s.prune_edge(0, 5, 0),
    lambda s: s.prune_edge(3, 0, 0),
    lambda s: s.snap(0, 0, 0, "no_such_function"),
    lambda s: s.snap(0, 0, 0, 42),
    lambda s: s.unsnap(0, 0, 0),
    lambda s: s.prune_node(0, 0),
    lambda s: s.prune_node(2, 0),
    lambda s: s.prune_node(1, 9),
    lambda s: s.refine(0),
    lambda s: s.train(0),
    lambda s: s.train(3, momentum=0.9),
    lambda s: s.auto_prune(node_th=-1),
    lambda s: s.auto_symbolic(r2_threshold=2),
    lambda s: s.set_roles(target="nope"),
    lambda s: s.set_roles(inputs=["a", "a"]),
    lambda s: s.load_data("x,y\n1,2\n"),
    lambda s: s.suggest(0, 0, 7),
])
def test_impossible_edits_raise_value_error_and_change_nothing(trained_state, bad):
    s = _study(trained_state)
    st, v, n, ds = _state(s), s.version, len(s.history_labels), s.dataset
    with pytest.raises(ValueError) as e:
        bad(s)
    assert str(e.value)
    assert _same_state(_state(s), st) and s.version == v and len(s.history_labels) == n and s.dataset is ds


def test_pruned_things_cannot_be_pruned_or_snapped_again(trained_state):
    s = _study(trained_state)
    s.prune_edge(0, 1, 2)
    for bad in (lambda: s.prune_edge(0, 1, 2), lambda: s.snap(0, 1, 2), lambda: s.unsnap(0, 1, 2)):
        with pytest.raises(ValueError, match="pruned|not snapped"):
            bad()
    j = _live_hidden_node(s)
    s.prune_node(1, j)
    with pytest.raises(ValueError, match="already pruned"):
        s.prune_node(1, j)
    assert len(s.history_labels) == 2


def test_nothing_to_prune_or_snap_records_nothing(trained_state):
    s = _study(trained_state)
    p = _pred(s)
    assert s.auto_prune(node_th=0.0) == {"nodes": [], "edges": []}
    assert s.auto_symbolic(r2_threshold=1.0, lib=["0"])["snapped"] == []
    assert s.history_labels == [] and np.array_equal(_pred(s), p)
    assert any("nothing" in t for _, t in s.messages)


def test_errors_with_no_data():
    s = Study()
    assert s.model is None and s.snapshot() is None and s.formula() is None
    for bad in (lambda: s.train(), lambda: s.start_training(), lambda: s.snap(0, 0, 0), lambda: s.reset_model(),
                lambda: s.set_roles(test_fraction=0.1)):
        with pytest.raises(ValueError, match="data"):
            bad()
    assert s.undo() is None and s.redo() is None


# --------------------------------------------------------------------------- data

def test_load_data_from_a_path_records_warnings_and_is_undoable(tmp_path):
    path = tmp_path / "m.csv"
    lines = ["a,b,const,y"] + [f"{i / 10},{(i * 7 % 11) / 10},1,{i / 10 + (i * 7 % 11) / 20}" for i in range(30)]
    path.write_text("\n".join(lines) + "\n")
    s = Study(settings=SETTINGS)
    ds = s.load_data(path, test_fraction=0.25)
    assert ds.inputs == ("a", "b") and s.dataset is ds and ds.test_fraction == 0.25
    assert s.model is not None and s.model.net.dims[0] == 2
    assert any(level == "warning" and "const" in text for level, text in s.messages)
    assert s.history.entries[-1].spec["args"]["source"] == str(path.resolve())
    with pytest.raises(DataError):
        s.load_data(tmp_path / "missing.csv")
    assert s.dataset is ds and len(s.history_labels) == 1
    s.undo()
    assert s.dataset is None and s.model is None


def test_width_setting_that_does_not_fit_the_data():
    s = Study(DS, Settings(width="3,2,1"))  # 3 inputs but the data has 2: adapted, with a warning
    assert s.model.net.dims == [2, 2, 1] and s.settings.width == "2,2,1"
    assert any("the width is now 2,2,1" in t for lvl, t in s.messages if lvl == "warning")


def test_update_settings_is_validated():
    s = Study(DS)
    assert s.update_settings(width="2,4,1", lamb=0.0, lib=["sin", "x"]).lib == ("sin", "x")
    for kw in ({"grid": 0}, {"k": 1.5}, {"opt": "sgd"}, {"lr": -1}, {"lamb": float("nan")}, {"batch": 0},
               {"r2_threshold": 1.5}, {"lib": ["nope"]}, {"width": "2,?,1"}, {"steps": True}, {"colour": 1},
               {"device": "tpu"}):
        with pytest.raises(ValueError):
            s.update_settings(**kw)
    assert s.settings.width == "2,4,1"
    s.update_settings(width=None)
    s.reset_model()
    assert s.model.net.dims == [2, 5, 1]


# --------------------------------------------------------------------------- background training

def _wait_for(cond, timeout=30.0):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_edits_while_training_raise_study_busy_and_the_run_becomes_one_entry(trained_state):
    s = _study(trained_state)
    p0 = _pred(s)
    s.start_training(100000)
    assert s.training
    _wait_for(lambda: s.last_event is not None and s.last_event.step >= 1)
    for edit in (lambda: s.snap(0, 0, 0), lambda: s.prune_edge(0, 0, 0), lambda: s.prune_node(1, 0),
                 lambda: s.auto_prune(), lambda: s.auto_symbolic(), lambda: s.refine(8), lambda: s.unsnap(0, 0, 0),
                 lambda: s.train(2), lambda: s.refit(2), lambda: s.reset_model(), lambda: s.set_data(DS),
                 lambda: s.set_roles(test_fraction=0.3), lambda: s.undo(), lambda: s.redo(),
                 lambda: s.start_training(), lambda: s.load_data("a,y\n1,2\n2,3\n"), lambda: s.save("/tmp/x")):
        with pytest.raises(StudyBusy, match="training"):
            edit()
    assert not s.can_undo
    with s.lock:  # reads stay possible, and consistent, while training
        assert s.snapshot() is not None and len(_pred(s)) == len(X)
    s.stop_training()
    assert not s.training
    steps = s.wait_training().steps
    assert steps >= 1
    assert s.history_labels == [f"train {steps}/100000 steps (lbfgs, λ=0.001) (stopped)"]
    assert s.loss_history[-1].kind == "stopped"
    s.undo()
    assert np.array_equal(_pred(s), p0)


def test_a_stopped_background_run_equals_training_that_many_steps(trained_state):
    s = _study(trained_state)
    s.start_training(100000, lamb=0.01)
    _wait_for(lambda: s.last_event is not None and s.last_event.step >= 2)
    s.stop_training()
    spec = s.history.entries[-1].spec
    assert spec["op"] == "train" and spec["args"]["lamb"] == 0.01
    again = _study(trained_state)
    again.train(spec["args"]["steps"], lamb=0.01)
    assert np.array_equal(_pred(again), _pred(s))


def test_pause_and_resume(trained_state):
    s = _study(trained_state)
    s.start_training(100000)
    _wait_for(lambda: s.last_event is not None and s.last_event.step >= 1)
    s.pause_training()
    assert s.training_paused
    time.sleep(0.3)
    step = s.last_event.step
    time.sleep(0.3)
    assert s.last_event.step == step
    s.resume_training()
    assert not s.training_paused
    _wait_for(lambda: s.last_event.step > step)
    s.stop_training()
    assert not s.training and not s.training_paused


def test_pausing_then_closing_stops_the_thread(trained_state):
    before = threading.active_count()
    s = _study(trained_state)
    s.start_training(100000)
    s.pause_training()
    s.close()
    assert not s.training and threading.active_count() == before
    s.close()  # twice is fine


def test_close_stops_training_and_keeps_the_steps(trained_state):
    before = threading.active_count()
    s = _study(trained_state)
    s.start_training(100000)
    _wait_for(lambda: s.last_event is not None and s.last_event.step >= 1)
    s.close()
    assert not s.training and threading.active_count() == before and active_trainings() == 0
    assert s.history.entries[-1].spec["op"] == "train"


def test_a_run_that_finishes_is_recorded_and_versions_bump(trained_state):
    s = _study(trained_state)
    v = s.version
    s.start_training(3)
    res = s.wait_training(60)
    assert res.status == "done" and res.steps == 3
    assert s.version > v + 3  # start, progress events, end
    assert [e.kind for e in s.loss_history][0] == "start" and s.loss_history[-1].kind == "done"
    assert s.history_labels[-1] == "train 3 steps (lbfgs, λ=0.001)"
    assert s.wait_training() is res  # the last run's result stays available


def test_a_failing_run_leaves_the_model_as_it_was(trained_state, monkeypatch):
    s = _study(trained_state)
    p0 = _pred(s)
    import kanstudio.core.train as train_mod

    def boom(*a, **k):
        raise RuntimeError("boom")

    import kanstudio.core.objective as objective_mod

    monkeypatch.setattr(train_mod, "sparsity_penalty", boom)  # the autograd objective
    monkeypatch.setattr(objective_mod.FusedObjective, "__call__", boom)  # the hand-differentiated one
    s.start_training(5)
    res = s.wait_training(60)
    assert res.status == "failed" and res.steps == 0
    assert not s.training and s.history_labels == [] and np.array_equal(_pred(s), p0)
    assert any(level == "error" and "boom" in text for level, text in s.messages)


def test_the_concurrent_training_cap(trained_state):
    set_max_concurrent_trainings(2)
    studies = [_study(trained_state) for _ in range(3)]
    try:
        studies[0].start_training(100000)
        studies[1].start_training(100000)
        assert active_trainings() == 2
        with pytest.raises(StudyBusy, match="limit is 2"):
            studies[2].start_training(100000)
        assert not studies[2].training
        studies[0].stop_training()
        studies[2].start_training(100000)
        assert studies[2].training
        with pytest.raises(ValueError):
            set_max_concurrent_trainings(0)
    finally:
        for s in studies:
            s.close()
        set_max_concurrent_trainings(4)
    assert active_trainings() == 0


def test_hundred_start_stop_cycles_leave_no_threads(trained_state):
    s = _study(trained_state)
    before = threading.active_count()
    for n in range(100):
        s.start_training(100000)
        s.stop_training(wait=True)
        assert not s.training
    assert threading.active_count() == before
    assert active_trainings() == 0
    assert all(e.spec["op"] == "train" and e.spec["args"]["steps"] >= 1 for e in s.history.entries)
    while s.undo():
        pass
    assert np.array_equal(_pred(s), _study(trained_state).model.predict(X))


# --------------------------------------------------------------------------- results and caches

def test_results_are_cached_per_version(trained_state):
    s = _study(trained_state)
    snap = s.snapshot()
    assert snap is s.snapshot() and snap.version == s.version
    c = s.suggest(0, 0, 0, lib=["x", "sin"])
    assert [x.name for x in c] == [x.name for x in s.suggest(0, 0, 0, lib=["x", "sin"])]
    calls = []
    real = s.model.suggest_symbolic
    s.model.suggest_symbolic = lambda *a, **k: calls.append(1) or real(*a, **k)
    s.suggest(0, 0, 0, lib=["x", "sin"])
    assert calls == []  # cached
    s.snap(0, 0, 0, c[0])  # a Candidate from suggest
    assert s.model.net.layers[0].sym_names[0][0] == c[0].name
    assert s.snapshot() is not snap and s.snapshot().edge_symbolic[0][0][0] == c[0].name
    assert len(s.suggest(0, 1, 0, lib=["x"])) == 1


def test_formula_and_predictions_csv(trained_state):
    pytest.importorskip("kanstudio.core.formula")
    s = _study(trained_state)
    s.prune_node(1, 1)
    s.prune_node(1, 2)
    s.auto_symbolic(r2_threshold=0.0, lib=["x", "x^2", "sin"])
    f = s.formula()
    assert f is s.formula() and f.exact
    text = s.predictions_csv()
    lines = text.strip().split("\n")
    assert lines[0] == "a,b,y,y_network,y_formula,split" and len(lines) == DS.n_rows + 1
    df = s.predictions()
    assert np.array_equal(df["y_network"], s.model.predict(X))
    assert np.array_equal(df["y_formula"], f.evaluate(X))
    assert np.array_equal(df[["a", "b", "y"]].to_numpy(), DS.frame.to_numpy())
    assert (df["split"] == "test").sum() == len(DS.split_indices()[1])
    if hasattr(pytest.importorskip("kanstudio.core.formula"), "pareto_front"):
        front = s.pareto()
        assert front and front is s.pareto()


def test_waiting_while_holding_the_lock_is_refused_instead_of_deadlocking(trained_state):
    s = _study(trained_state)
    s.start_training(100000)
    try:
        with s.lock:
            with pytest.raises(RuntimeError, match="deadlock"):
                s.stop_training(wait=True)
    finally:
        s.close()
    assert not s.training


def test_the_loss_curve_follows_undo_redo_and_new_data(trained_state):
    s = _study(trained_state)
    assert s.loss_history == []  # nothing trained in this study yet
    s.train(3)
    first = s.loss_history
    assert first[-1].kind == "done" and first[-1].step == 3
    s.start_training(5)
    second = s.wait_training(60).history
    assert s.loss_history[-1].step == 5 and s.loss_history == second
    s.prune_edge(0, 0, 0)
    assert s.loss_history == second  # an edit keeps the curve of the training before it
    s.undo()
    s.undo()
    assert s.loss_history == first  # back to the first training's model: its curve
    s.redo()
    assert s.loss_history == second
    s.set_data(_data(seed=1))
    assert s.loss_history == []  # a new dataset: no curve of the old one
    s.undo()
    assert s.loss_history == second


def test_a_width_for_other_inputs_adapts_to_new_data_with_one_message():
    s = Study(DS, Settings(width="2,3,1", grid=4, steps=2))
    assert s.model.width_str == "2,3,1"
    s.set_data(_data(extra=True))  # three inputs now
    assert s.model.width_str == "3,3,1" and s.settings.width == "3,3,1"
    notes = [t for _, t in s.messages if "width" in t]
    assert notes == ["the width 2,3,1 is for 2 input(s) but the data has 3 (a, b, c): the width is now "
                     "3,3,1 (its hidden layers kept)"]
    s.reset_model()  # what Start does when the settings ask for another network: no error now
    assert s.model.width_str == "3,3,1"
    s.update_settings(width="5,1x")
    s.reset_model()
    assert s.model.width_str == "3,1x" and s.settings.width == "3,1x"
