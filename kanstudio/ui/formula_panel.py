"""The formula: rendered math (MathJax, served locally), test-split figures next to the network's,
copy-LaTeX, downloads, study files, and the Pareto list of simpler/more exact formulas."""
from __future__ import annotations

import html
import io
import math

import pandas as pd
import panel as pn
import param
from panel.viewable import Viewer

from . import theme
from .controller import Controller, describe_error, fmt
from .uploader import Uploader


_COPY_JS = """
const text = src.value;
const done = () => { btn.label = 'Copied \u2713'; setTimeout(() => { btn.label = 'Copy LaTeX'; }, 1500); };
if (navigator.clipboard && window.isSecureContext) {
  navigator.clipboard.writeText(text).then(done, () => {});
} else {
  const ta = document.createElement('textarea');
  ta.value = text; document.body.appendChild(ta); ta.select();
  try { document.execCommand('copy'); done(); } finally { document.body.removeChild(ta); }
}
"""


def display_latex(res) -> str:
    """``target = expr`` as LaTeX."""
    from kanstudio.core.export import latex_name

    return f"{latex_name(res.target_name)} = {res.latex()}"


def _safe_stem(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_" else "_" for c in (name or "formula"))
    return keep.strip("_") or "formula"


class FormulaPanel(Viewer):
    controller = param.ClassSelector(class_=Controller)

    def __init__(self, **params):
        super().__init__(**params)
        ctl = self.controller
        self._shown = None  # FormulaResult on display (the current one or a Pareto pick)
        self._pareto_pick = None
        self.status = pn.pane.HTML("", margin=(0, 8), styles={"font-size": "12.5px", "color": theme.MUTED})
        self.math = pn.pane.LaTeX("", renderer="mathjax", sizing_mode="stretch_width", margin=(4, 8),
                                  styles={"overflow-x": "auto", "overflow-y": "auto", "max-height": "240px",
                                          "font-size": "16px"})
        self.stats = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 8), styles={"font-size": "13px"})
        self.back = pn.widgets.Button(label="Show current formula", color="light", visible=False,
                                      width=180, margin=(0, 8))
        self.back.on_click(lambda _: self._show_pareto(None))
        self.latex_text = pn.widgets.TextAreaInput(label="", value="", height=64, sizing_mode="stretch_width",
                                                   margin=(4, 8), stylesheets=[":host textarea { font-family: "
                                                                               + theme.MONO + "; font-size: 12px; }"])
        self.copy = pn.widgets.Button(label="Copy LaTeX", color="default", width=120, margin=(4, 8))
        self.copy.js_on_click(args={"src": self.latex_text, "btn": self.copy}, code=_COPY_JS)

        dl = dict(color="light", margin=(2, 4), width=120)
        self.dl_tex = pn.widgets.FileDownload(callback=self._tex, filename="formula.tex", label="LaTeX (.tex)", **dl)
        self.dl_py = pn.widgets.FileDownload(callback=self._py, filename="formula.py", label="Python (.py)", **dl)
        self.dl_json = pn.widgets.FileDownload(callback=self._json, filename="formula.json", label="JSON", **dl)
        self.dl_csv = pn.widgets.FileDownload(callback=self._csv, filename="predictions.csv",
                                              label="Predictions (.csv)", **dl)
        self.dl_study = pn.widgets.FileDownload(callback=self._study, filename="study.kanstudio",
                                                label="Study file", **dl)
        self.study_uploader = Uploader(self._on_study_upload, accepted_filetypes=[], layout="compact", height=76,
                                       sizing_mode="stretch_width", margin=(4, 8, 10, 8))

        self.pareto_btn = pn.widgets.Button(label="Compute Pareto front", color="default", width=190,
                                            margin=(4, 8))
        self.pareto_btn.on_click(lambda _: self.controller.compute_pareto())
        self.pareto_status = pn.pane.HTML("", margin=(0, 8), styles={"font-size": "12.5px", "color": theme.MUTED})
        self.pareto_table = pn.widgets.Tabulator(
            pd.DataFrame(columns=["complexity", "R\u00b2 test", "RMSE test", "formula"]), disabled=True,
            show_index=False, selectable=1, height=170, sizing_mode="stretch_width", layout="fit_data_stretch",
            theme="simple", stylesheets=[theme.TABLE_CSS], visible=False)
        self.pareto_table.param.watch(self._on_pareto_pick, "selection")

        ctl.param.watch(self._on_formula, ["formula", "formula_status"])
        ctl.param.watch(self._on_pareto, ["pareto", "pareto_status"])
        ctl.param.watch(self._on_training, "training")
        self._on_formula()

        self._layout = pn.Column(
            self.status, self.math, self.stats, self.back,
            pn.Row(self.latex_text, self.copy, sizing_mode="stretch_width"),
            pn.pane.HTML("<div class='ks-section'>Download</div>", margin=(6, 8, 0, 8), stylesheets=[theme.CSS]),
            pn.FlexBox(self.dl_tex, self.dl_py, self.dl_json, self.dl_csv, self.dl_study,
                       sizing_mode="stretch_width", margin=(0, 4)),
            pn.pane.HTML("<span class='ks-muted'>Open a study file (.kanstudio):</span>", margin=(4, 8, 0, 8),
                         stylesheets=[theme.CSS]),
            self.study_uploader,
            pn.Row(self.pareto_btn, self.pareto_status),
            self.pareto_table,
            sizing_mode="stretch_width",
        )

    # ------------------------------------------------------------------ display
    def _on_formula(self, *_) -> None:
        ctl = self.controller
        self.status.object = html.escape(ctl.formula_status)
        if self._pareto_pick is None:
            self._display(ctl.formula)

    def _on_training(self, *_) -> None:
        tr = self.controller.training
        for w in (self.dl_tex, self.dl_py, self.dl_json, self.dl_csv, self.dl_study, self.pareto_btn):
            w.disabled = tr
        self.math.styles = dict(self.math.styles, opacity="0.4" if tr else "1")
        self.stats.styles = dict(self.stats.styles, opacity="0.4" if tr else "1")
        if tr:
            self.status.object = "Training\u2026 the formula follows when training stops."

    def _display(self, res) -> None:
        self._shown = res
        if res is None:
            self.math.object = ""
            self.stats.object = ""
            self.latex_text.value = ""
            return
        try:
            tex = display_latex(res)
        except Exception as e:  # noqa: BLE001
            tex = ""
            self.status.object = f"Could not render the formula: {html.escape(describe_error(e))}"
        self.math.object = f"$${tex}$$" if tex else ""
        self.latex_text.value = tex
        kind = ("<span style='color:%s'>fully symbolic</span>" % theme.SYMBOLIC if res.exact else
                "contains learned spline terms \u03c6 \u2014 snap them to get a closed form")
        row = "<tr><td style='padding:1px 10px 1px 0'>{}</td><td style='padding:1px 10px'>{}</td>" \
              "<td style='padding:1px 10px'>{}</td></tr>"
        self.stats.object = (
            "<table style='border-collapse:collapse'>"
            f"<tr style='color:{theme.MUTED}'><td></td><td style='padding:1px 10px'>R\u00b2 test</td>"
            "<td style='padding:1px 10px'>RMSE test</td></tr>"
            + row.format("<b>formula</b>", fmt(res.r2_test, 6), fmt(res.rmse_test))
            + row.format("network", fmt(res.network_r2_test, 6), fmt(res.network_rmse_test))
            + "</table>"
            f"<div style='color:{theme.MUTED};margin-top:3px'>complexity {res.complexity} \u00b7 "
            f"{getattr(res, 'n_edges', 0)} live edges \u00b7 {kind}</div>")

    # ------------------------------------------------------------------ pareto
    def _on_pareto(self, *_) -> None:
        ctl = self.controller
        self.pareto_status.object = html.escape(ctl.pareto_status)
        rows = [{"complexity": int(r.complexity), "R\u00b2 test": fmt(r.r2_test, 6), "RMSE test": fmt(r.rmse_test),
                 "formula": _short(r.sympy_str())} for r in ctl.pareto]
        self.pareto_table.value = pd.DataFrame(rows, columns=["complexity", "R\u00b2 test", "RMSE test", "formula"])
        self.pareto_table.selection = []
        self.pareto_table.visible = bool(rows)
        if self._pareto_pick is not None:
            self._show_pareto(None)

    def _on_pareto_pick(self, event) -> None:
        sel = event.new
        self._show_pareto(sel[0] if sel else None)

    def _show_pareto(self, k) -> None:
        ctl = self.controller
        if k is None or k >= len(ctl.pareto):
            self._pareto_pick = None
            self.back.visible = False
            if self.pareto_table.selection:
                self.pareto_table.selection = []
            self._display(ctl.formula)
            return
        self._pareto_pick = k
        self.back.visible = True
        self._display(ctl.pareto[k])
        self.status.object = f"Showing Pareto formula {k + 1} of {len(ctl.pareto)} (complexity {ctl.pareto[k].complexity})."

    # ------------------------------------------------------------------ downloads
    def _need(self):
        res = self._shown
        if res is None:
            self.controller.notify("warning", "There is no formula yet: load data and train first.")
        return res

    def _stem(self) -> str:
        ds = self.controller.dataset
        return _safe_stem(ds.name if ds is not None else "formula")

    def _tex(self):
        res = self._need()
        self.dl_tex.filename = f"{self._stem()}_formula.tex"
        return io.StringIO(res.tex_document() if res is not None else "")

    def _py(self):
        res = self._need()
        self.dl_py.filename = f"{self._stem()}_formula.py"
        return io.StringIO(res.python_source() if res is not None else "")

    def _json(self):
        import json

        res = self._need()
        self.dl_json.filename = f"{self._stem()}_formula.json"
        return io.StringIO(json.dumps(res.to_json(), indent=2, default=_json_default) if res is not None else "{}")

    def _csv(self):
        ctl = self.controller
        self.dl_csv.filename = f"{self._stem()}_predictions.csv"
        try:
            return io.StringIO(ctl.study.predictions_csv())
        except Exception as e:  # noqa: BLE001
            ctl.notify("error", f"Predictions: {describe_error(e)}")
            return io.StringIO("")

    def _study(self):
        ctl = self.controller
        self.dl_study.filename = f"{self._stem()}.kanstudio"
        try:
            return io.BytesIO(ctl.study.to_bytes())
        except Exception as e:  # noqa: BLE001
            ctl.notify("error", f"Study file: {describe_error(e)}")
            return io.BytesIO(b"")

    # ------------------------------------------------------------------ study upload
    @property
    def study_drop(self) -> pn.widgets.FileDropper:
        """The study-file drop zone in the page now (a fresh one after each file)."""
        return self.study_uploader.dropper

    def _on_study_upload(self, name: str, raw: bytes) -> None:
        from kanstudio.core.study import Study

        ctl = self.controller

        def done(new):
            ctl.replace_study(new)
            ctl.notify("success", f"Opened study {name}.")

        ctl.run(f"Opening {name}", lambda: Study.from_bytes(raw), done, slow=True, edit=False)

    def __panel__(self):
        return self._layout


def _short(s: str, n: int = 90) -> str:
    return s if len(s) <= n else s[: n - 1] + "\u2026"


def _json_default(o):
    try:
        f = float(o)
        return None if math.isnan(f) else f
    except Exception:  # noqa: BLE001
        return str(o)
