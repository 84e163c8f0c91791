"""The studio's view logic without a browser: data builders, their speed, and the whole app
driven through its widgets with no server (the controller runs callbacks right away)."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import kanstudio.ui  # noqa: F401  (BOKEH_RESOURCES=server before panel)
from kanstudio.core.model import KAN
from kanstudio.core.snapshot import snapshot_network
from kanstudio.ui.network_view import build_edge_data, build_label_data, build_node_data


def _snapshot(width, n=300, seed=0):
    X = np.random.default_rng(seed).uniform(-1, 1, (n, width[0] if isinstance(width[0], int) else sum(width[0])))
    m = KAN(width, seed=seed)
    m.set_data(X, np.sin(X).sum(1))
    return m, snapshot_network(m.net, m.X_train_, [f"x{i}" for i in range(X.shape[1])], ["y"])


def test_network_data_for_10_10_10_1_is_fast():
    _, snap = _snapshot([10, 10, 10, 1])
    build_edge_data(snap), build_node_data(snap)  # warm up
    times = []
    for _ in range(5):
        t = time.perf_counter()
        edges, nodes = build_edge_data(snap), build_node_data(snap)
        build_label_data(edges, nodes)
        times.append(time.perf_counter() - t)
    assert len(edges["l"]) == 210 and len(nodes["l"]) == 31
    assert all(len(c) == 48 for c in edges["curve_xs"])
    assert min(times) < 0.2, times  # the budget for a whole redraw; typically ~2 ms


def test_network_view_update_is_fast():
    from kanstudio.ui.network_view import NetworkView

    _, snap = _snapshot([10, 10, 10, 1])
    view = NetworkView()
    view.update(snap)
    t = time.perf_counter()
    view.update(snap)
    assert time.perf_counter() - t < 0.2
    assert len(view.edges.data["l"]) == 210


def test_curves_fit_in_their_boxes_and_importance_is_opacity():
    _, snap = _snapshot([3, 4, 1])
    e = build_edge_data(snap)
    for k in range(len(e["l"])):
        xs, ys = np.array(e["curve_xs"][k]), np.array(e["curve_ys"][k])
        assert e["left"][k] <= xs.min() and xs.max() <= e["right"][k]
        assert e["bottom"][k] <= ys.min() and ys.max() <= e["top"][k]
    assert np.all((e["alpha"] > 0) & (e["alpha"] <= 1))
    top = int(np.argmax(e["score"]))
    assert e["alpha"][top] == pytest.approx(1.0)


def test_pruned_edges_and_nodes_are_gone_snapped_edges_are_marked():
    m, _ = _snapshot([2, 3, 1])
    m.net.prune_node(1, 1, m.trace())
    m.net.layers[0].set_symbolic(0, 0, "sin", 1.0, 0.0, 1.0, 0.0)
    snap = snapshot_network(m.net, m.X_train_, ["a", "b"], ["y"])
    e, n = build_edge_data(snap), build_node_data(snap)
    keys = set(zip(e["l"].tolist(), e["i"].tolist(), e["j"].tolist()))
    assert (0, 0, 1) not in keys and (0, 1, 1) not in keys and (1, 1, 0) not in keys
    assert (0, 0, 0) in keys
    assert (1, 1) not in set(zip(n["l"], n["j"]))
    k = [i for i, key in enumerate(zip(e["l"], e["i"], e["j"])) if key == (0, 0, 0)][0]
    assert e["label"][k] == "sin" and e["color"][k] != e["color"][1 - k if k else 1]
    labels, node_labels, marks = build_label_data(e, n)
    assert labels["text"] == ["sin"]
    assert sorted(node_labels["text"]) == ["a", "b", "y"]
    assert marks["text"] == []


def test_product_nodes_are_marked():
    _, snap = _snapshot([2, (1, 1), 1])
    e, n = build_edge_data(snap), build_node_data(snap)
    _, _, marks = build_label_data(e, n)
    assert marks["text"] == ["\u00d7"]


def test_candidate_overlay_curve():
    from kanstudio.core.symbolic import Candidate
    from kanstudio.ui.inspector import candidate_curve, candidates_frame

    x = np.linspace(-1, 1, 11)
    c = Candidate("sin", 2.0, 0.5, 3.0, -1.0, 0.99, 2, -1.0)
    assert np.allclose(candidate_curve(c, x), 3 * np.sin(2 * x + 0.5) - 1)
    log = Candidate("log", 1.0, 0.0, 1.0, 0.0, 0.9, 2, 0.0)
    y = candidate_curve(log, x)
    assert np.isnan(y[0]) and np.isfinite(y[-1])  # outside the domain: a gap, not an error
    df = candidates_frame([c, log])
    assert list(df.columns) == ["function", "a", "b", "c", "d", "R\u00b2", "complexity"]
    assert all(df[col].dtype == object for col in df.columns)  # fixed schema (see candidates_frame)


def test_loopback_detection():
    from kanstudio.ui.app import _is_loopback

    assert _is_loopback("127.0.0.1") and _is_loopback("localhost") and _is_loopback("::1")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("")


# --------------------------------------------------------------------------- the app, no server

def _until(app, pred, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.controller.poll()
        if pred():
            return
        time.sleep(0.02)
    raise TimeoutError(what)


@pytest.fixture
def app():
    from kanstudio.ui.app import App

    a = App()
    a.start()
    _until(a, lambda: a.network.snapshot is not None and a.controller.dataset is not None, what="the example")
    yield a
    a.close()


def test_app_without_browser(app):
    ctl, net, insp = app.controller, app.network, app.inspector
    assert ctl.dataset.name == "kan_paper" and ctl.history[0].startswith("load")
    app.train.width.value = "2,3,1"
    app.train.steps.value = 8
    app.train._on_start()
    _until(app, lambda: len(ctl.history) >= 3 and not ctl.training, what="training")
    assert net.snapshot.dims == [2, 3, 1] and app.loss.source.data["step"].size > 0

    from kanstudio.ui.network_view import Selection

    net.select(Selection("edge", (0, 1, 2)))
    _until(app, lambda: len(insp._cands) > 0 and len(insp.sample_src.data["x"]) > 0, what="candidates")
    assert "Edge y \u2192 n1.2" in insp.title.object
    insp.table.selection = [1]
    assert len(insp.overlay_src.data["x"]) == 200
    name = insp._cands[1].name
    insp._on_snap()
    _until(app, lambda: net.snapshot.edge_symbolic[0][1][2] == name, what="snap")
    _until(app, lambda: ctl.formula is not None, what="formula")

    net.select(Selection("node", (1, 0)))
    assert app.inspector.node_box.visible
    insp._on_prune_node()
    _until(app, lambda: not net.snapshot.node_live[1][0], what="prune node")
    n = ctl.history_index
    app.history.keys.undo += 1  # what Ctrl+Z does in the page
    _until(app, lambda: ctl.history_index == n - 1 and net.snapshot.node_live[1][0], what="undo")
    app.history.keys.redo += 1
    _until(app, lambda: ctl.history_index == n, what="redo")

    # exports of the current formula
    _until(app, lambda: ctl.formula is not None and ctl.formula_status == "", what="formula")
    tex = app.formula._tex().getvalue()
    assert "\\begin{document}" in tex
    assert "def formula" in app.formula._py().getvalue()
    assert app.formula._json().getvalue().startswith("{")
    csv = app.formula._csv().getvalue()
    assert csv.splitlines()[0].startswith("x,y,f"), ctl.messages[-2:]
    assert len(app.formula._study().getvalue()) > 100

    # whole-network actions (a strict threshold: a fully symbolic network takes SymPy long to tidy)
    app.actions.r2_th.value = 0.9999
    app.actions._on_auto_symbolic()
    _until(app, lambda: not ctl.busy, what="auto-symbolic")
    assert any("Auto-symbolic" in text for _, text in ctl.messages)
    app.actions.refine_grid.value = 8
    app.actions._on_refine()
    _until(app, lambda: not ctl.busy and any("refine grid" in h for h in ctl.history), what="refine")
    assert ctl.settings.grid == 8


def test_bad_upload_keeps_data(app):
    ctl = app.controller
    ds = ctl.dataset
    app.data.dropper.value = {"broken.csv": "a,b\n1\n2,3,4\n"}
    _until(app, lambda: any(level == "error" for level, _ in ctl.messages) and not ctl.busy, what="error")
    assert ctl.study.dataset is ds and ctl.dataset is ds


def test_edits_are_refused_while_training(app):
    ctl = app.controller
    app.train.steps.value = 400
    app.train._on_start()
    _until(app, lambda: ctl.training, what="training")
    app.history.do_undo()
    assert any("stop training first" in text for _, text in ctl.messages)
    app.train._on_pause()
    _until(app, lambda: ctl.paused, what="pause")
    assert app.train.pause.label.endswith("Resume")
    app.train._on_pause()
    _until(app, lambda: not ctl.paused, what="resume")
    app.train._on_stop()
    _until(app, lambda: not ctl.training, what="stop")


def test_torch_threads_and_limits_are_configured():
    from kanstudio.core.study import max_concurrent_trainings
    from kanstudio.ui.app import configure
    from kanstudio.ui.controller import LIMITS

    before = torch.get_num_threads()
    try:
        configure(max_upload_mb=55, max_trainings=3, threads=1)
        assert torch.get_num_threads() == 1 and LIMITS["max_upload_mb"] == 55
        assert max_concurrent_trainings() == 3
    finally:
        configure(200, 4, before)


def test_study_file_roundtrip_through_the_page(app):
    ctl = app.controller
    app.train.width.value = "2,2,1"
    app.train.steps.value = 3
    app.train._on_start()
    _until(app, lambda: len(ctl.history) >= 3 and not ctl.training, what="training")
    raw = app.formula._study().getvalue()
    old = ctl.study
    labels = list(ctl.history)
    app.formula.study_drop.value = {"mine.kanstudio": raw}
    _until(app, lambda: ctl.study is not old and ctl.history == labels and not ctl.busy, what="the study file")
    assert app.network.snapshot.dims == [2, 2, 1]
    assert any("Opened study mine.kanstudio" in text for _, text in ctl.messages)
    # a damaged file: a message, the study stays
    cur = ctl.study
    app.formula.study_drop.value = {"bad.kanstudio": b"not a study"}
    _until(app, lambda: not ctl.busy and any(level == "error" for level, _ in ctl.messages), what="error")
    assert ctl.study is cur


def test_pareto_list(app):
    ctl = app.controller
    app.train.width.value = "2,2,1"
    app.train.steps.value = 3
    app.train._on_start()
    _until(app, lambda: len(ctl.history) >= 3 and not ctl.training, what="training")
    _until(app, lambda: ctl.formula is not None and ctl.formula_status == "", what="formula")
    # the UI's part only (the real pareto_front is the core's, and slow under SymPy): two formulas
    f = ctl.formula
    ctl.study.pareto = lambda: [f, f]
    ctl.compute_pareto()
    _until(app, lambda: ctl.pareto_status == "" or "unavailable" in ctl.pareto_status, timeout=120, what="pareto")
    assert len(ctl.pareto) == 2 and app.formula.pareto_table.value.shape[0] == 2
    app.formula.pareto_table.selection = [1]
    assert app.formula.back.visible and app.formula._shown is ctl.pareto[1]
    assert "Pareto formula 2 of 2" in app.formula.status.object
    app.formula._show_pareto(None)
    assert app.formula._shown is ctl.formula and not app.formula.back.visible
