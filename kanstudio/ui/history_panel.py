"""History: Undo / Redo (also Ctrl+Z / Ctrl+Shift+Z, Ctrl+Y) and the list of edits."""
from __future__ import annotations

import html

import panel as pn
import param
from panel.custom import JSComponent
from panel.viewable import Viewer

from . import theme
from .controller import Controller


class KeyShortcuts(JSComponent):
    """An invisible element listening on the page for Ctrl/Cmd+Z (undo) and Ctrl/Cmd+Shift+Z or
    Ctrl/Cmd+Y (redo); each press bumps a counter that Python watches. Keys typed into a text
    field keep their own meaning."""

    undo = param.Integer(default=0)
    redo = param.Integer(default=0)

    _esm = """
    export function render({ model, el }) {
      el.style.display = 'none';
      const onKey = (e) => {
        if (!(e.ctrlKey || e.metaKey) || e.altKey) return;
        const key = (e.key || '').toLowerCase();
        if (key !== 'z' && key !== 'y') return;
        const t = e.composedPath ? e.composedPath()[0] : e.target;
        if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
        e.preventDefault();
        if (key === 'y' || e.shiftKey) { model.redo = model.redo + 1; } else { model.undo = model.undo + 1; }
      };
      document.addEventListener('keydown', onKey);
      model.on('remove', () => document.removeEventListener('keydown', onKey));
    }
    """


class HistoryPanel(Viewer):
    controller = param.ClassSelector(class_=Controller)

    def __init__(self, **params):
        super().__init__(**params)
        ctl = self.controller
        self.undo = pn.widgets.Button(label="\u21b6 Undo", color="default", disabled=True,
                                      sizing_mode="stretch_width", description="Ctrl+Z")
        self.redo = pn.widgets.Button(label="\u21b7 Redo", color="default", disabled=True,
                                      sizing_mode="stretch_width", description="Ctrl+Shift+Z")
        self.undo.on_click(lambda _: self.do_undo())
        self.redo.on_click(lambda _: self.do_redo())
        self.keys = KeyShortcuts(height=0, width=0, margin=0)
        # Two quick presses can reach Python as one change (0 -> 2): each counted press is a step.
        self.keys.param.watch(lambda e: self._repeat(self.do_undo, e), "undo")
        self.keys.param.watch(lambda e: self._repeat(self.do_redo, e), "redo")
        self.list = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 8),
                                 styles={"font-size": "12.5px", "max-height": "220px", "overflow-y": "auto"})
        ctl.param.watch(self._update, ["history", "history_index", "can_undo", "can_redo", "training"])
        self._update()
        self._layout = pn.Column(pn.Row(self.undo, self.redo), self.list, self.keys, sizing_mode="stretch_width")

    @staticmethod
    def _repeat(step, event) -> None:
        for _ in range(max(1, min(int(event.new) - int(event.old or 0), 50))):
            step()

    def do_undo(self) -> None:
        ctl = self.controller
        st = ctl.study
        ctl.run("Undo", st.undo, self._said("Undid"))

    def do_redo(self) -> None:
        ctl = self.controller
        st = ctl.study
        ctl.run("Redo", st.redo, self._said("Redid"))

    def _said(self, verb: str):
        def done(label):
            if label:
                self.controller.notify("info", f"{verb}: {label}")
        return done

    def _update(self, *_) -> None:
        ctl = self.controller
        self.undo.disabled = not ctl.can_undo or ctl.training
        self.redo.disabled = not ctl.can_redo or ctl.training
        labels, idx = ctl.history, ctl.history_index
        if not labels:
            self.list.object = f"<span style='color:{theme.MUTED}'>No edits yet.</span>"
            return
        items = []
        for n, label in enumerate(labels):
            style = ("color:%s;text-decoration:line-through" % theme.MUTED if n >= idx else
                     "font-weight:600" if n == idx - 1 else "")
            items.append(f"<li style='{style}'>{html.escape(label)}</li>")
        self.list.object = f"<ol style='margin:2px 0;padding-left:22px'>{''.join(items)}</ol>"

    def __panel__(self):
        return self._layout
