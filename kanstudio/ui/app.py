"""The page shell: ``create_app()`` builds one independent app (one Study) per browser session;
``serve(...)`` runs the server (``kanstudio serve``).

Offline by construction: Bokeh and Panel resources come from our server (``BOKEH_RESOURCES=server``
is set by ``kanstudio.ui``), the template is Bootstrap (bundled), no icon or web fonts.
"""
from __future__ import annotations

import html
import ipaddress
import logging
import socket
import sys
import time
import weakref
from pathlib import Path

import kanstudio.ui  # noqa: F401  (BOKEH_RESOURCES=server before panel is imported)

import panel as pn
import param
from panel.custom import JSComponent
from panel.viewable import Viewer

from . import theme
from .controller import LIMITS, Controller
from .data_panel import DataPanel
from .discover_panel import DiscoverPanel
from .formula_panel import FormulaPanel
from .history_panel import HistoryPanel
from .inspector import Inspector, NetworkActions
from .loss_view import LossView
from .network_view import NetworkView
from .train_panel import TrainPanel

log = logging.getLogger("kanstudio.ui")

POLL_MS = 200
TITLE = "kanstudio"
ASSETS = Path(__file__).resolve().parents[2] / "assets"

pn.extension("mathjax", "tabulator", raw_css=[theme.CSS], notifications=False, design="bootstrap")

# Every live App of this process (tests and benchmarks look at the server side through it).
APPS: "weakref.WeakSet[App]" = weakref.WeakSet()


class PagePatch(JSComponent):
    """Invisible; makes live redraws cheap in the browser.

    Bokeh 3.9 rewrites every renderer's position <style> on every paint, even when the CSS is
    unchanged; the next getComputedStyle then recomputes the style of the whole page (about
    two thirds of the browser's time per network redraw here). Skipping identical rewrites
    changes nothing else."""

    _esm = """
    export function render({ el }) {
      el.style.display = 'none';
      const B = window.Bokeh;
      if (!B || window.__kanstudio_style_patch) return;
      try {
        const proto = B.require('core/dom').InlineStyleSheet.prototype;
        const update = proto._update;
        proto._update = function (css) { if (this.el.textContent !== css) update.call(this, css); };
        window.__kanstudio_style_patch = true;
      } catch (e) { console.warn('kanstudio: style patch not applied', e); }
    }
    """


class MessageArea(Viewer):
    """The latest messages (errors, warnings, results) and what is running."""

    controller = param.ClassSelector(class_=Controller)
    shown = param.Integer(default=3)

    def __init__(self, **params):
        super().__init__(**params)
        self.busy = pn.indicators.LoadingSpinner(value=False, size=18, visible=False, margin=(6, 4, 0, 8),
                                                 color="primary", bgcolor="light")
        self.busy_text = pn.pane.HTML("", margin=(6, 4), styles={"font-size": "13px", "color": theme.MUTED})
        self.text = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 8))
        self.clear = pn.widgets.Button(label="Clear", color="light", width=70, visible=False, margin=(4, 8))
        self.clear.on_click(lambda _: self.controller.clear_messages())
        self.controller.param.watch(self._update, ["messages", "busy"])
        self._layout = pn.Row(pn.Row(self.busy, self.busy_text), self.text, self.clear, sizing_mode="stretch_width")

    def _update(self, *_) -> None:
        ctl = self.controller
        self.busy.value = self.busy.visible = bool(ctl.busy)
        self.busy_text.object = html.escape(ctl.busy + "\u2026") if ctl.busy else ""
        msgs = ctl.messages[-self.shown:]
        items = []
        for n, (level, text) in enumerate(reversed(msgs)):
            color = theme.LEVEL_COLORS.get(level, theme.LEVEL_COLORS["info"])
            opacity = 1.0 if n == 0 else 0.62
            items.append(f"<div class='ks-msg ks-{html.escape(level)}' style='border-left:3px solid {color};"
                         f"padding:2px 8px;margin:2px 0;opacity:{opacity};font-size:13px'>"
                         f"<span style='color:{color};font-weight:600'>{html.escape(level)}</span> "
                         f"{html.escape(text)}</div>")
        self.text.object = "".join(items)
        self.clear.visible = bool(msgs)

    def __panel__(self):
        return self._layout


def _card(obj, title: str, **kw) -> pn.Card:
    opts = dict(theme.CARD)
    opts.update(kw)
    return pn.Card(obj, title=title, **opts)


class App:
    """One browser session: a Study, its controller and the views."""

    def __init__(self, study=None, doc=None):
        from kanstudio.core.study import Study

        self.study = study if study is not None else Study(name="kanstudio")
        self.controller = ctl = Controller(self.study, doc=doc)
        self.network = NetworkView()
        ctl.param.watch(lambda e: self.network.update(e.new), "snapshot")
        # other data (a load, or undoing one): an edge picked on the old data means nothing now
        ctl.param.watch(lambda e: self.network.select(None), "data_version")
        self.data = DataPanel(controller=ctl)
        self.train = TrainPanel(controller=ctl)
        self.loss = LossView(controller=ctl)
        self.inspector = Inspector(controller=ctl, network=self.network)
        self.actions = NetworkActions(controller=ctl)
        self.formula = FormulaPanel(controller=ctl)
        self.discover = DiscoverPanel(controller=ctl)
        self.history = HistoryPanel(controller=ctl)
        self.messages = MessageArea(controller=ctl)
        self.template = self._layout()
        self.created = time.monotonic()
        APPS.add(self)

    def _layout(self):
        legend = pn.pane.HTML(
            f"<span style='color:{theme.MUTED};font-size:12px'>"
            f"<b style='color:{theme.SPLINE}'>\u2014</b> learned spline &nbsp; "
            f"<b style='color:{theme.SYMBOLIC}'>\u2014</b> snapped (name above) &nbsp; "
            f"<b style='color:{theme.SELECTED}'>\u2014</b> selected &nbsp; \u00d7 product node &nbsp; "
            "opacity and width: importance</span>", margin=(0, 10))
        actions_title = pn.pane.HTML("<div class='ks-section'>Whole network</div>", margin=(8, 10, 0, 10),
                                     stylesheets=[theme.CSS])
        # Side by side where there is room, one under the other where there is not (a laptop
        # with the sidebar open): a Row squeezed the network card to 16 px at 900 px.
        network = _card(pn.Column(self.network, legend, actions_title, self.actions, sizing_mode="stretch_width"),
                        "Network", sizing_mode="stretch_width", min_width=340, styles={"flex": "1 1 380px"})
        inspector = _card(self.inspector, "Inspector", sizing_mode="stretch_width", min_width=340,
                          max_width=560, styles={"flex": "1 1 420px"})
        middle = pn.FlexBox(network, inspector, flex_wrap="wrap", align_items="flex-start",
                            sizing_mode="stretch_width")
        bottom = pn.FlexBox(
            pn.Column(_card(self.loss, "Loss", sizing_mode="stretch_width"),
                      _card(self.history, "History", sizing_mode="stretch_width"),
                      sizing_mode="stretch_width", min_width=340, styles={"flex": "1 1 380px"}),
            _card(self.formula, "Formula", sizing_mode="stretch_width", min_width=340,
                  styles={"flex": "1 1 420px"}),
            flex_wrap="wrap", align_items="flex-start", sizing_mode="stretch_width")
        tpl = pn.template.BootstrapTemplate(
            title=TITLE, sidebar_width=370, header_background=theme.ACCENT, collapsed_sidebar=False,
            busy_indicator=None,
            sidebar=[_card(self.data, "Data", sizing_mode="stretch_width"),
                     _card(self.train, "Training", sizing_mode="stretch_width")],
            main=[PagePatch(width=0, height=0, margin=0), self.messages,
                  _card(self.discover, "Discover", sizing_mode="stretch_width"),
                  middle, bottom],
        )
        return tpl

    def start(self, data=None, target=None, opened_study: bool = False) -> None:
        """Open on ``data`` or the first example (unless a study was opened), start polling."""
        if not opened_study:
            self.data.load_initial(data, target)
        self.controller.poll()

    def close(self, wait: bool = True) -> None:
        self.controller.close(wait=wait)


def create_app(data=None, target=None, study=None):
    """A fresh app for one browser session (what ``pn.serve`` calls per session)."""
    from kanstudio.core.study import Study

    doc = pn.state.curdoc
    st = None
    if study is not None:
        try:
            st = Study.load(study)
        except Exception as e:  # noqa: BLE001 - show the app anyway, with the reason
            log.error("could not open %s: %s", study, e)
            st = None
            study_error = f"Could not open the study file {study}: {e}"
        else:
            study_error = None
    app = App(st, doc=doc)
    if study is not None and study_error:
        app.controller.notify("error", study_error)
    app.start(data, target, opened_study=st is not None)
    if doc is not None and doc.session_context is not None:
        cb = pn.state.add_periodic_callback(app.controller.poll, period=POLL_MS)

        def destroyed(ctx, app=app, cb=cb):
            try:
                cb.stop()
            except Exception:  # noqa: BLE001
                pass
            app.close(wait=False)

        pn.state.on_session_destroyed(destroyed)
    return app.template


def _is_loopback(address: str) -> bool:
    if address in ("localhost", ""):
        return address == "localhost"
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        try:
            return ipaddress.ip_address(socket.gethostbyname(address)).is_loopback
        except OSError:
            return False


def server_kwargs(port: int = 5006, address: str = "127.0.0.1", show: bool = False, max_upload_mb: int = 200,
                  **extra) -> dict:
    """Keyword arguments for ``pn.serve`` (shared by ``serve`` and the browser tests)."""
    kw = dict(port=port, address=address, show=show, title=TITLE, liveness=True, admin=False,
              websocket_max_message_size=max(64, 2 * 4 + 16) * 2**20, verbose=False)
    if (ASSETS / "ui").is_dir():
        kw["static_dirs"] = {"kanstudio-assets": str(ASSETS / "ui")}
    if not _is_loopback(address):
        kw["websocket_origin"] = ["*"]
    kw.update(extra)
    return kw


def configure(max_upload_mb: int = 200, max_trainings: int = 4, threads: int = 1) -> None:
    import torch

    from kanstudio.core.runs import set_max_concurrent_trainings

    if threads is not None and int(threads) >= 1:
        torch.set_num_threads(int(threads))
    LIMITS["max_upload_mb"] = int(max_upload_mb)
    set_max_concurrent_trainings(int(max_trainings))


def app_factory(data=None, target=None, study=None):
    """A plain function (``pn.serve`` treats it as a per-session app; a partial would not be)."""
    def kanstudio_app():
        return create_app(data=data, target=target, study=study)

    return kanstudio_app


def serve(port=5006, address="127.0.0.1", show=False, data=None, target=None, study=None, max_upload_mb=200,
          max_trainings=4, threads=1):
    """Serve the studio (blocks until interrupted). ``data``: a CSV to open in every new session
    (default: the kan_paper example); ``target``: its target column; ``study``: a .kanstudio file
    to open instead."""
    for p, what in ((data, "data file"), (study, "study file")):
        if p is not None and not Path(p).is_file():
            raise SystemExit(f"kanstudio serve: the {what} {p} does not exist")
    if not _is_loopback(str(address)):
        print(f"kanstudio: WARNING: serving on {address}, reachable from other machines. kanstudio has no "
              "login: anyone who can reach this port can use it and read the data you load.",
              file=sys.stderr, flush=True)
    configure(max_upload_mb, max_trainings, threads)
    host = "localhost" if str(address) in ("127.0.0.1", "localhost", "::1") else address
    # Bokeh's own show() fails silently where no browser can be started (a server, ssh, a
    # container): open it ourselves once the port listens, and say what happened either way.
    server = pn.serve(app_factory(data, target, study), start=False,
                      **server_kwargs(port, address, False, max_upload_mb))
    url = f"http://{host}:{server.port}/"
    print(f"kanstudio: serving on {url}  (Ctrl+C to stop)", file=sys.stderr, flush=True)
    server.start()
    if show:
        import threading

        threading.Thread(target=open_browser, args=(url,), name="kanstudio-show", daemon=True).start()
    try:
        server.io_loop.start()
    except RuntimeError:
        pass


def open_browser(url: str) -> bool:
    """Open ``url`` in the user's browser (``$BROWSER`` first, as :mod:`webbrowser` does); say
    on stderr whether it worked, so a headless machine does not just sit there."""
    import webbrowser

    try:
        ok = bool(webbrowser.open(url, new=2))
    except Exception:  # noqa: BLE001 - webbrowser.Error, or a broken $BROWSER
        ok = False
    if ok:
        print(f"kanstudio: opened {url} in your browser", file=sys.stderr, flush=True)
    else:
        print(f"kanstudio: --show could not start a web browser on this machine (none found, or "
              f"$BROWSER failed); open {url} in a browser yourself", file=sys.stderr, flush=True)
    return ok


def main() -> None:  # python -m kanstudio.ui.app
    import argparse

    ap = argparse.ArgumentParser(description="kanstudio studio server")
    ap.add_argument("--port", type=int, default=5006)
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--show", action="store_true")
    ap.add_argument("--data")
    ap.add_argument("--target")
    ap.add_argument("--study")
    a = ap.parse_args()
    serve(a.port, a.address, a.show, a.data, a.target, a.study)


if __name__ == "__main__":
    main()
