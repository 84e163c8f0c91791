"""The inspector: the clicked edge (large plot with the data, ranked symbolic candidates, snap /
unsnap / prune) or node (prune), and the whole-network actions."""
from __future__ import annotations

import html
import time

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.plotting import figure
from panel.viewable import Viewer

from . import theme
from .controller import Controller, fmt
from .network_view import NetworkView, Selection, edge_name, node_name

CAND_COLUMNS = ["function", "a", "b", "c", "d", "R\u00b2", "complexity"]
SAMPLES_EVERY_S = 1.0  # while training, re-trace the samples at most this often


def candidate_curve(cand, x: np.ndarray) -> np.ndarray:
    """``c * f(a * x + b) + d`` of a Candidate over ``x`` (NaN outside f's domain)."""
    from kanstudio.core.symbolic import get_function

    with np.errstate(all="ignore"):
        f = get_function(cand.name).numpy_fn
        y = cand.c * np.asarray(f(cand.a * x + cand.b), dtype=float) + cand.d
    y = np.broadcast_to(y, x.shape).astype(float)
    y[~np.isfinite(y)] = np.nan
    return y


def candidates_frame(cands) -> pd.DataFrame:
    """The table's rows: strings only, so the table's schema (and so its configuration) never
    changes -- a changed configuration makes the browser rebuild the whole table."""
    rows = [[c.name, fmt(c.a), fmt(c.b), fmt(c.c), fmt(c.d),
             f"{c.r2:.5f}" if np.isfinite(c.r2) else "\u2013", str(int(c.complexity))] for c in cands]
    return pd.DataFrame(rows, columns=CAND_COLUMNS, dtype=object)




class Inspector(Viewer):
    controller = param.ClassSelector(class_=Controller)
    network = param.ClassSelector(class_=NetworkView)

    def __init__(self, **params):
        super().__init__(**params)
        self._cands: list = []
        self._cand_key = None
        self._samples_key = None
        self._samples_time = 0.0
        self._samples_pending = False
        self._samples_again = False

        self.title = pn.pane.HTML(self._placeholder(), sizing_mode="stretch_width", margin=(2, 8),
                                  styles={"font-size": "14px"})
        self.curve_src = ColumnDataSource({"x": [], "y": []})
        self.sample_src = ColumnDataSource({"x": [], "y": [], "rug": []})
        self.overlay_src = ColumnDataSource({"x": [], "y": []})
        fig = figure(height=250, sizing_mode="stretch_width", tools="", x_axis_label="input",
                     y_axis_label="activation", **theme.FIG)
        theme.style_axes(fig)
        self._curve_r = fig.line("x", "y", source=self.curve_src, color=theme.SPLINE, line_width=2.5,
                                 legend_label="edge")
        # The samples lie on the curve (each is an input and its activation): dots on the curve
        # show where the data is dense, and a rug under it shows which inputs the data covers.
        fig.scatter("x", "y", source=self.sample_src, size=3.5, color=theme.SAMPLES_DOT, alpha=0.45,
                    line_color=None, legend_label="data")
        fig.scatter("x", "rug", source=self.sample_src, marker="dash", angle=1.5708, size=9,
                    color=theme.SAMPLES_DOT, alpha=0.3)
        fig.line("x", "y", source=self.overlay_src, color=theme.CANDIDATE, line_width=2, line_dash="dashed",
                 legend_label="candidate")
        fig.legend.location = "top_left"
        fig.legend.label_text_font_size = "11px"
        fig.legend.border_line_color = None
        fig.legend.background_fill_alpha = 0.6
        fig.legend.spacing = 0
        fig.legend.padding = 3
        fig.add_tools(HoverTool(renderers=[self._curve_r], tooltips=[("x", "@x{0.000}"), ("\u03c6", "@y{0.000}")],
                                mode="vline"))
        theme.fixed_width_yaxis(fig)
        self.figure = fig
        self.plot = pn.pane.Bokeh(fig, sizing_mode="stretch_width", height=250)

        # Columns as wide as their numbers (the table scrolls sideways when the card is narrow):
        # fixed widths cut values such as -1.234e+03 short.
        self.table = pn.widgets.Tabulator(candidates_frame([]), disabled=True, show_index=False, selectable=1,
                                          height=200, sizing_mode="stretch_width", layout="fit_data_stretch",
                                          titles={"complexity": "cx"}, sortable=False,
                                          theme="simple", stylesheets=[theme.TABLE_CSS], pagination=None)
        self.table.param.watch(self._on_candidate, "selection")
        self.table_note = pn.pane.HTML("Symbolic candidates c\u00b7f(a\u00b7x+b)+d, best first: select a row to "
                                       "overlay it, then Snap.", margin=(0, 8),
                                       styles={"font-size": "12px", "color": theme.MUTED})
        self.snap = pn.widgets.Button(label="Snap", color="primary", sizing_mode="stretch_width",
                                      description="Snap to the selected candidate (the best one if none is selected)")
        self.unsnap = pn.widgets.Button(label="Unsnap", color="default", sizing_mode="stretch_width")
        self.prune_edge = pn.widgets.Button(label="Prune edge", color="default", sizing_mode="stretch_width")
        self.prune_node = pn.widgets.Button(label="Prune node", color="warning", sizing_mode="stretch_width")
        self.snap.on_click(self._on_snap)
        self.unsnap.on_click(self._on_unsnap)
        self.prune_edge.on_click(self._on_prune_edge)
        self.prune_node.on_click(self._on_prune_node)

        self.edge_box = pn.Column(self.plot, self.table_note, self.table,
                                  pn.Row(self.snap, self.unsnap, self.prune_edge), sizing_mode="stretch_width",
                                  visible=False)
        self.node_box = pn.Column(self.prune_node, sizing_mode="stretch_width", visible=False)
        self._layout = pn.Column(self.title, self.edge_box, self.node_box, sizing_mode="stretch_width")

        self.network.param.watch(self._on_selection, "selection")
        self.controller.param.watch(self._on_version, "version")
        self.controller.param.watch(self._on_training, "training")

    # ------------------------------------------------------------------ display
    @staticmethod
    def _placeholder() -> str:
        return (f"<span style='color:{theme.MUTED}'>Click an edge of the network to see its function and "
                "symbolic candidates; click a hidden node to prune it.</span>")

    @property
    def selection(self) -> Selection | None:
        return self.network.selection

    def _on_selection(self, *_) -> None:
        self._cands, self._cand_key, self._samples_key = [], None, None
        if self.table.selection:
            self.table.selection = []
        self.overlay_src.data = {"x": [], "y": []}
        self.sample_src.data = {"x": [], "y": [], "rug": []}
        if len(self.table.value):
            self.table.value = candidates_frame([])
        self._show()
        self._request_candidates()
        self._request_samples(force=True)

    def _on_version(self, *_) -> None:
        sel = self.selection
        if sel is None:
            return
        self._show()
        if not self.controller.training:
            self._request_candidates()
        self._request_samples()

    def _on_training(self, *_) -> None:
        if not self.controller.training:
            self._request_candidates()
            self._request_samples(force=True)

    def _show(self) -> None:
        sel, snap = self.selection, self.controller.snapshot
        if sel is None or snap is None:
            self.title.object = self._placeholder()
            self.edge_box.visible = self.node_box.visible = False
            return
        if sel.kind == "edge":
            l, i, j = sel.key
            if l >= len(snap.curve_y) or i >= snap.dims[l] or j >= snap.dims[l + 1]:
                return
            fn = snap.edge_symbolic[l][i][j]
            live = bool(snap.edge_live[l][i, j])
            state = (f"<span style='color:{theme.SYMBOLIC}'>snapped to <b>{html.escape(fn)}</b></span>" if fn
                     else "learned spline" if live else "pruned")
            self.title.object = (f"<b>Edge {html.escape(edge_name(snap, l, i, j))}</b> "
                                 f"<span style='color:{theme.MUTED}'>\u00b7 layer {l} \u00b7 {state} \u00b7 "
                                 f"mean |\u03c6| {fmt(snap.edge_score[l][i, j], 3)}</span>")
            self.curve_src.data = {"x": snap.curve_x[l][:, i], "y": snap.curve_y[l][:, i, j]}
            self._curve_r.glyph.line_color = theme.SYMBOLIC if fn else theme.SPLINE
            self.unsnap.disabled = not fn
            self.edge_box.visible, self.node_box.visible = True, False
            self._update_overlay()
        else:
            l, j = sel.key
            depth = len(snap.dims) - 1
            name = node_name(snap, l, j)
            kind = "input" if l == 0 else "output" if l == depth else "hidden"
            inc = float(np.max(snap.edge_score[l - 1][:, j])) if l > 0 else np.nan
            out = float(np.max(snap.edge_score[l][j, :])) if l < depth else np.nan
            prod = " \u00b7 product node (\u00d7)" if bool(snap.node_is_prod[l][j]) else ""
            self.title.object = (f"<b>Node {html.escape(name)}</b> <span style='color:{theme.MUTED}'>\u00b7 "
                                 f"{kind}{prod} \u00b7 in {fmt(inc, 3)} \u00b7 out {fmt(out, 3)}</span>"
                                 + ("" if kind == "hidden" else
                                    f"<br><span style='color:{theme.MUTED};font-size:12.5px'>Inputs and outputs "
                                    "stay; prune their edges instead.</span>"))
            self.node_box.visible = kind == "hidden"
            self.edge_box.visible = False

    # ------------------------------------------------------------------ candidates and samples
    def _request_candidates(self) -> None:
        sel, ctl = self.selection, self.controller
        if sel is None or sel.kind != "edge" or ctl.snapshot is None:
            return
        key = (ctl.version, sel.key)
        if key == self._cand_key:
            return
        self._cand_key = key
        st = ctl.study

        def done(cands):
            if self.selection is None or self.selection.key != key[1]:
                return
            prev = self._cands[self.table.selection[0]].name if (self._cands and self.table.selection) else None
            self._cands = list(cands)[:12]
            self.table.value = candidates_frame(self._cands)
            keep = [n for n, c in enumerate(self._cands) if c.name == prev]
            self.table.selection = keep[:1]
            self._update_overlay()

        def failed(exc):
            self._cand_key = None
            self.controller.notify("error", f"Candidates: {exc}")

        l, i, j = sel.key
        ctl.query(lambda: st.suggest(l, i, j), done, failed)

    def _request_samples(self, force: bool = False) -> None:
        sel, ctl = self.selection, self.controller
        if sel is None or sel.kind != "edge" or ctl.snapshot is None:
            return
        if self._samples_pending:
            self._samples_again = True  # asked again meanwhile: run once more when it returns
            return
        now = time.monotonic()
        if not force and ctl.training and now - self._samples_time < SAMPLES_EVERY_S:
            return
        key = (ctl.version, sel.key)
        if key == self._samples_key:
            return
        self._samples_key, self._samples_time, self._samples_pending = key, now, True
        self._samples_again = False
        l, i, j = sel.key

        def finish(xy):
            self._samples_pending = False
            current = self.selection is not None and self.selection.key == key[1]
            if current and xy is not None:
                x, y = np.asarray(xy[0], dtype=float), np.asarray(xy[1], dtype=float)
                lo, hi = (float(np.nanmin(y)), float(np.nanmax(y))) if len(y) else (0.0, 1.0)
                rug = np.full(len(x), lo - 0.08 * max(hi - lo, 1e-12))
                self.sample_src.data = {"x": x, "y": y, "rug": rug}
            if self._samples_again or not current:
                self._request_samples(force=True)

        ctl.query(lambda: ctl.edge_samples(l, i, j), finish, lambda exc: finish(None))

    def _on_candidate(self, *_) -> None:
        self.controller.soon(self._update_overlay)

    def _selected_candidate(self):
        sel = self.table.selection
        return self._cands[sel[0]] if sel and sel[0] < len(self._cands) else None

    def _update_overlay(self) -> None:
        cand, sel, snap = self._selected_candidate(), self.selection, self.controller.snapshot
        if cand is None or sel is None or sel.kind != "edge" or snap is None:
            self.overlay_src.data = {"x": [], "y": []}
            return
        l, i, _ = sel.key
        x = np.linspace(float(np.min(snap.curve_x[l][:, i])), float(np.max(snap.curve_x[l][:, i])), 200)
        self.overlay_src.data = {"x": x, "y": candidate_curve(cand, x)}

    # ------------------------------------------------------------------ commands
    def _edge(self):
        sel = self.selection
        return sel.key if sel is not None and sel.kind == "edge" else None

    def _on_snap(self, _=None) -> None:
        key, ctl = self._edge(), self.controller
        if key is None:
            return
        cand = self._selected_candidate()
        st = ctl.study
        ctl.run(f"Snap {edge_name(ctl.snapshot, *key)}", lambda: st.snap(*key, fn=cand if cand is not None else "auto"))

    def _on_unsnap(self, _=None) -> None:
        key, ctl = self._edge(), self.controller
        if key is not None:
            st = ctl.study
            ctl.run("Unsnap", lambda: st.unsnap(*key))

    def _on_prune_edge(self, _=None) -> None:
        key, ctl = self._edge(), self.controller
        if key is not None:
            st = ctl.study
            ctl.run("Prune edge", lambda: st.prune_edge(*key))

    def _on_prune_node(self, _=None) -> None:
        sel, ctl = self.selection, self.controller
        if sel is not None and sel.kind == "node":
            st = ctl.study
            ctl.run("Prune node", lambda: st.prune_node(*sel.key))

    def __panel__(self):
        return self._layout


class NetworkActions(Viewer):
    """Whole-network actions: auto-prune, auto-symbolic, refit, refine grid."""

    controller = param.ClassSelector(class_=Controller)

    def __init__(self, **params):
        super().__init__(**params)
        w = dict(width=120, margin=(2, 4))
        b = dict(width=120, margin=(2, 4), align="end")
        self.prune_th = pn.widgets.FloatInput(label="Node threshold \u03b8", value=1e-2, start=0.0, step=1e-3, **w)
        self.auto_prune = pn.widgets.Button(label="Auto-prune", **b)
        self.r2_th = pn.widgets.FloatInput(label="R\u00b2 threshold", value=0.99, start=0.0, end=1.0, step=0.005, **w)
        self.auto_symbolic = pn.widgets.Button(label="Auto-symbolic", **b)
        self.refit_steps = pn.widgets.IntInput(label="Refit steps", value=50, start=1, **w)
        self.refit = pn.widgets.Button(label="Refit", **b)
        self.refine_grid = pn.widgets.IntInput(label="Refine to grid", value=10, start=1, end=1000, **w)
        self.refine = pn.widgets.Button(label="Refine grid", **b)
        self.auto_prune.on_click(self._on_auto_prune)
        self.auto_symbolic.on_click(self._on_auto_symbolic)
        self.refit.on_click(self._on_refit)
        self.refine.on_click(self._on_refine)
        self.controller.param.watch(self._on_state, ["training", "busy"])
        self.controller.param.watch(self._on_settings, "settings")
        group = dict(margin=(0, 10, 0, 0))
        self._layout = pn.FlexBox(
            pn.Row(self.prune_th, self.auto_prune, **group),
            pn.Row(self.r2_th, self.auto_symbolic, **group),
            pn.Row(self.refit_steps, self.refit, **group),
            pn.Row(self.refine_grid, self.refine, **group),
            sizing_mode="stretch_width", margin=(0, 6))

    def _on_state(self, *_) -> None:
        off = self.controller.training or bool(self.controller.busy)
        for b in (self.auto_prune, self.auto_symbolic, self.refit, self.refine):
            b.disabled = off

    def _on_settings(self, *_) -> None:
        s = self.controller.settings
        if s is not None:
            self.r2_th.value = s.r2_threshold
            self.refine_grid.value = max(int(self.refine_grid.value or 0), 2 * s.grid)

    def _on_auto_prune(self, _=None) -> None:
        ctl, th = self.controller, float(self.prune_th.value or 0.0)
        st = ctl.study
        ctl.run("Auto-prune", lambda: st.auto_prune(th), slow=True)

    def _on_auto_symbolic(self, _=None) -> None:
        ctl, th = self.controller, float(self.r2_th.value or 0.0)
        st = ctl.study
        ctl.run("Auto-symbolic", lambda: st.auto_symbolic(th), slow=True)

    def _on_refit(self, _=None) -> None:
        ctl, steps = self.controller, int(self.refit_steps.value or 1)
        st = ctl.study
        ctl.run("Refit", lambda: st.start_training(steps, lamb=0.0, update_grid=False))

    def _on_refine(self, _=None) -> None:
        ctl, g = self.controller, int(self.refine_grid.value or 1)
        st = ctl.study

        def job():
            st.refine(g)
            st.update_settings(grid=g)  # so that Start keeps training this network

        ctl.run("Refine grid", job, slow=True)

    def __panel__(self):
        return self._layout
