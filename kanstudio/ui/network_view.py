"""The KAN graph: nodes in layers (inputs at the bottom, the target at the top) and, on every edge,
a live mini-plot of the edge's learned 1-D function.

One ColumnDataSource holds one row per live edge (path node -> box -> node, the mini-plot box, the
curve rescaled into the box, style columns), so the path, box and curve of an edge share
selection. The data is built vectorised per layer (no Python loop over edges), and a redraw only
replaces ``source.data``: a [10,10,10,1] network rebuilds in about a millisecond, and reaches the
browser as one message (ragged columns as JSON lists, see ``_rows``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, Range1d, TapTool
from bokeh.plotting import figure
from panel.viewable import Viewer

from . import theme

BOX_H = 0.36        # mini-plot height, in units of the distance between node layers
BOX_W_MAX = 0.11    # mini-plot width at most, in units of the plot width (x in [0, 1])
BOX_FILL = 0.78     # share of an edge's horizontal slot its box fills
PAD = 0.14          # curve padding inside its box (fraction of the box)
STAGGER_ABOVE = 24  # edges in a layer above which the boxes sit on two staggered rows

EDGE_COLUMNS = ("l", "i", "j", "name", "fn", "score", "path_xs", "path_ys", "left", "right",
                "bottom", "top", "curve_xs", "curve_ys", "alpha", "curve_alpha", "width", "color",
                "label", "label_x", "label_y")
NODE_COLUMNS = ("l", "j", "x", "y", "name", "label", "label_y", "label_baseline", "mark", "kind",
                "fill", "line")
LABEL_COLUMNS = ("x", "y", "text", "tb")


def node_name(snapshot, l: int, j: int) -> str:
    """What the page calls node ``j`` of node layer ``l``: the column name at the inputs and the
    output, ``n<l>.<j>`` for hidden nodes (as the Study's history labels do)."""
    label = snapshot.node_labels[l][j] if j < len(snapshot.node_labels[l]) else ""
    return label or f"n{l}.{j}"


def edge_name(snapshot, l: int, i: int, j: int) -> str:
    return f"{node_name(snapshot, l, i)} \u2192 {node_name(snapshot, l + 1, j)}"


def node_positions(node_live: list[np.ndarray]) -> list[np.ndarray]:
    """x in [0, 1] of every node (live nodes spread evenly across the width, dead ones NaN)."""
    out = []
    for live in node_live:
        live = np.asarray(live, dtype=bool)
        xs = np.full(len(live), np.nan)
        n = int(live.sum())
        xs[live] = (np.arange(n) + 0.5) / max(n, 1)
        out.append(xs)
    return out


def _rescale_rows(v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Each row of ``v (E, P)`` mapped from its own [min, max] onto [lo, hi] (E,); a flat row
    lands in the middle."""
    vmin = np.nanmin(v, axis=1, keepdims=True)
    span = np.nanmax(v, axis=1, keepdims=True) - vmin
    flat = ~(span > 1e-12 * (1.0 + np.abs(vmin)))
    t = np.where(flat, 0.5, (v - vmin) / np.where(flat, 1.0, span))
    return lo[:, None] + (hi - lo)[:, None] * t


def _rows(a: np.ndarray) -> list[list[float]]:
    """Rows of a 2-D array as plain lists, rounded to 1e-4 of the plot (well below a pixel).

    Ragged columns go over the websocket as JSON this way; a list of numpy arrays would travel
    as one binary frame per row (840 frames for 210 edges), which costs the browser far more."""
    return np.round(a, 4).tolist()


def build_edge_data(snapshot) -> dict[str, list | np.ndarray]:
    """Column data for every live edge of ``snapshot`` (a NetworkSnapshot): one row per edge."""
    xs_nodes = node_positions(snapshot.node_live)
    importance = snapshot.edge_importance()
    parts = []
    for l in range(len(snapshot.dims) - 1):
        live = (np.asarray(snapshot.edge_live[l], dtype=bool)
                & np.asarray(snapshot.node_live[l], dtype=bool)[:, None]
                & np.asarray(snapshot.node_live[l + 1], dtype=bool)[None, :])
        ii, jj = np.nonzero(live)
        E = len(ii)
        if E == 0:
            continue
        cx = (np.arange(E) + 0.5) / E
        # Many edges: stagger the boxes on two rows, so each can be twice as wide.
        rows = 1 if E <= STAGGER_ABOVE else 2
        h = BOX_H if rows == 1 else BOX_H * 0.62
        half_w = np.full(E, min(rows * BOX_FILL / E, BOX_W_MAX) / 2)
        mid = l + 0.5 + (0.0 if rows == 1 else np.where(np.arange(E) % 2 == 0, -0.5, 0.5) * (h + 0.04))
        bottom, top = mid - h / 2 + np.zeros(E), mid + h / 2 + np.zeros(E)
        x0, x1 = xs_nodes[l][ii], xs_nodes[l + 1][jj]
        path_x = np.stack([x0, cx, cx, x1], axis=1)
        path_y = np.stack([np.full(E, float(l)), bottom, top, np.full(E, l + 1.0)], axis=1)
        cxs = np.asarray(snapshot.curve_x[l])[:, ii].T           # (E, P)
        cys = np.asarray(snapshot.curve_y[l])[:, ii, jj].T       # (E, P)
        px, py = 2 * half_w * PAD, h * PAD
        curve_x = _rescale_rows(cxs, cx - half_w + px, cx + half_w - px)
        curve_y = _rescale_rows(cys, bottom + py, top - py)
        sym = np.array([[s or "" for s in row] for row in snapshot.edge_symbolic[l]], dtype=object)
        sym = sym[ii, jj] if sym.size else np.full(E, "", dtype=object)
        imp = np.clip(np.nan_to_num(np.asarray(importance[l])[ii, jj]), 0.0, 1.0)
        score = np.asarray(snapshot.edge_score[l])[ii, jj]
        snapped = sym != ""
        names = [edge_name(snapshot, l, int(i), int(j)) for i, j in zip(ii, jj)]
        parts.append({
            "l": np.full(E, l), "i": ii, "j": jj, "name": names, "fn": sym.tolist(),
            "score": score.astype(float),
            "path_xs": _rows(path_x), "path_ys": _rows(path_y),
            "left": cx - half_w, "right": cx + half_w, "bottom": bottom, "top": top,
            "curve_xs": _rows(curve_x), "curve_ys": _rows(curve_y),
            "alpha": 0.12 + 0.88 * np.sqrt(imp), "curve_alpha": 0.35 + 0.65 * np.sqrt(imp),
            "width": 0.6 + 2.4 * imp,
            "color": np.where(snapped, theme.SYMBOLIC, theme.SPLINE).tolist(),
            "label": sym.tolist(), "label_x": cx, "label_y": top + 0.03,
        })
    if not parts:
        return {c: [] for c in EDGE_COLUMNS}
    out = {}
    for c in EDGE_COLUMNS:
        vals = [p[c] for p in parts]
        out[c] = (np.concatenate(vals) if isinstance(vals[0], np.ndarray)
                  else [v for part in vals for v in part])
    return out


def build_node_data(snapshot) -> dict[str, list | np.ndarray]:
    xs = node_positions(snapshot.node_live)
    depth = len(snapshot.dims) - 1
    cols: dict[str, list] = {c: [] for c in NODE_COLUMNS}
    for l, live in enumerate(snapshot.node_live):
        idx = np.flatnonzero(np.asarray(live, dtype=bool))
        kind = "input" if l == 0 else "output" if l == depth else "hidden"
        prod = np.asarray(snapshot.node_is_prod[l], dtype=bool)
        for j in idx:
            name = node_name(snapshot, l, int(j))
            cols["l"].append(l)
            cols["j"].append(int(j))
            cols["x"].append(float(xs[l][j]))
            cols["y"].append(float(l))
            cols["name"].append(name + (" (\u00d7 product)" if prod[j] else ""))
            cols["label"].append(name if kind != "hidden" else "")
            cols["label_y"].append(l - 0.12 if kind == "input" else l + 0.12)
            cols["label_baseline"].append("top" if kind == "input" else "bottom")
            cols["mark"].append("\u00d7" if prod[j] else "")
            cols["kind"].append(kind)
            cols["fill"].append("#ffffff" if not prod[j] else "#fff4e5")
            cols["line"].append(theme.INK)
    return cols


def build_label_data(edges: dict, nodes: dict) -> tuple[dict, dict, dict]:
    """Small text sources: (snapped edge names, input/output node names, product marks)."""
    def pick(d, keep, x, y, text, baseline):
        idx = [k for k, v in enumerate(keep) if v]
        return {"x": [float(d[x][k]) for k in idx], "y": [float(d[y][k]) for k in idx],
                "text": [d[text][k] for k in idx],
                "tb": [d[baseline][k] if baseline in d else "bottom" for k in idx]}

    edge = pick(edges, [bool(t) for t in edges["label"]], "label_x", "label_y", "label", "-")
    node = pick(nodes, [bool(t) for t in nodes["label"]], "x", "label_y", "label", "label_baseline")
    mark = pick(nodes, [bool(t) for t in nodes["mark"]], "x", "y", "mark", "-")
    return edge, node, mark


@dataclass(frozen=True)
class Selection:
    kind: str            # 'edge' | 'node'
    key: tuple           # (l, i, j) or (l, j)


class NetworkView(Viewer):
    """The clickable graph. ``selection`` is the clicked edge or node (or None)."""

    selection = param.ClassSelector(class_=Selection, allow_None=True, default=None)
    height = param.Integer(default=560, constant=True)

    def __init__(self, **params):
        super().__init__(**params)
        self.snapshot = None
        self.edges = ColumnDataSource({c: [] for c in EDGE_COLUMNS})
        self.nodes = ColumnDataSource({c: [] for c in NODE_COLUMNS})
        self.edge_labels = ColumnDataSource({c: [] for c in LABEL_COLUMNS})
        self.node_labels = ColumnDataSource({c: [] for c in LABEL_COLUMNS})
        self.marks = ColumnDataSource({c: [] for c in LABEL_COLUMNS})
        self._depth = None
        self._muted = False
        self.figure = self._make_figure()
        self.edges.selected.on_change("indices", self._on_edge_indices)
        self.nodes.selected.on_change("indices", self._on_node_indices)
        self.empty = pn.pane.HTML("", margin=(0, 10), styles={"color": theme.MUTED})
        self._pane = pn.pane.Bokeh(self.figure, sizing_mode="stretch_width", height=self.height)
        self._layout = pn.Column(self._pane, self.empty, sizing_mode="stretch_width")

    # ------------------------------------------------------------------ bokeh
    def _make_figure(self):
        fig = figure(x_range=Range1d(-0.03, 1.03), y_range=Range1d(-0.45, 2.45), tools="",
                     sizing_mode="stretch_width", height=self.height, **theme.FIG)
        fig.axis.visible = False
        fig.grid.visible = False
        src = self.edges
        paths = fig.multi_line("path_xs", "path_ys", source=src, line_color="color", line_alpha="alpha",
                               line_width="width", nonselection_line_alpha="alpha",
                               nonselection_line_color="color", selection_line_color=theme.SELECTED,
                               selection_line_alpha=1.0)
        boxes = fig.quad(left="left", right="right", bottom="bottom", top="top", source=src,
                         fill_color="#ffffff", fill_alpha=1.0, line_color=theme.RULE, line_width=1,
                         nonselection_fill_alpha=1.0, nonselection_fill_color="#ffffff",
                         nonselection_line_color=theme.RULE, nonselection_line_alpha=1.0,
                         selection_fill_color="#fff7ed", selection_fill_alpha=1.0,
                         selection_line_color=theme.SELECTED, selection_line_width=2)
        fig.multi_line("curve_xs", "curve_ys", source=src, line_color="color", line_alpha="curve_alpha",
                       line_width=1.6, nonselection_line_alpha="curve_alpha",
                       nonselection_line_color="color", selection_line_color=theme.SELECTED,
                       selection_line_alpha=1.0)
        # Text is costly to paint per row: the labels live in small sources of their own (snapped
        # edges, input/output names, product marks), not in one row per edge/node.
        fig.text("x", "y", text="text", source=self.edge_labels, text_align="center",
                 text_baseline="bottom", text_font_size="10px", text_color=theme.SYMBOLIC)
        nodes = fig.scatter("x", "y", source=self.nodes, size=15, fill_color="fill", line_color="line",
                            line_width=1.5, nonselection_fill_alpha=1.0, nonselection_line_alpha=1.0,
                            nonselection_fill_color="fill", nonselection_line_color="line",
                            selection_fill_color="#fff1e6", selection_line_color=theme.SELECTED,
                            selection_line_width=2.5)
        fig.text("x", "y", text="text", source=self.marks, text_align="center", text_baseline="middle",
                 text_font_size="13px", text_font_style="bold", text_color=theme.INK)
        fig.text("x", "y", text="text", source=self.node_labels, text_align="center",
                 text_baseline="tb", text_font_size="13px", text_color=theme.INK)
        # No hover tools: with the pointer resting on the graph, every live redraw would re-run
        # the hover inspection (the click gives the same details in the inspector).
        # Taps hit the mini-plot boxes and the nodes, not the paths: a path crosses other edges'
        # boxes, and a tap hitting two edges would select the wrong one.
        tap = TapTool(renderers=[boxes, nodes])
        fig.add_tools(tap)
        fig.toolbar.active_tap = tap
        fig.toolbar.active_scroll = None
        self.renderers = {"paths": paths, "boxes": boxes, "nodes": nodes}
        return fig

    # ------------------------------------------------------------------ updates
    def update(self, snapshot) -> None:
        """Redraw from a NetworkSnapshot (call on the session's event loop)."""
        self.snapshot = snapshot
        if snapshot is None:
            self._set_data({c: [] for c in EDGE_COLUMNS}, {c: [] for c in NODE_COLUMNS})
            self.empty.object = "Load data to see the network."
            return
        self.empty.object = ""
        edges, nodes = build_edge_data(snapshot), build_node_data(snapshot)
        depth = len(snapshot.dims) - 1
        if depth != self._depth:
            self._depth = depth
            self.figure.y_range.start, self.figure.y_range.end = -0.45, depth + 0.45
        self._set_data(edges, nodes)

    def _set_data(self, edges: dict, nodes: dict) -> None:
        self._muted = True
        try:
            old = self.edges.data
            same_rows = (len(old.get("l", ())) == len(edges["l"])
                         and np.array_equal(np.asarray(old["l"]), np.asarray(edges["l"]))
                         and np.array_equal(np.asarray(old["i"]), np.asarray(edges["i"]))
                         and np.array_equal(np.asarray(old["j"]), np.asarray(edges["j"])))
            self.edges.data = edges
            e_lab, n_lab, marks = build_label_data(edges, nodes)
            if e_lab != self.edge_labels.data:
                self.edge_labels.data = e_lab
            if n_lab != self.node_labels.data:
                self.node_labels.data = n_lab
            if marks != self.marks.data:
                self.marks.data = marks
            if len(self.nodes.data.get("l", ())) != len(nodes["l"]) or \
                    list(self.nodes.data.get("name", [])) != nodes["name"] or \
                    list(self.nodes.data.get("x", [])) != nodes["x"]:
                self.nodes.data = nodes
                self._restore_node_selection()
            if not same_rows:
                self._restore_edge_selection()
        finally:
            self._muted = False

    def _restore_edge_selection(self) -> None:
        sel = self.selection
        idx = self.edge_index(sel.key) if sel is not None and sel.kind == "edge" else None
        if idx is None and sel is not None and sel.kind == "edge":
            self.selection = None  # the edge is gone (pruned, new network)
        self.edges.selected.indices = [] if idx is None else [idx]

    def _restore_node_selection(self) -> None:
        sel = self.selection
        idx = self.node_index(sel.key) if sel is not None and sel.kind == "node" else None
        if idx is None and sel is not None and sel.kind == "node":
            self.selection = None
        self.nodes.selected.indices = [] if idx is None else [idx]

    def edge_index(self, key) -> int | None:
        d = self.edges.data
        l, i, j = key
        hit = np.flatnonzero((np.asarray(d["l"]) == l) & (np.asarray(d["i"]) == i) & (np.asarray(d["j"]) == j))
        return int(hit[0]) if len(hit) else None

    def node_index(self, key) -> int | None:
        d = self.nodes.data
        l, j = key
        hit = [n for n, (a, b) in enumerate(zip(d["l"], d["j"])) if a == l and b == j]
        return hit[0] if hit else None

    def select(self, sel: Selection | None) -> None:
        """Select from Python (keeps the page in step)."""
        self._muted = True
        try:
            self.selection = sel
            e = self.edge_index(sel.key) if sel is not None and sel.kind == "edge" else None
            n = self.node_index(sel.key) if sel is not None and sel.kind == "node" else None
            self.edges.selected.indices = [] if e is None else [e]
            self.nodes.selected.indices = [] if n is None else [n]
        finally:
            self._muted = False

    # ------------------------------------------------------------------ clicks
    def _on_edge_indices(self, attr, old, new) -> None:
        if self._muted:
            return
        if new:
            d = self.edges.data
            k = new[0]
            if k < len(d["l"]):
                self._muted = True
                try:
                    self.nodes.selected.indices = []
                finally:
                    self._muted = False
                self.selection = Selection("edge", (int(d["l"][k]), int(d["i"][k]), int(d["j"][k])))
        elif self.selection is not None and self.selection.kind == "edge" and not self.nodes.selected.indices:
            self.selection = None

    def _on_node_indices(self, attr, old, new) -> None:
        if self._muted:
            return
        if new:
            d = self.nodes.data
            k = new[0]
            if k < len(d["l"]):
                self._muted = True
                try:
                    self.edges.selected.indices = []
                finally:
                    self._muted = False
                self.selection = Selection("node", (int(d["l"][k]), int(d["j"][k])))
        elif self.selection is not None and self.selection.kind == "node" and not self.edges.selected.indices:
            self.selection = None

    def __panel__(self):
        return self._layout
