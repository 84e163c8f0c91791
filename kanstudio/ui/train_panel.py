"""Training: network and optimiser settings, Start / Pause / Stop, progress, grid refinement."""
from __future__ import annotations

import panel as pn
import param
from panel.viewable import Viewer

from . import theme
from .controller import Controller, fmt

_W = dict(sizing_mode="stretch_width", margin=(4, 6))


def needs_new_network(study) -> bool:
    """True when the settings ask for a different network than the current model (width, grid,
    k or seed changed), so Start has to build a fresh one first."""
    from kanstudio.core.model import default_width
    from kanstudio.core.network import format_width, parse_width

    m, s, ds = study.model, study.settings, study.dataset
    if m is None or ds is None:
        return False
    want = s.width or format_width(parse_width(default_width(ds.n_inputs)))
    return (format_width(parse_width(want)) != m.width_str or s.grid != m.grid or s.k != m.k
            or s.seed != m.seed)


class TrainPanel(Viewer):
    controller = param.ClassSelector(class_=Controller)

    def __init__(self, **params):
        super().__init__(**params)
        ctl = self.controller
        self._syncing = False
        self.width = pn.widgets.TextInput(label="Width", placeholder="auto", **_W)
        self.seed = pn.widgets.IntInput(label="Seed", value=0, start=0, **_W)
        self.grid = pn.widgets.IntInput(label="Grid intervals", value=5, start=1, end=1000, **_W)
        self.k = pn.widgets.IntInput(label="Spline order k", value=3, start=1, end=10, **_W)
        self.lamb = pn.widgets.FloatInput(label="\u03bb sparsity", value=1e-3, start=0.0, step=1e-3, format="0[.]00000", **_W)
        self.lamb_l1 = pn.widgets.FloatInput(label="\u03bc\u2081 (L1)", value=1.0, start=0.0, step=0.1, **_W)
        self.lamb_entropy = pn.widgets.FloatInput(label="\u03bc\u2082 (entropy)", value=1.0, start=0.0, step=0.1, **_W)
        self.steps = pn.widgets.IntInput(label="Steps", value=50, start=1, end=10**7, **_W)
        self.opt = pn.widgets.Select(label="Optimiser", options={"LBFGS": "lbfgs", "Adam": "adam"}, **_W)
        self.lr = pn.widgets.FloatInput(label="Learning rate", value=None, start=0.0, placeholder="default", **_W)
        self.start = pn.widgets.Button(label="\u25b6 Start", color="primary", **_W)
        self.pause = pn.widgets.Button(label="\u275a\u275a Pause", color="default", disabled=True, **_W)
        self.stop = pn.widgets.Button(label="\u25a0 Stop", color="default", disabled=True, **_W)
        self.new_net = pn.widgets.Button(label="New network", color="light", **_W)
        self.progress = pn.indicators.Progress(value=0, max=1000, bar_color="primary", height=12,
                                               sizing_mode="stretch_width", margin=(8, 6, 2, 6))
        self.status = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 6),
                                   styles={"font-size": "12.5px", "color": theme.MUTED})
        self.start.on_click(self._on_start)
        self.pause.on_click(self._on_pause)
        self.stop.on_click(self._on_stop)
        self.new_net.on_click(self._on_new)
        ctl.param.watch(self._on_settings, "settings")
        ctl.param.watch(self._on_state, ["training", "paused", "events", "busy"])
        ctl.param.watch(self._on_data, "data_version")
        self._on_state()

        self._layout = pn.Column(
            pn.Row(self.width, self.seed),
            pn.Row(self.grid, self.k),
            pn.Row(self.lamb, self.lamb_l1, self.lamb_entropy),
            pn.Row(self.steps, self.opt, self.lr),
            pn.Row(self.start, self.pause, self.stop),
            self.progress, self.status,
            self.new_net,
            sizing_mode="stretch_width",
        )

    # ------------------------------------------------------------------ settings <-> widgets
    def settings_kw(self) -> dict:
        w = (self.width.value or "").strip()
        return {"width": w or None, "grid": int(self.grid.value), "k": int(self.k.value),
                "seed": int(self.seed.value), "steps": int(self.steps.value), "opt": self.opt.value,
                "lr": (float(self.lr.value) if self.lr.value not in (None, 0) else None),
                "lamb": float(self.lamb.value or 0.0), "lamb_l1": float(self.lamb_l1.value or 0.0),
                "lamb_entropy": float(self.lamb_entropy.value or 0.0)}

    def _on_settings(self, event=None) -> None:
        s = self.controller.settings
        if s is None:
            return
        self._syncing = True
        try:
            self.width.value = s.width or ""
            self.grid.value, self.k.value, self.seed.value = s.grid, s.k, s.seed
            self.steps.value, self.opt.value, self.lr.value = s.steps, s.opt, s.lr
            self.lamb.value, self.lamb_l1.value, self.lamb_entropy.value = s.lamb, s.lamb_l1, s.lamb_entropy
        finally:
            self._syncing = False

    def _on_data(self, *_) -> None:
        from kanstudio.core.model import default_width
        from kanstudio.core.network import format_width, parse_width

        ds = self.controller.dataset
        if ds is not None:
            self.width.placeholder = "auto: " + format_width(parse_width(default_width(ds.n_inputs)))

    # ------------------------------------------------------------------ actions
    def _on_start(self, _=None) -> None:
        ctl = self.controller
        if ctl.training:
            return
        kw = self.settings_kw()
        study = ctl.study

        def job():
            study.update_settings(**kw)
            fresh = needs_new_network(study)
            if fresh:
                study.reset_model()
            study.start_training(kw["steps"])
            return fresh

        def done(fresh):
            if fresh:
                ctl.notify("info", "Built a new network for the changed width/grid/k/seed.")
            ctl.poll()

        ctl.run("Start training", job, done)

    def _on_pause(self, _=None) -> None:
        ctl = self.controller
        st = ctl.study
        if ctl.paused:
            ctl.run("Resume", st.resume_training, edit=False)
        else:
            ctl.run("Pause", st.pause_training, edit=False)

    def _on_stop(self, _=None) -> None:
        ctl = self.controller
        st = ctl.study
        ctl.run("Stop", lambda: st.stop_training(wait=True), edit=False)

    def _on_new(self, _=None) -> None:
        ctl = self.controller
        st = ctl.study
        kw = self.settings_kw()

        def job():
            st.update_settings(**kw)
            st.reset_model()

        ctl.run("New network", job)

    # ------------------------------------------------------------------ state
    def _on_state(self, *_) -> None:
        ctl = self.controller
        tr, paused = ctl.training, ctl.paused
        self.start.disabled = tr
        self.pause.disabled = not tr
        self.stop.disabled = not tr
        self.pause.label = "\u25b6 Resume" if paused else "\u275a\u275a Pause"
        self.new_net.disabled = tr
        ev = ctl.events[-1] if ctl.events else None
        if ev is None:
            self.progress.value = 0
            total = ctl.settings.steps if ctl.settings is not None else 0
            self.status.object = ("Ready to train." if not tr else
                                  f"<b style='color:{theme.INK}'>Starting</b> \u00b7 step 0/{total}")
            return
        total = max(int(ev.total or 0), 1)
        self.progress.value = int(1000 * min(ev.step, total) / total)
        self.progress.bar_color = "secondary" if paused else ("primary" if tr else "success")
        state = "Paused" if paused else ("Training" if tr else {"done": "Done", "stopped": "Stopped",
                                                               "failed": "Failed"}.get(ev.kind, "Idle"))
        last = next((e for e in reversed(ctl.events) if e.train_loss == e.train_loss), ev)
        self.status.object = (f"<b style='color:{theme.INK}'>{state}</b> \u00b7 step {ev.step}/{ev.total}"
                              f" \u00b7 train RMSE {fmt(last.train_loss, 3)} \u00b7 test RMSE "
                              f"{fmt(last.test_loss, 3)} \u00b7 {ev.elapsed:.1f} s")

    def __panel__(self):
        return self._layout
