"""Driving the studio in headless Chromium: a threaded server on a free port, a browser launched
offline-safe, and clicks in Bokeh data coordinates. Used by tests/browser and
benchmarks/browser.py (needs the ``playwright`` Python package and a Chromium binary)."""
from __future__ import annotations

import os
import shutil
import socket
import time
import urllib.request
from contextlib import contextmanager
from urllib.parse import urlparse

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def chromium_path() -> str | None:
    for p in (os.environ.get("KANSTUDIO_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
              shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if p and os.path.exists(p):
            return p
    return None


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@contextmanager
def running_server(data=None, target=None, study=None, max_upload_mb: int = 200, max_trainings: int = 4,
                   threads: int = 1, timeout: float = 60.0):
    """Serve the studio on a free port in a thread; yields the base URL. Sessions of closed tabs
    are cleaned up after ~3 s (never less: shorter creates duplicate sessions on page load)."""
    import panel as pn
    import torch

    from kanstudio.core.runs import max_concurrent_trainings
    from kanstudio.ui import app as ui_app
    from kanstudio.ui.controller import LIMITS

    saved = (LIMITS["max_upload_mb"], max_concurrent_trainings(), torch.get_num_threads())
    ui_app.configure(max_upload_mb, max_trainings, threads)
    port = free_port()
    thread = pn.serve(ui_app.app_factory(data, target, study), threaded=True,
                      **ui_app.server_kwargs(port, "127.0.0.1", False, max_upload_mb,
                                             check_unused_sessions_milliseconds=1000,
                                             unused_session_lifetime_milliseconds=3000))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/liveness", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            thread.stop()
            raise RuntimeError(f"the studio did not come up on {url} within {timeout:g} s")
        time.sleep(0.1)
    try:
        yield url
    finally:
        thread.stop()
        ui_app.configure(*saved)


def launch(playwright):
    path = chromium_path()
    kw = {"executable_path": path} if path else {}
    return playwright.chromium.launch(headless=True, args=CHROMIUM_ARGS, **kw)


def is_local(url: str) -> bool:
    if url.startswith(("data:", "blob:", "about:")):
        return True
    return (urlparse(url).hostname or "") in LOCAL_HOSTS


def open_app(browser, url: str, viewport=(1600, 1200), timeout_ms: int = 60_000):
    """A new page on the app, ready (websocket open, network drawn). Returns (page, external)
    where ``external`` collects every request to a host other than ours."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True)
    external: list[str] = []
    page.on("request", lambda r: None if is_local(r.url) else external.append(r.url))
    opened = []
    page.on("console", lambda m: opened.append(1) if "Websocket connection 0 is now open" in m.text else None)
    page.goto(url + "/", timeout=timeout_ms)
    page.wait_for_function("() => window.Bokeh !== undefined && Bokeh.documents.length > 0", timeout=timeout_ms)
    page.locator("text=Click an edge of the network").wait_for(timeout=timeout_ms)
    return page, external


def latest_app(since: float | None = None, timeout: float = 30.0):
    """The App object of the newest session created after ``since`` (time.monotonic()), server
    side, once it shows a network."""
    from kanstudio.ui.app import APPS

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        apps = [a for a in list(APPS) if since is None or a.created >= since]
        if apps:
            app = max(apps, key=lambda a: a.created)
            if app.network.snapshot is not None:
                return app
        time.sleep(0.05)
    raise TimeoutError("no app session with a network appeared")


_TO_SCREEN = """([id, x, y]) => {
  const v = Bokeh.index.find_one_by_id(id);
  if (!v) return null;
  const r = v.canvas_view.el.getBoundingClientRect();
  return [r.left + v.frame.x_scale.compute(x), r.top + v.frame.y_scale.compute(y)];
}"""


def to_screen(page, fig, x: float, y: float):
    page.wait_for_function("(id) => Bokeh.index.find_one_by_id(id) != null", arg=fig.id)
    return page.evaluate(_TO_SCREEN, [fig.id, float(x), float(y)])


def click_data(page, fig, x: float, y: float) -> None:
    """Click a Bokeh figure at data coordinates (x, y)."""
    sx, sy = to_screen(page, fig, x, y)
    page.mouse.click(sx, sy)


def edge_point(app, key) -> tuple[float, float]:
    """The centre of an edge's mini-plot box (data coordinates) as currently drawn."""
    nv = app.network
    k = nv.edge_index(key)
    if k is None:
        raise KeyError(f"edge {key} is not drawn")
    d = nv.edges.data
    return (float(d["left"][k]) + float(d["right"][k])) / 2, (float(d["bottom"][k]) + float(d["top"][k])) / 2


def node_point(app, key) -> tuple[float, float]:
    nv = app.network
    k = nv.node_index(key)
    if k is None:
        raise KeyError(f"node {key} is not drawn")
    d = nv.nodes.data
    return float(d["x"][k]), float(d["y"][k])


def wait_until(pred, timeout: float = 30.0, page=None, interval_ms: int = 50, what: str = "condition"):
    """Poll a Python predicate (use page.wait_for_timeout so page events keep flowing)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        if page is not None:
            page.wait_for_timeout(interval_ms)
        else:
            time.sleep(interval_ms / 1000)


def bokeh_model(viewable):
    """The Bokeh model a Panel pane/widget renders to in this (single-root) session."""
    models = list(getattr(viewable, "_models", {}).values())
    if not models:
        raise LookupError(f"{viewable!r} is not rendered")
    return models[-1][0]


# In-page timing: epoch milliseconds (performance.timeOrigin + now), comparable with Python's
# time.time() * 1000 on the same machine. For each hooked model property, ``drawn`` gets
# [t_after_next_frame, value, t_change] (value: the text, or a source's row count); pointerdown
# events go to ``clicks``. No polling is involved in what is measured.
TIMING_JS = """([ids]) => {
  window.__ks = window.__ks || {clicks: [], changes: {}};
  const now = () => performance.timeOrigin + performance.now();
  if (!window.__ks_click) {
    window.__ks_click = true;
    document.addEventListener('pointerdown', (e) => window.__ks.clicks.push(performance.timeOrigin + e.timeStamp), true);
  }
  const doc = Bokeh.documents[0];
  for (const [key, id, prop] of ids) {
    const m = doc.get_model_by_id(id);
    if (!m || (window.__ks.changes[key] && window.__ks.changes[key].hooked)) continue;
    const rec = window.__ks.changes[key] = {hooked: true, seen: [], drawn: []};
    m.properties[prop].change.connect(() => {
      const val = prop === 'data' ? m.get_length() : String(m[prop]).slice(0, 400);
      const t = now();
      rec.seen.push([t, val]);
      requestAnimationFrame(() => setTimeout(() => rec.drawn.push([now(), val, t]), 0));
    });
  }
}"""


def install_timing(page, hooks: list[tuple[str, str, str]]) -> None:
    """``hooks``: (key, model id, property) to time; see ``TIMING_JS``."""
    page.evaluate(TIMING_JS, [[list(h) for h in hooks]])


def timing(page) -> dict:
    return page.evaluate("() => window.__ks")
