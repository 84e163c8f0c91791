"""End-to-end: the studio in headless Chromium, driven like a scientist would.

Server-side state is read through the session's App object (``kanstudio.ui.app.APPS``);
everything the user does goes through the page (clicks, keys, file inputs, downloads).
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from kanstudio.ui import browser_harness as H

pytestmark = pytest.mark.browser


def _settle(page, ms=350):
    # Bokeh swallows a second click within ~300 ms (double tap): pause between clicks.
    page.wait_for_timeout(ms)


def _idle(app, page, timeout=60):
    ctl = app.controller
    H.wait_until(lambda: not ctl.training and not ctl.busy and ctl.version == ctl.study.version,
                 timeout=timeout, page=page, what="the studio to be idle")


def _formula(app, page, timeout=60):
    ctl = app.controller
    # the formula of the study's current version (not the one shown before the last edit)
    H.wait_until(lambda: ctl.formula is not None and ctl.formula_status == ""
                 and ctl._formula_version == ctl.version == ctl.study.version, timeout=timeout, page=page,
                 what="a formula")
    return ctl.formula


def _write_csv(path, n=400, seed=3):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, n)
    b = rng.uniform(-1, 1, n)
    y = np.sin(2 * a) + b ** 2
    lines = ["alpha,beta,signal"] + [f"{x:.6f},{z:.6f},{v:.6f}" for x, z, v in zip(a, b, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_scientist_flow(open_page, shots, tmp_path):
    page, app = open_page()
    ctl, net, insp = app.controller, app.network, app.inspector
    assert ctl.dataset.name == "kan_paper"  # opens on the built-in example
    page.screenshot(path=str(shots / "01_open.png"))

    # ---- upload a CSV through the FileDropper's file input
    csv = _write_csv(tmp_path / "sine_square.csv")
    page.locator('input[type="file"]').first.set_input_files(str(csv))
    H.wait_until(lambda: ctl.dataset is not None and ctl.dataset.name == "sine_square", timeout=60, page=page,
                 what="the uploaded data")
    page.get_by_text("sine_square", exact=False).first.wait_for()
    assert list(ctl.dataset.inputs) == ["alpha", "beta"] and ctl.dataset.target == "signal"
    H.wait_until(lambda: net.snapshot is not None and net.snapshot.node_labels[0] == ["alpha", "beta"],
                 page=page, what="the network for the new data")

    # ---- train (a small network, few steps) and watch the loss fall
    page.get_by_label("Width").fill("2,3,1")
    steps = page.get_by_label("Steps", exact=True)
    steps.fill("25")
    steps.press("Enter")
    _settle(page)
    page.get_by_role("button", name=re.compile("Start")).click()
    H.wait_until(lambda: ctl.training, page=page, what="training to start")
    page.locator("text=Training").first.wait_for()
    _idle(app, page, timeout=120)
    losses = [e.train_loss for e in ctl.events if e.kind == "progress" and np.isfinite(e.train_loss)]
    assert len(losses) >= 2 and losses[-1] < losses[0], losses
    assert len(app.loss.source.data["step"]) >= 2
    assert net.snapshot.dims == [2, 3, 1]
    page.get_by_text(re.compile(r"Done . step 25/25")).wait_for()
    page.screenshot(path=str(shots / "02_trained.png"))

    # ---- click an edge: it is selected, the inspector shows it with ranked candidates
    key = (0, 0, 1)
    H.click_data(page, net.figure, *H.edge_point(app, key))
    page.locator("b", has_text="Edge alpha \u2192 n1.1").wait_for()
    assert net.selection is not None and net.selection.key == key
    H.wait_until(lambda: len(insp._cands) > 0 and insp._cand_key[1] == key, page=page, what="candidates")
    first = insp._cands[0].name
    page.locator('.tabulator-cell[tabulator-field="function"]', has_text=re.compile(f"^{re.escape(first)}$")).first.wait_for()
    assert len(app.inspector.sample_src.data["x"]) > 0 or H.wait_until(
        lambda: len(app.inspector.sample_src.data["x"]) > 0, page=page, what="data samples")

    # choose the second-ranked candidate: its curve is overlaid before committing
    pick = insp._cands[1]
    page.locator('.tabulator-cell[tabulator-field="function"]', has_text=re.compile(f"^{re.escape(pick.name)}$")).first.click()
    H.wait_until(lambda: len(insp.overlay_src.data["x"]) > 0, page=page, what="the candidate overlay")
    page.screenshot(path=str(shots / "03_candidates.png"))
    f_before = _formula(app, page)

    page.get_by_role("button", name="Snap", exact=True).click()
    H.wait_until(lambda: net.snapshot.edge_symbolic[0][0][1] == pick.name, page=page, what="the snap")
    page.locator("text=snapped to").first.wait_for()
    f_snapped = _formula(app, page)
    assert f_snapped is not f_before

    # ---- prune a hidden node
    _settle(page)
    H.click_data(page, net.figure, *H.node_point(app, (1, 2)))
    page.locator("b", has_text="Node n1.2").wait_for()
    page.get_by_role("button", name="Prune node").click()
    H.wait_until(lambda: not bool(net.snapshot.node_live[1][2]), page=page, what="the node to be pruned")
    _idle(app, page)
    f_pruned = _formula(app, page)
    assert f_pruned.sympy_str() != f_before.sympy_str()
    assert f_pruned.n_edges < f_before.n_edges
    page.screenshot(path=str(shots / "04_snapped_pruned.png"))

    # ---- the formula shows in the page and downloads as a .tex document
    page.locator("mjx-container").first.wait_for(timeout=30_000)
    with page.expect_download() as dl:
        page.get_by_role("button", name="LaTeX (.tex)").click()
    tex = open(dl.value.path(), encoding="utf-8").read()
    assert "\\begin{document}" in tex and "signal" in tex
    assert dl.value.suggested_filename.endswith(".tex")

    # ---- undo with Ctrl+Z: the pruned node comes back, the network view follows
    n_applied = ctl.history_index
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("Control+z")
    H.wait_until(lambda: ctl.history_index == n_applied - 1, page=page, what="undo")
    H.wait_until(lambda: bool(net.snapshot.node_live[1][2]), page=page, what="the node to come back")
    page.keyboard.press("Control+Shift+z")
    H.wait_until(lambda: ctl.history_index == n_applied and not bool(net.snapshot.node_live[1][2]), page=page,
                 what="redo")
    page.screenshot(path=str(shots / "05_after_undo_redo.png"))


def test_sessions_are_independent(open_page):
    page_a, app_a = open_page()
    page_b, app_b = open_page()
    assert app_a is not app_b and app_a.controller.study is not app_b.controller.study
    a, b = app_a.controller, app_b.controller
    # A trains a few steps and snaps an edge; B must not notice
    steps = page_a.get_by_label("Steps", exact=True)
    steps.fill("3")
    steps.press("Enter")
    _settle(page_a)
    page_a.get_by_role("button", name=re.compile("Start")).click()
    H.wait_until(lambda: len(a.history) == 2, timeout=60, page=page_a, what="A's training to be recorded")
    _idle(app_a, page_a)
    a.study.snap(0, 0, 0)
    H.wait_until(lambda: len(a.history) == 3, page=page_a, what="A's snap")
    page_b.wait_for_timeout(600)
    assert len(b.history) == 1 and b.events == [] and not b.training
    assert b.snapshot.edge_symbolic[0][0][0] is None and a.snapshot.edge_symbolic[0][0][0] is not None
    page_b.get_by_text("Ready to train.").wait_for()
    page_a.get_by_text(re.compile(r"Done . step 3/3")).wait_for()

    # closing a tab ends its session: the Study is closed (training stopped), the other lives on
    page_b.close()
    H.wait_until(lambda: app_b.controller.closed, timeout=30, page=page_a, interval_ms=200,
                 what="the closed tab's session to end")
    assert not app_a.controller.closed


def test_bad_csv_keeps_previous_data(open_page, tmp_path, shots):
    page, app = open_page()
    ctl = app.controller
    ds = ctl.dataset
    bad = tmp_path / "broken.csv"
    bad.write_text("a,b,c\n1,2\n3,4,5,6\nx,y\n")
    page.locator('input[type="file"]').first.set_input_files(str(bad))
    H.wait_until(lambda: any(level == "error" for level, _ in ctl.messages), timeout=60, page=page,
                 what="an error message")
    page.locator(".ks-error").first.wait_for()
    assert ctl.dataset is ds and ctl.study.dataset is ds
    assert app.network.snapshot is not None
    page.screenshot(path=str(shots / "06_bad_csv.png"))
