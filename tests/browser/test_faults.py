"""Faults and limits in the browser: many sessions at once, the concurrent-training cap, opening a
study file (good and corrupt), and a tab closed while it trains.

Like test_studio.py, the user acts through the page; server-side state is read through each
session's App (``kanstudio.ui.app.APPS``) and the Bokeh server's own session list.
"""
from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest

from kanstudio.ui import browser_harness as H

pytestmark = pytest.mark.browser

TRAIN_THREAD = "kanstudio-train"


def _settle(page, ms=350):
    page.wait_for_timeout(ms)


def _bokeh_server(url: str):
    """The Bokeh server behind ``url`` (the harness's threaded pn.serve on that port)."""
    import panel as pn

    port = int(url.rsplit(":", 1)[1])
    for server, *_ in list(pn.state._servers.values()):
        if getattr(server, "port", None) == port:
            return server
    raise LookupError(f"no server on port {port}")


def _session_ids(url: str) -> set[str]:
    return {s.id for s in _bokeh_server(url).get_sessions("/")}


def _session_id(app) -> str:
    return app.controller.doc.session_context.id


def _train_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == TRAIN_THREAD}


def _no_training_anywhere(page=None, timeout=30):
    """Sessions of earlier tests stop their training when their tabs close: wait for that."""
    from kanstudio.core.study import active_trainings

    H.wait_until(lambda: active_trainings() == 0, timeout=timeout, page=page, interval_ms=100,
                 what="earlier training runs to end")


def _set_steps(page, n: int) -> None:
    steps = page.get_by_label("Steps", exact=True)
    steps.fill(str(n))
    steps.press("Enter")
    _settle(page)


def _start(page) -> None:
    page.get_by_role("button", name=re.compile("Start")).click()


def _events(ctl) -> int:
    return len(ctl.study.loss_history)


# --------------------------------------------------------------------------- 10 sessions at once

N_SESSIONS = 10


def _open_in(context, url: str):
    """Like ``H.open_app`` but in a shared browser context (its pages share the HTTP and code
    caches: less browser work per page; every page load is still its own server session), and
    returning once the session is up: the caller waits for the drawing (see ``_drawn``)."""
    since = time.monotonic()
    page = context.new_page()
    page.goto(url + "/", timeout=60_000)
    page.wait_for_function("() => window.Bokeh !== undefined && Bokeh.documents.length > 0", timeout=60_000)
    return page, H.latest_app(since)


def _drawn(page) -> None:
    # A background tab of a shared context gets no animation frames: Bokeh's drawing and
    # Playwright's "stable" check (clicks wait ~1-2 s) stall there. Bring it to the front first.
    page.bring_to_front()
    page.locator("text=Click an edge of the network").wait_for(timeout=60_000)


def test_ten_sessions_stay_isolated_and_are_cleaned_up(browser, studio_url):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    external: list[str] = []
    context.on("request", lambda r: None if H.is_local(r.url) else external.append(r.url))
    try:
        _ten_sessions(context, studio_url)
    finally:
        context.close()
    assert external == [], f"the pages requested other hosts: {external[:5]}"


def _ten_sessions(context, studio_url):
    t0 = time.monotonic()
    opened = [_open_in(context, studio_url) for _ in range(N_SESSIONS)]
    t_open = time.monotonic() - t0
    pages = [p for p, _ in opened]
    apps = [a for _, a in opened]

    # server side: one App, one Study, one Bokeh session per page
    assert len({id(a) for a in apps}) == N_SESSIONS
    assert len({id(a.controller.study) for a in apps}) == N_SESSIONS
    sids = [_session_id(a) for a in apps]
    assert len(set(sids)) == N_SESSIONS and set(sids) <= _session_ids(studio_url)

    # each page builds its own network: hidden width k+1 and seed k, through its own widgets
    labels = []
    for k, page in enumerate(pages):
        _drawn(page)
        page.get_by_label("Width").fill(f"2,{k + 1},1")
        seed = page.get_by_label("Seed")
        seed.fill(str(k))
        seed.press("Enter")
        page.get_by_role("button", name="New network").click()
        labels.append(f"new model [2,{k + 1},1] grid 5, k 3, seed {k}")
    t_edit = time.monotonic() - t0

    for k, (page, app) in enumerate(zip(pages, apps)):
        ctl = app.controller
        page.bring_to_front()
        H.wait_until(lambda: ctl.history[-1:] == [labels[k]] and ctl.version == ctl.study.version,
                     timeout=60, page=page, interval_ms=100, what=f"session {k}'s new network")
        # the page shows its own edit, and only its own
        own = page.locator("li", has_text="new model [")
        own.first.wait_for()
        assert own.count() == 1 and own.first.inner_text().strip() == labels[k]
        H.wait_until(lambda: app.network.snapshot is not None and app.network.snapshot.dims == [2, k + 1, 1],
                     timeout=30, page=page, what=f"session {k}'s network view")
    for k, app in enumerate(apps):
        st = app.controller.study
        assert st.model.width_str == f"2,{k + 1},1" and st.settings.seed == k
        assert st.history_labels == apps[0].controller.study.history_labels[:-1] + [labels[k]]
        assert not st.training

    # closing the tabs ends the sessions: Bokeh drops them, each App closes its Study and workers
    t1 = time.monotonic()
    for page in pages:
        page.close()
    H.wait_until(lambda: all(a.controller.closed for a in apps), timeout=30, interval_ms=200,
                 what="the closed tabs' sessions to be destroyed")
    H.wait_until(lambda: not (set(sids) & _session_ids(studio_url)), timeout=15, interval_ms=200,
                 what="Bokeh to drop the sessions")
    H.wait_until(lambda: all(not p._thread.is_alive() for a in apps for p in a.controller._pools.values()),
                 timeout=30, interval_ms=100, what="the sessions' worker threads to end")
    print(f"\n{N_SESSIONS} sessions: up after {t_open:.1f} s, drawn and edited after {t_edit:.1f} s, "
          f"cleaned up {time.monotonic() - t1:.1f} s after closing")


# --------------------------------------------------------------------------- the training cap

def test_training_cap_refuses_second_session_with_a_message(open_page):
    from kanstudio.core.study import active_trainings, max_concurrent_trainings, set_max_concurrent_trainings

    page_a, app_a = open_page()
    page_b, app_b = open_page()
    a, b = app_a.controller, app_b.controller
    _no_training_anywhere(page_a)
    saved = max_concurrent_trainings()
    set_max_concurrent_trainings(1)
    try:
        _set_steps(page_a, 100_000)
        _start(page_a)
        H.wait_until(lambda: a.training and _events(a) >= 2, timeout=60, page=page_a, what="A to be training")
        page_a.get_by_text(re.compile(r"Training . step")).first.wait_for()
        assert active_trainings() == 1

        _set_steps(page_b, 3)
        _start(page_b)
        page_b.locator(".ks-error", has_text="the limit is 1").first.wait_for(timeout=30_000)
        errors = [t for level, t in b.messages if level == "error"]
        assert errors and errors[-1].startswith("Start training: ") and "already going" in errors[-1], errors
        assert "wait for one to finish and try again" in errors[-1]
        assert not b.training and not b.study.training and len(b.history) == 1
        page_b.get_by_text("Ready to train.").wait_for()
        assert not any(level == "error" for level, _ in a.messages)

        # A is not disturbed: still training, still making progress
        n = _events(a)
        H.wait_until(lambda: _events(a) >= n + 2, timeout=30, page=page_a, what="A to keep training")
        assert a.training and a.study.training

        page_a.get_by_role("button", name=re.compile(r"^\W*Stop$")).click()
        H.wait_until(lambda: not a.training and not a.study.training, timeout=30, page=page_a,
                     what="A to stop")
        page_a.get_by_text(re.compile(r"Stopped . step")).first.wait_for()
        assert active_trainings() == 0

        # the slot is free again: B can train now
        _start(page_b)
        H.wait_until(lambda: len(b.history) == 2 and not b.training, timeout=60, page=page_b,
                     what="B's training after A stopped")
        page_b.get_by_text(re.compile(r"Done . step 3/3")).wait_for()
    finally:
        for ctl in (a, b):
            ctl.study.stop_training(wait=True)
        set_max_concurrent_trainings(saved)


# --------------------------------------------------------------------------- kanstudio serve --study

def _orbit_csv(path, n=240, seed=5):
    rng = np.random.default_rng(seed)
    r = rng.uniform(0.5, 2.0, n)
    m = rng.uniform(0.5, 2.0, n)
    p = r ** 1.5 / np.sqrt(m)
    path.write_text("radius,mass,period\n" + "".join(f"{x:.6f},{y:.6f},{z:.6f}\n" for x, y, z in zip(r, m, p)))
    return path


def test_serve_study_file_and_corrupt_study_file(browser, tmp_path):
    from kanstudio.core.data import load_csv
    from kanstudio.core.study import Settings, Study
    from kanstudio.ui.app import serve

    study = Study(load_csv(_orbit_csv(tmp_path / "orbit.csv")), Settings(width="2,3,1", seed=7), name="orbit study")
    study.train(4)
    study.prune_edge(0, 1, 2)
    labels = list(study.history_labels)
    assert len(labels) == 2
    path = tmp_path / "orbit.kanstudio"
    study.save(path)
    good = path.read_bytes()

    with pytest.raises(SystemExit, match="does not exist"):  # `kanstudio serve --study missing`
        serve(study=str(tmp_path / "missing.kanstudio"))

    pages = []
    try:
        with H.running_server(study=str(path)) as url:
            since = time.monotonic()
            page, external = H.open_app(browser, url)
            pages.append((page, external))
            app = H.latest_app(since)
            ctl = app.controller
            H.wait_until(lambda: ctl.history == labels and ctl.version == ctl.study.version, timeout=30,
                         page=page, what="the study file's history")
            assert ctl.dataset.name == "orbit" and list(ctl.dataset.inputs) == ["radius", "mass"]
            assert app.network.snapshot.dims == [2, 3, 1]
            assert not app.network.snapshot.edge_live[0][1][2]  # the pruned edge came with the file
            assert not any(level == "error" for level, _ in ctl.messages), ctl.messages
            # the page shows the file's data and its history, not the example
            page.locator("b", has_text=re.compile("^orbit$")).first.wait_for()
            page.get_by_text("radius, mass \u2192").first.wait_for()
            for label in labels:
                page.locator("li", has_text=label).first.wait_for()
            assert page.locator("b", has_text=re.compile("^kan_paper$")).count() == 0

            # the file is now corrupt (truncated): a new session says so and opens on the example
            path.write_bytes(good[: len(good) // 2])
            since = time.monotonic()
            page2, external2 = H.open_app(browser, url)
            pages.append((page2, external2))
            app2 = H.latest_app(since)
            ctl2 = app2.controller
            err = page2.locator(".ks-error", has_text="Could not open the study file").first
            err.wait_for(timeout=30_000)
            assert str(path) in err.inner_text()
            H.wait_until(lambda: ctl2.dataset is not None and ctl2.dataset.name == "kan_paper", timeout=30,
                         page=page2, what="the example data")
            page2.locator("b", has_text=re.compile("^kan_paper$")).first.wait_for()
            assert ctl2.study is not ctl.study and app2.network.snapshot is not None
            # the first session is untouched
            assert ctl.history == labels and ctl.dataset.name == "orbit" and not ctl.closed
    finally:
        for page, external in pages:
            page.close()
            assert external == [], external[:5]


# --------------------------------------------------------------------------- tab closed while training

def test_closing_a_tab_while_training_stops_its_thread(open_page, studio_url):
    from kanstudio.core.study import active_trainings

    page, app = open_page()
    ctl = app.controller
    _no_training_anywhere(page)
    before = _train_threads()
    _set_steps(page, 100_000)
    _start(page)
    H.wait_until(lambda: ctl.training and _events(ctl) >= 2, timeout=60, page=page, what="training to run")
    mine = _train_threads() - before
    assert len(mine) == 1, mine
    thread = mine.pop()
    assert thread.is_alive() and active_trainings() == 1
    sid = _session_id(app)

    page.close()
    t_close = time.monotonic()
    H.wait_until(lambda: ctl.closed, timeout=30, interval_ms=100, what="the session to be destroyed")
    H.wait_until(lambda: not thread.is_alive(), timeout=30, interval_ms=100, what="the training thread to end")
    assert thread not in threading.enumerate() and thread not in _train_threads()
    assert not ctl.study.training and active_trainings() == 0
    assert sid not in _session_ids(studio_url)
    res = ctl.study.wait_training(timeout=5)
    assert res is not None and res.status == "stopped" and 0 < res.steps < 100_000
    print(f"\ntraining thread gone {time.monotonic() - t_close:.1f} s after the tab closed")
