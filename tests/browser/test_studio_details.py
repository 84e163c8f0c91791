"""Issue #13's smaller items, each as a scientist meets it in the browser: a second upload, what
new data clears, undo and the loss curve, a width for other inputs, a ragged CSV, a no-op
auto-prune, Stop from pause, the refit of a snapped network, and a 900 px window."""
from __future__ import annotations

import re

import numpy as np
import pytest

from kanstudio.ui import browser_harness as H

pytestmark = pytest.mark.browser


def _settle(page, ms=350):
    page.wait_for_timeout(ms)


def _idle(app, page, timeout=90):
    ctl = app.controller
    H.wait_until(lambda: not ctl.training and not ctl.busy and ctl.version == ctl.study.version,
                 timeout=timeout, page=page, what="the studio to be idle")


def _ready(app, page):
    ctl = app.controller
    H.wait_until(lambda: ctl.dataset is not None and app.network.snapshot is not None, timeout=60, page=page,
                 what="the example")


def _csv(path, cols, n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, len(cols) - 1))
    y = np.sin(X).sum(1)
    path.write_text(",".join(cols) + "\n" + "\n".join(",".join(f"{v:.6f}" for v in (*row, t))
                                                     for row, t in zip(X, y)) + "\n")
    return path


def _set(page, label, value):
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    _settle(page)


def _train(app, page, steps):
    ctl = app.controller
    _set(page, "Steps", steps)
    n = len(ctl.history)
    page.get_by_role("button", name=re.compile("Start")).click()
    H.wait_until(lambda: len(ctl.history) > n, timeout=120, page=page, what="the training to be recorded")
    _idle(app, page)


def _upload(page, path):
    page.locator('input[type="file"]').first.set_input_files(str(path))


def test_uploads_one_after_another_and_new_data_clears_the_old_run(open_page, tmp_path):
    page, app = open_page()
    ctl, net = app.controller, app.network
    _ready(app, page)
    _train(app, page, 4)
    assert len(app.loss.source.data["step"]) >= 2
    H.click_data(page, net.figure, *H.edge_point(app, (0, 0, 0)))
    H.wait_until(lambda: net.selection is not None, page=page, what="an edge selection")

    a = _csv(tmp_path / "first.csv", ["p", "q", "out"])
    b = _csv(tmp_path / "second.csv", ["u", "v", "w"], seed=1)
    for path, n_loads in ((a, 1), (b, 2), (a, 3)):  # the same file again, too
        before = ctl.data_version
        _upload(page, path)
        H.wait_until(lambda: ctl.data_version > before and ctl.dataset.name == path.stem, timeout=60, page=page,
                     what=f"upload {n_loads} ({path.name})")
        _idle(app, page)
        # the drop zone is ready for the next file: Browse shows, no leftover items
        page.locator(".filepond--label-action").first.wait_for(state="visible", timeout=10_000)
        assert page.get_by_text("Upload cancelled").count() == 0
        assert page.locator(".filepond--item").count() == 0
    assert list(ctl.dataset.inputs) == ["p", "q"]
    # the old run is gone from the screen: loss curve, status line, edge selection
    assert len(app.loss.source.data["step"]) == 0 and ctl.events == []
    assert net.selection is None
    page.get_by_text("Ready to train.").wait_for()
    assert not any(level == "error" for level, _ in ctl.messages), ctl.messages


def test_undo_and_redo_move_the_loss_curve_with_the_model(open_page):
    page, app = open_page()
    ctl = app.controller
    _ready(app, page)
    steps = lambda: [float(v) for v in app.loss.source.data["step"]]  # noqa: E731
    _train(app, page, 4)
    first = steps()
    _train(app, page, 9)
    second = steps()
    # progress events are sampled, so the curves are told apart by their last step
    assert len(first) >= 2 and first[-1] == 4 and second[-1] == 9, (first, second)
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("Control+z")
    H.wait_until(lambda: steps() == first, page=page, what="the first run's curve")
    page.keyboard.press("Control+z")  # back to the untrained network: no curve
    H.wait_until(lambda: steps() == [], page=page, what="no curve")
    # two quick presses: Python may see them as one change of the counter, each still counts
    page.keyboard.press("Control+Shift+z")
    page.keyboard.press("Control+Shift+z")
    H.wait_until(lambda: steps() == second, page=page,
                 what=f"the second run's curve ({second}; now {steps()}, "
                      f"history {ctl.history_index}/{len(ctl.history)}, messages {ctl.messages[-4:]})")
    assert ctl.history_index == len(ctl.history)


def test_a_width_for_two_inputs_adapts_to_three_with_one_message(open_page, tmp_path):
    page, app = open_page()
    ctl = app.controller
    _ready(app, page)
    page.get_by_label("Width").fill("2,3,1")
    page.get_by_label("Width").press("Enter")
    _settle(page)
    page.get_by_role("button", name="New network").click()
    H.wait_until(lambda: app.network.snapshot.dims == [2, 3, 1], page=page, what="a [2,3,1] network")
    _idle(app, page)
    n_msgs = len(ctl.messages)
    _upload(page, _csv(tmp_path / "three.csv", ["a", "b", "c", "y"]))
    H.wait_until(lambda: ctl.dataset.name == "three", timeout=60, page=page, what="the 3-input data")
    _idle(app, page)
    H.wait_until(lambda: app.network.snapshot.dims == [3, 3, 1], page=page, what="a [3,3,1] network")
    new = ctl.messages[n_msgs:]
    about_width = [t for _, t in new if "width" in t.lower()]
    assert len(about_width) == 1 and "3,3,1" in about_width[0], new
    assert not any(level == "error" for level, _ in new), new
    assert page.get_by_label("Width").input_value().replace(" ", "") == "3,3,1"


def test_a_ragged_csv_names_its_first_short_line(open_page, tmp_path):
    page, app = open_page()
    ctl = app.controller
    _ready(app, page)
    rows = ["x,y,z"] + [f"{i / 10},{i / 5},{i}" for i in range(40)]
    rows[7] = "0.6,1.2"  # line 8 of the file lacks its last value
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join(rows) + "\n")
    _upload(page, path)
    H.wait_until(lambda: ctl.dataset.name == "ragged", timeout=60, page=page, what="the ragged data")
    page.get_by_text(re.compile(r"Line 8 has 2 value\(s\) but the header has 3 columns")).first.wait_for()


def test_an_auto_prune_that_removes_nothing_says_so_once(open_page):
    page, app = open_page()
    ctl = app.controller
    _ready(app, page)
    _train(app, page, 3)
    _set(page, "Node threshold \u03b8", 0)
    n_msgs, n_hist = len(ctl.messages), len(ctl.history)
    page.get_by_role("button", name="Clear", exact=True).click()  # only what the auto-prune says is on screen
    H.wait_until(lambda: ctl.messages == [], page=page, what="cleared messages")
    page.get_by_role("button", name="Auto-prune").click()
    H.wait_until(lambda: len(ctl.messages) > 0, page=page, what="a message")
    _idle(app, page)
    page.wait_for_timeout(800)  # a second (duplicate) report would have arrived by now
    new = list(ctl.messages)
    assert len(new) == 1 and new[0][0] == "info" and "nothing" in new[0][1], new
    assert page.locator(".ks-msg").count() == 1 and page.locator(".ks-success").count() == 0
    assert len(ctl.history) == n_hist  # nothing was recorded either


def test_stop_from_pause_runs_no_step_past_the_one_shown(open_page):
    page, app = open_page()
    ctl = app.controller
    _ready(app, page)
    _set(page, "Steps", 400)
    page.get_by_role("button", name=re.compile("Start")).click()
    H.wait_until(lambda: ctl.events and ctl.events[-1].step >= 3, timeout=60, page=page, what="a few steps")
    page.get_by_role("button", name=re.compile("Pause")).click()
    H.wait_until(lambda: ctl.paused, page=page, what="the pause")
    page.wait_for_timeout(700)
    shown = ctl.events[-1].step
    page.get_by_text(re.compile(rf"Paused . step {shown}/400")).first.wait_for()
    page.get_by_role("button", name="\u25a0 Stop", exact=True).click()
    _idle(app, page)
    assert ctl.events[-1].kind == "stopped" and ctl.events[-1].step == shown, ctl.events[-3:]
    page.get_by_text(re.compile(rf"Stopped . step {shown}/400")).first.wait_for()


def test_refit_of_a_snapped_network_shows_steps_from_the_first(open_page):
    page, app = open_page()
    ctl = app.controller
    _ready(app, page)
    page.get_by_label("Width").fill("2,1,1")
    page.get_by_label("Width").press("Enter")
    _settle(page)
    _train(app, page, 40)
    page.get_by_role("button", name="Auto-symbolic").click()
    H.wait_until(lambda: "auto-symbolic" in ctl.history[-1], timeout=60, page=page, what="auto-symbolic")
    _idle(app, page)
    assert sum(f is not None for layer in app.network.snapshot.edge_symbolic for row in layer for f in row) >= 2
    page.wait_for_timeout(1500)  # the formula of the snapped network has been drawn
    _set(page, "Refit steps", 50)
    page.get_by_role("button", name="Refit", exact=True).click()
    t0 = page.evaluate("performance.now()")
    # the step count moves while the refit runs (no long "Starting" with a flat curve)
    page.get_by_text(re.compile(r"Training . step [1-9]\d*/50")).first.wait_for(timeout=10_000)
    page.get_by_text(re.compile(r"Done . step 50/50")).first.wait_for(timeout=30_000)
    took = (page.evaluate("performance.now()") - t0) / 1000
    # the target is <= 2 s (benchmarks/browser.py); this bound catches the 47 s the issue saw
    assert took < 10, f"the refit took {took:.1f} s"
    assert ctl.history[-1].lower().startswith("train") or "refit" in ctl.history[-1].lower(), ctl.history[-1]


def _card(page, title):
    return page.locator(".card").filter(has=page.locator(f".card-header >> text='{title}'")).first


def test_a_900px_window_keeps_every_card_usable(open_page):
    page, app = open_page(viewport=(900, 800))
    ctl, net, insp = app.controller, app.network, app.inspector
    _ready(app, page)
    page.wait_for_timeout(1000)
    box = _card(page, "Network").bounding_box()
    assert box["width"] > 300 and box["height"] > 300, box
    ibox = _card(page, "Inspector").bounding_box()
    assert ibox["width"] > 300, ibox
    _train(app, page, 5)
    H.click_data(page, net.figure, *H.edge_point(app, (0, 0, 0)))
    H.wait_until(lambda: len(insp._cands) > 0, page=page, what="candidates")
    page.locator('.tabulator-cell[tabulator-field="function"]').first.wait_for()
    page.wait_for_timeout(500)
    # no candidate cell cuts its text: the table sizes columns to their content, and scrolls sideways
    clipped = page.evaluate("""() => [...document.querySelectorAll('.tabulator-cell')]
        .filter(c => c.offsetParent !== null && c.scrollWidth > c.clientWidth + 1).map(c => c.textContent)""")
    assert clipped == [], clipped[:5]
    # a long formula scrolls inside its card instead of being cut off
    formula = page.locator("mjx-container").first
    formula.wait_for(timeout=30_000)
    # (Panel renders each pane in a shadow root: climb through the hosts too)
    overflow = formula.evaluate("""el => { for (let p = el; p; p = p.parentElement || p.getRootNode().host) {
        const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll') return o; } return null; }""")
    assert overflow in ("auto", "scroll"), overflow
    assert not any(level == "error" for level, _ in ctl.messages), ctl.messages
