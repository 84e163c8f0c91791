"""Colours, fonts and CSS shared by every view: a calm, paper-like scientific look.

Everything here is served by our own server: no web fonts, no icon fonts, no CDN.
"""
from __future__ import annotations

FONT = ('-apple-system, BlinkMacSystemFont, "Segoe UI", "Helvetica Neue", "DejaVu Sans", '
        'Arial, sans-serif')
MONO = '"DejaVu Sans Mono", Menlo, Consolas, monospace'

INK = "#1f2937"          # text, nodes
MUTED = "#6b7280"        # secondary text, axes
RULE = "#d8dde6"         # box borders, grid lines
SPLINE = "#2c4a7a"       # a learned (spline) edge
SYMBOLIC = "#0f8a6c"     # an edge snapped to a symbolic function
SELECTED = "#d9480f"     # the selected edge / node
TRAIN = "#2c4a7a"        # train loss
TEST = "#d9480f"         # test loss
CANDIDATE = "#d9480f"    # a candidate's fitted curve over the edge
SAMPLES = "#8da2c0"      # data samples in the inspector
SAMPLES_DOT = "#7a93bd"  # samples drawn over the edge curve
ACCENT = "#2c4a7a"       # header

LEVEL_COLORS = {"error": "#b42318", "warning": "#b54708", "info": "#175cd3", "success": "#067647"}

CSS = f"""
body, .bk-root, :host {{ font-family: {FONT}; color: {INK}; }}
#header {{ background-color: {ACCENT} !important; }}
.ks-muted {{ color: {MUTED}; font-size: 0.86em; }}
.ks-mono {{ font-family: {MONO}; }}
.ks-section {{ font-weight: 600; font-size: 0.95em; margin: 6px 0 2px 0; color: {INK}; }}
"""

# Inline styles handed to panes (they live in shadow DOM, so a global sheet does not reach them).
TEXT_STYLES = {"font-family": FONT, "color": INK}

CARD = dict(collapsible=False, margin=(6, 6), styles={"background": "#ffffff"},
            header_background="#f3f5f9", header_color=INK)

# Bokeh figures: quiet axes, no toolbar clutter.
FIG = dict(toolbar_location=None, background_fill_color="#ffffff", border_fill_color="#ffffff",
           outline_line_color=None)


def style_axes(fig) -> None:
    """Thin grey axes and grid, readable tick labels."""
    for ax in (*fig.xaxis, *fig.yaxis):
        ax.axis_line_color = RULE
        ax.major_tick_line_color = RULE
        ax.minor_tick_line_color = None
        ax.major_label_text_color = MUTED
        ax.major_label_text_font_size = "11px"
        ax.axis_label_text_color = MUTED
        ax.axis_label_text_font_size = "12px"
        ax.axis_label_text_font_style = "normal"
    fig.xgrid.grid_line_color = "#eef1f5"
    fig.ygrid.grid_line_color = "#eef1f5"

# Tabulator tables: compact rows, quiet header, the selected row in the selection colour.
TABLE_CSS = """
:host .tabulator { font-size: 12.5px; }
:host .tabulator .tabulator-row .tabulator-cell { padding: 3px 6px; }
:host .tabulator .tabulator-header .tabulator-col { background: #f3f5f9; }
:host .tabulator .tabulator-header .tabulator-col .tabulator-col-content { padding: 4px 6px; }
:host .tabulator-row.tabulator-selected { background-color: #fde7d9 !important; }
:host .tabulator-row.tabulator-selected .tabulator-cell { color: #1f2937 !important; }
"""


def fixed_width_yaxis(fig, log: bool = False, width: int = 9) -> None:
    """Y tick labels in a monospace font padded to a fixed number of characters.

    Bokeh re-lays out the whole page whenever an axis' tick labels change width (every new
    range), which costs far more than the plot itself; a constant label width avoids that."""
    from bokeh.models import CustomJSTickFormatter

    code = ("const v = tick; let s;"
            + ("s = (v === 0) ? '0' : v.toExponential(1).replace('.0e', 'e').replace('e+', 'e');" if log else
               "const a = Math.abs(v);"
               "if (v === 0) s = '0';"
               "else if (a >= 1e4 || a < 1e-3) s = v.toExponential(1).replace('e+', 'e');"
               "else s = String(parseFloat(v.toPrecision(3)));")
            + f"return s.length >= {width} ? s : ' '.repeat({width} - s.length) + s;")
    for ax in fig.yaxis:
        ax.formatter = CustomJSTickFormatter(code=code)
        ax.major_label_text_font = MONO
        ax.major_label_text_font_size = "10.5px"
