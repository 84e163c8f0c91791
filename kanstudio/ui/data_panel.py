"""Data: pick a built-in example or upload a CSV, preview it, choose target, inputs and test split.

A bad file leaves the previously loaded data (and model) in place; the reason shows in the page.
"""
from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import panel as pn
import param
from panel.viewable import Viewer

from . import theme
from .controller import LIMITS, Controller
from .uploader import Uploader

_LAWS = {
    "kan_paper.csv": "f = exp(sin(\u03c0x) + y\u00b2)",
    "product.csv": "F = m\u00b7a",
    "coulomb.csv": "F = q\u2081q\u2082 / (4\u03c0\u03b5r\u00b2)",
    "noisy_pendulum.csv": "T = 2\u03c0\u221a(L/g), 1 % noise",
    "irrelevant_inputs.csv": "y = sin(\u03c0x\u2081) + x\u2083\u00b2, 3 distractors",
}


def builtin_datasets() -> dict[str, Path]:
    """{label: path} of the example CSVs, kan_paper.csv first."""
    try:
        from kanstudio.assets import dataset_paths

        files = dataset_paths()
    except (ImportError, FileNotFoundError):
        return {}
    files = sorted(files, key=lambda p: (p.name != "kan_paper.csv", p.name))
    return {(f"{p.stem}  \u2014  {_LAWS[p.name]}" if p.name in _LAWS else p.stem): p for p in files}


_TABLE_CSS = f"""
:host {{ overflow: auto; }}
table {{ border-collapse: collapse; font-size: 12px; font-family: {theme.MONO}; width: 100%; }}
th {{ background: #f3f5f9; font-family: {theme.FONT}; font-weight: 600; text-align: right; padding: 3px 6px;
      position: sticky; top: 0; }}
td {{ text-align: right; padding: 2px 6px; border-top: 1px solid #eef1f5; white-space: nowrap; }}
tbody th {{ text-align: left; background: #fafbfc; }}
"""


def _table(df: pd.DataFrame, height: int, index: bool = False, digits: int = 6) -> pn.pane.DataFrame:
    """A plain HTML table (cheap, no JavaScript table library needed for a preview)."""
    return pn.pane.DataFrame(df, index=index, border=0, sizing_mode="stretch_width", max_height=height,
                             stylesheets=[_TABLE_CSS], margin=(4, 10), float_format=lambda v: f"{v:.{digits}g}")


_MAX_PREVIEW_ROWS = 6
_OWN = "\u2014 choose an example \u2014"


class DataPanel(Viewer):
    """Example picker, CSV upload, preview and roles."""

    controller = param.ClassSelector(class_=Controller)

    def __init__(self, **params):
        super().__init__(**params)
        ctl = self.controller
        self._examples = builtin_datasets()
        self._source = None        # what the current data was read from (path or bytes)
        self._source_name = None
        self._columns: list[str] = []
        self._kinds: dict[str, str] = {}
        self._loading_roles = False

        self.example = pn.widgets.Select(label="Example data", options=[_OWN, *self._examples], value=_OWN,
                                         sizing_mode="stretch_width")
        self.example.param.watch(self._on_example, "value")
        mb = int(LIMITS["max_upload_mb"])
        self.uploader = Uploader(
            self._on_upload, accepted_filetypes=[".csv", ".tsv", ".txt", "text/csv", "text/plain"],
            max_file_size=f"{mb}MB", chunk_size=4_000_000, layout="compact",
            sizing_mode="stretch_width", height=70, margin=(4, 10))
        self.target = pn.widgets.Select(label="Target", options=[], sizing_mode="stretch_width")
        self.inputs = pn.widgets.MultiChoice(label="Inputs", options=[], sizing_mode="stretch_width",
                                             solid=False)
        self.test_fraction = pn.widgets.FloatSlider(label="Test fraction", start=0.0, end=0.5, step=0.05,
                                                    value=0.2, sizing_mode="stretch_width")
        self.apply = pn.widgets.Button(label="Apply roles", color="default", sizing_mode="stretch_width",
                                       disabled=True)
        self.apply.on_click(self._on_apply)
        for w in (self.target, self.inputs, self.test_fraction):
            w.param.watch(self._on_roles_edit, "value")
        self.target.param.watch(self._on_target_edit, "value")
        self.summary = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10),
                                    styles={"font-size": "13px"})
        self.preview = _table(pd.DataFrame(), 190)
        self.describe = _table(pd.DataFrame(), 190, index=True, digits=4)
        self.preview_tabs = pn.Tabs(("First rows", self.preview), ("Summary", self.describe),
                                    sizing_mode="stretch_width", dynamic=True)
        ctl.param.watch(self._on_data, "data_version")
        ctl.param.watch(self._on_new_study, "study_version")
        self._unit_inputs: dict[str, pn.widgets.TextInput] = {}
        self.units_box = pn.FlexBox(sizing_mode="stretch_width", margin=(0, 4))
        self.units_title = pn.pane.HTML(
            "<div class='ks-section'>Units <span class='ks-muted'>(optional, e.g. m/s; used by Discover "
            "when every column has one)</span></div>", margin=(6, 10, 0, 10), stylesheets=[theme.CSS])

        self._layout = pn.Column(
            self.example,
            pn.pane.HTML(f"<span class='ks-muted'>or upload a CSV (up to {mb} MB)</span>",
                         margin=(0, 10), stylesheets=[theme.CSS]),
            self.uploader,
            self.summary,
            self.preview_tabs,
            self.target, self.inputs, self.test_fraction, self.apply,
            self.units_title, self.units_box,
            sizing_mode="stretch_width",
        )

    # ------------------------------------------------------------------ loading
    def load_initial(self, data=None, target=None) -> None:
        """Open on ``data`` (a CSV path) or the first built-in example."""
        if data is not None:
            path = Path(data)
            self._load(path, path.name, target=target)
        elif self._examples:
            label = next(iter(self._examples))
            self._load(self._examples[label], self._examples[label].name, target=target)

    def _on_example(self, event) -> None:
        if self._loading_roles or event.new is None or event.new == _OWN:
            return
        path = self._examples.get(event.new)
        if path is not None:
            self._load(path, path.name)

    @property
    def dropper(self) -> pn.widgets.FileDropper:
        """The drop zone in the page now (a fresh one after each file)."""
        return self.uploader.dropper

    def _on_upload(self, name: str, raw: bytes) -> None:
        limit = int(LIMITS["max_upload_mb"]) * 2**20
        if len(raw) > limit:
            self.controller.notify("error", f"{name} is {len(raw) / 2**20:.0f} MB; this server accepts "
                                            f"files up to {LIMITS['max_upload_mb']} MB.")
            return
        self._load(raw, name)

    def _load(self, source, filename: str, target=None, inputs=None, test_fraction=None) -> None:
        from kanstudio.core.csvread import sniff_columns

        ctl = self.controller
        study = ctl.study
        stem = Path(filename).stem
        max_bytes = int(LIMITS["max_upload_mb"]) * 2**20
        kw = {"name": stem}
        if target is not None:
            kw["target"] = target
        if inputs is not None:
            kw["inputs"] = list(inputs)
        if test_fraction is not None:
            kw["test_fraction"] = test_fraction

        def job():
            table = sniff_columns(source, max_bytes=max_bytes)
            study.load_data(source, **kw)
            return table

        def done(table):
            self._source, self._source_name = source, filename
            self._columns = [str(c) for c in table.columns]
            self._kinds = dict(table.attrs.get("kinds", {}))
            self.preview.object = table.head(_MAX_PREVIEW_ROWS).reset_index(drop=True)
            ctl.notify("success", f"Loaded {filename}: {len(table):,} rows, {len(table.columns)} columns.")

        big = isinstance(source, (bytes, bytearray)) and len(source) > 2**20
        size = f" ({len(source) / 2**20:.1f} MB)" if big else ""
        ctl.run(f"Loading {filename}{size}", job, done, slow=True)

    # ------------------------------------------------------------------ roles
    def _numeric_columns(self) -> list[str]:
        return [c for c in self._columns if self._kinds.get(c, "numeric") in ("numeric",)]

    def _on_data(self, *_) -> None:
        ds = self.controller.dataset
        if ds is None:
            self.summary.object = "<span class='ks-muted'>No data loaded.</span>"
            return
        numeric = self._numeric_columns() or list(ds.frame.columns)
        self._loading_roles = True
        try:
            # the example picker shows the example in use, or nothing for the scientist's own data
            self.example.value = next((label for label, p in self._examples.items() if p.stem == ds.name), _OWN)
            self.target.options = numeric
            self.target.value = ds.target
            self.inputs.options = [c for c in numeric if c != ds.target]
            self.inputs.value = list(ds.inputs)
            self.test_fraction.value = float(ds.test_fraction)
            self.apply.disabled = True
            self.apply.color = "default"
        finally:
            self._loading_roles = False
        train, test = ds.split_indices()
        warn = "".join(f"<li>{html.escape(w)}</li>" for w in ds.warnings)
        self.summary.object = (
            f"<div><b>{html.escape(ds.name)}</b> \u00b7 {ds.n_rows:,} rows \u00b7 "
            f"{len(train):,} train / {len(test):,} test<br>"
            f"<span style='color:{theme.MUTED}'>{html.escape(', '.join(ds.inputs))} \u2192 "
            f"<b>{html.escape(ds.target)}</b></span>"
            + (f"<ul style='color:{theme.LEVEL_COLORS['warning']};margin:4px 0 0 0;padding-left:18px'>"
               f"{warn}</ul>" if warn else "") + "</div>")
        desc = ds.describe()
        self.describe.object = desc
        self._build_unit_inputs(ds)
        if self._source is None:  # first load came from elsewhere (a study file)
            self.preview.object = ds.frame.head(_MAX_PREVIEW_ROWS).reset_index(drop=True)

    # ------------------------------------------------------------------ units
    def _build_unit_inputs(self, ds) -> None:
        """One text field per input and the target; a column keeps its units across loads."""
        cols = [*ds.inputs, ds.target]
        if list(self._unit_inputs) == cols:
            return
        units = self.controller.units or {}
        fields = {}
        for c in cols:
            w = self._unit_inputs.get(c) or pn.widgets.TextInput(
                name=c, value=str(units.get(c, "")), placeholder="unknown", width=100, margin=(2, 6))
            if c not in self._unit_inputs:
                w.param.watch(self._on_unit_edit, "value")
            fields[c] = w
        self._unit_inputs = fields
        self.units_box.objects = list(fields.values())

    def _on_unit_edit(self, *_) -> None:
        ctl = self.controller
        st = ctl.study
        units = dict(ctl.units or {})
        for c, w in self._unit_inputs.items():
            units[c] = (w.value or "").strip()
        ctl.run("Units", lambda: st.set_units(units), edit=False)

    def _on_new_study(self, *_) -> None:
        """A study file replaced the Study: its dataset has no source file here."""
        self._source = self._source_name = None
        self._columns, self._kinds = [], {}
        self._unit_inputs = {}  # rebuilt from the opened study's units

    def _on_target_edit(self, event) -> None:
        if self._loading_roles:
            return
        numeric = self._numeric_columns() or list(self.target.options)
        others = [c for c in numeric if c != event.new]
        self._loading_roles = True
        try:
            self.inputs.options = others
            self.inputs.value = [c for c in self.inputs.value if c in others] or others
        finally:
            self._loading_roles = False

    def _on_roles_edit(self, event) -> None:
        if self._loading_roles:
            return
        ds = self.controller.dataset
        changed = ds is None or (self.target.value != ds.target or list(self.inputs.value) != list(ds.inputs)
                                 or abs(self.test_fraction.value - ds.test_fraction) > 1e-9)
        self.apply.disabled = not changed
        self.apply.color = "primary" if changed else "default"

    def _on_apply(self, _=None) -> None:
        ctl = self.controller
        ds = ctl.dataset
        target, inputs, tf = self.target.value, list(self.inputs.value), float(self.test_fraction.value)
        if not inputs:
            ctl.notify("error", "Choose at least one input column.")
            return
        if ds is not None and set([target, *inputs]) <= set(ds.frame.columns):
            study = ctl.study
            ctl.run("Set roles", lambda: study.set_roles(inputs=inputs, target=target, test_fraction=tf))
        elif self._source is not None:
            self._load(self._source, self._source_name, target=target, inputs=inputs, test_fraction=tf)

    def __panel__(self):
        return self._layout
