"""The live train/test loss curve (RMSE, log scale) of the current training run."""
from __future__ import annotations

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool, Legend
from bokeh.plotting import figure
from panel.viewable import Viewer

from . import theme
from .controller import Controller


def loss_columns(events) -> dict[str, np.ndarray]:
    """step, train, test arrays of the events that carry a positive finite loss."""
    ev = [e for e in events if e.kind in ("progress", "done", "stopped")]
    step = np.array([e.step for e in ev], dtype=float)
    train = np.array([e.train_loss for e in ev], dtype=float)
    test = np.array([e.test_loss for e in ev], dtype=float)
    train[~(train > 0)] = np.nan
    test[~(test > 0)] = np.nan
    return {"step": step, "train": train, "test": test}


class LossView(Viewer):
    controller = param.ClassSelector(class_=Controller)

    def __init__(self, **params):
        super().__init__(**params)
        self.source = ColumnDataSource(loss_columns([]))
        fig = figure(y_axis_type="log", height=230, sizing_mode="stretch_width", tools="",
                     x_axis_label="step", y_axis_label="RMSE", **theme.FIG)
        theme.style_axes(fig)
        r1 = fig.line("step", "train", source=self.source, color=theme.TRAIN, line_width=2)
        r2 = fig.line("step", "test", source=self.source, color=theme.TEST, line_width=2, line_dash="dashed")
        fig.add_layout(Legend(items=[("train", [r1]), ("test", [r2])], location="top_right",
                              border_line_color=None, background_fill_alpha=0.7, label_text_font_size="11px",
                              label_text_color=theme.MUTED, glyph_height=10, spacing=2, padding=4))
        fig.add_tools(HoverTool(renderers=[r1], tooltips=[("step", "@step"), ("train", "@train{0.0000e}"),
                                                          ("test", "@test{0.0000e}")], mode="vline"))
        theme.fixed_width_yaxis(fig, log=True, width=6)
        self.figure = fig
        self.controller.param.watch(self._update, "events")
        self._pane = pn.pane.Bokeh(fig, sizing_mode="stretch_width", height=230)

    def _update(self, *_) -> None:
        self.source.data = loss_columns(self.controller.events)

    def __panel__(self):
        return self._pane
