"""Discover: the unattended search of ``kanstudio fit`` in the studio. Discover starts it in the
background (views of the data, network shapes, structure tests, units when every column has
them); each finished shape appears in the table with its formula, complexity, validation error
and whether it is on the Pareto front; Stop ends it after the shape in progress. Clicking a row
opens that attempt's network in the Study (one undoable edit) for inspection and editing."""
from __future__ import annotations

import html
import math

import pandas as pd
import panel as pn
import param
from panel.viewable import Viewer

from . import theme
from .controller import Controller, fmt

COLUMNS = ["#", "shape", "formula", "cx", "val RMSE", "val R\u00b2", "s", "Pareto"]
SHOWN_LINES = 14

_LOG_CSS = f"""
:host {{ width: 100%; }}
pre {{ font-family: {theme.MONO}; font-size: 11.5px; line-height: 1.35; margin: 0; padding: 4px 6px;
       background: #f8fafc; border: 1px solid #eef1f5; border-radius: 3px; max-height: 190px;
       overflow: auto; white-space: pre-wrap; word-break: break-word; }}
"""


def rows_frame(state) -> pd.DataFrame:
    """The table's rows (strings only: a fixed schema, so the browser never rebuilds the table)."""
    if state is None:
        return pd.DataFrame(columns=COLUMNS, dtype=object)
    out = []
    for r, on_front in zip(state.rows, state.pareto):
        best = state.best_index == r.index
        formula = r.formula if r.complexity is not None else f"failed: {r.error}"
        out.append([str(r.index + 1) + (" \u2605" if best else ""), r.label, formula,
                    "" if r.complexity is None else str(r.complexity), fmt(r.val_rmse, 3),
                    fmt(r.val_r2, 6) if math.isfinite(r.val_r2) else "\u2013", f"{r.seconds:.1f}",
                    "\u25cf front" if on_front else ""])
    return pd.DataFrame(out, columns=COLUMNS, dtype=object)


def units_note(units: dict, dataset) -> str:
    """What the search will do with the units the data panel holds."""
    from kanstudio.core.discovery_run import complete_units

    if dataset is None:
        return ""
    cols = [*dataset.inputs, dataset.target]
    done = complete_units(units, dataset)
    if done:
        pairs = ", ".join(f"{c} [{done[c]}]" for c in cols)
        return f"Units: {html.escape(pairs)} \u2014 the search uses dimensionless groups."
    have = [c for c in cols if str((units or {}).get(c, "")).strip()]
    if have:
        missing = [c for c in cols if c not in have]
        return (f"Units: not used until every column has one (missing: {html.escape(', '.join(missing))}); "
                "set them in the Data panel.")
    return "Units: none (optional: give every column its units in the Data panel to search dimensionless groups)."


class DiscoverPanel(Viewer):
    controller = param.ClassSelector(class_=Controller)

    def __init__(self, **params):
        super().__init__(**params)
        ctl = self.controller
        self._opened: tuple | None = None  # (run, index) opened last: a repeated click is a no-op
        self._syncing = False
        self.intro = pn.pane.HTML(
            "<span class='ks-muted'>Search network shapes and views of the data for a formula, unattended "
            "(as <code>kanstudio fit</code> does). Click a row to open its network.</span>",
            sizing_mode="stretch_width", margin=(0, 8), stylesheets=[theme.CSS])
        self.time_limit = pn.widgets.IntInput(name="Time limit (s)", value=60, start=5, end=3600, step=5,
                                              width=120, margin=(2, 8))
        self.start = pn.widgets.Button(label="\u2315 Discover", color="primary", width=130, margin=(2, 4),
                                       align="end")
        self.stop = pn.widgets.Button(label="\u25a0 Stop search", color="default", width=130, margin=(2, 4),
                                      align="end", disabled=True)
        self.start.on_click(self._on_start)
        self.stop.on_click(self._on_stop)
        self.progress = pn.indicators.Progress(value=0, max=1000, bar_color="primary", height=10, visible=False,
                                               sizing_mode="stretch_width", margin=(6, 8, 2, 8))
        self.status = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 8),
                                   styles={"font-size": "12.5px", "color": theme.MUTED})
        self.units = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 8),
                                  styles={"font-size": "12px", "color": theme.MUTED})
        self.found = pn.pane.HTML("", sizing_mode="stretch_width", margin=(2, 8), visible=False,
                                  styles={"font-size": "12.5px"})
        self.log = pn.pane.HTML("", sizing_mode="stretch_width", margin=(2, 8), visible=False,
                                stylesheets=[_LOG_CSS])
        widths = {"#": 46, "shape": 170, "cx": 44, "val RMSE": 80, "val R\u00b2": 90, "s": 50, "Pareto": 70}
        self.table = pn.widgets.Tabulator(
            rows_frame(None), disabled=True, show_index=False, selectable=1, height=230, visible=False,
            sizing_mode="stretch_width", layout="fit_columns", widths=widths, sortable=False, theme="simple",
            formatters={"formula": {"type": "textarea"}, "shape": {"type": "textarea"}},
            stylesheets=[theme.TABLE_CSS], pagination=None, margin=(4, 8))
        self.table.param.watch(self._on_pick, "selection")
        ctl.param.watch(self._on_state, ["discovery", "discovering", "training", "busy"])
        ctl.param.watch(self._on_units, ["units", "data_version"])
        self._on_state()
        self._on_units()
        self._layout = pn.Column(
            self.intro,
            pn.Row(self.time_limit, self.start, self.stop, sizing_mode="stretch_width"),
            self.units, self.progress, self.status, self.found, self.table, self.log,
            sizing_mode="stretch_width")

    # ------------------------------------------------------------------ actions
    def _on_start(self, _=None) -> None:
        ctl = self.controller
        if ctl.discovering:
            return
        st = ctl.study
        limit = float(self.time_limit.value or 60)
        self._opened = None

        def job():
            return st.start_discovery(time_limit=limit)

        ctl.run("Discover", job, lambda _: ctl.poll(), edit=False)

    def _on_stop(self, _=None) -> None:
        ctl = self.controller
        st = ctl.study
        st.stop_discovery(wait=False)  # only sets a flag: safe on the event loop
        ctl.poll()

    def _on_pick(self, event) -> None:
        sel = event.new
        state = self.controller.discovery
        if self._syncing or not sel or state is None or sel[0] >= len(state.rows):
            return
        row = state.rows[sel[0]]
        key = (state.run, row.index)
        if key == self._opened:
            return
        ctl = self.controller
        if not row.openable:
            ctl.notify("warning", f"Attempt {row.index + 1} has no network to open" + (f": {row.error}" if row.error else "."))
            return
        st = ctl.study
        self._opened = key

        def done(_):
            ctl.notify("success", f"Opened attempt {row.index + 1} [{row.width}] in the network; Undo goes back.")

        def failed(_):
            self._opened = None

        ctl.run(f"Open attempt {row.index + 1}", lambda: st.open_attempt(row.index), done, failed=failed)

    # ------------------------------------------------------------------ display
    def _on_units(self, *_) -> None:
        ctl = self.controller
        self.units.object = units_note(ctl.units, ctl.dataset)

    def _on_state(self, *_) -> None:
        ctl = self.controller
        state, running = ctl.discovery, ctl.discovering
        self.start.disabled = running or ctl.dataset is None
        self.stop.disabled = not running or (state is not None and state.status == "stopping")
        if state is None:
            self.status.object = ""
            self.progress.visible = self.table.visible = self.log.visible = self.found.visible = False
            return
        n_ok = sum(1 for r in state.rows if r.complexity is not None)
        word = {"running": "Searching", "stopping": "Stopping after the current shape", "done": "Done",
                "stopped": "Stopped", "failed": "Failed"}.get(state.status, state.status)
        now = ""
        if running:
            now = f" \u00b7 running shape {len(state.rows) + 1}"
        best = ""
        if state.best_index is not None and state.best_index < len(state.rows):
            b = state.rows[state.best_index]
            best = f" \u00b7 best: <b style='color:{theme.INK}'>{html.escape(_short(b.formula, 120))}</b>"
        err = f" \u00b7 {html.escape(state.error)}" if state.error else ""
        self.status.object = (f"<b style='color:{theme.INK}'>{word}</b> \u00b7 {n_ok} attempt(s){now} \u00b7 "
                              f"{state.elapsed:.1f} s{best}{err}")
        limit = state.time_limit
        self.progress.visible = running
        if running and limit:
            self.progress.value = int(1000 * min(state.elapsed / limit, 1.0))
        self.progress.bar_color = "warning" if state.status == "stopping" else "primary"
        lines = state.lines[-SHOWN_LINES:]
        self.log.visible = bool(lines)
        self.log.object = "<pre>" + html.escape("\n".join(lines)) + "</pre>"
        found = list(state.found)
        self.found.visible = bool(found)
        self.found.object = ("<div class='ks-section'>Structure found</div><ul style='margin:0;padding-left:18px'>"
                             + "".join(f"<li>{html.escape(f)}</li>" for f in found) + "</ul>") if found else ""
        frame = rows_frame(state)
        if not frame.equals(self.table.value):
            sel = list(self.table.selection)
            self._syncing = True
            try:
                self.table.value = frame
                self.table.selection = [k for k in sel if k < len(frame)]
            finally:
                self._syncing = False
        self.table.visible = len(frame) > 0
        # grow with the rows up to a scrolling height (an empty block under two rows looked broken)
        height = min(260, 34 + 40 * len(frame))
        if self.table.height != height:
            self.table.height = height

    def __panel__(self):
        return self._layout


def _short(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "\u2026"
