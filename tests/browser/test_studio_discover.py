"""Discover in the browser (issue #13): the studio finds F = q·v·B·sin(θ) unaided, as
``kanstudio fit`` does, shows each shape as it finishes, stops on request, uses units once every
column has them, and opens a table row's network for editing (undoable)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from kanstudio.ui import browser_harness as H

pytestmark = pytest.mark.browser


def _lorentz_csv(path, n=500, seed=0):
    rng = np.random.default_rng(seed)
    q, v, B = (rng.uniform(0.5, 2, n) for _ in range(3))
    th = rng.uniform(0.2, 1.5, n)
    F = q * v * B * np.sin(th)
    path.write_text("q,v,B,theta,F\n" + "\n".join(f"{a:.17g},{b:.17g},{c:.17g},{d:.17g},{e:.17g}"
                                                  for a, b, c, d, e in zip(q, v, B, th, F)) + "\n")
    return path


def _upload(page, app, path, name):
    ctl = app.controller
    page.locator('input[type="file"]').first.set_input_files(str(path))
    H.wait_until(lambda: ctl.dataset is not None and ctl.dataset.name == name and ctl.version == ctl.study.version,
                 timeout=60, page=page, what="the uploaded data")


def _discover(page, seconds: int):
    box = page.get_by_label("Time limit (s)")
    box.fill(str(seconds))
    box.press("Enter")
    page.wait_for_timeout(350)
    page.get_by_role("button", name=re.compile("Discover")).click()


def test_discover_finds_the_lorentz_law_and_opens_it(open_page, tmp_path, shots):
    page, app = open_page(viewport=(1400, 1100))
    ctl = app.controller
    _upload(page, app, _lorentz_csv(tmp_path / "lorentz.csv"), "lorentz")
    _discover(page, 30)
    H.wait_until(lambda: ctl.discovering or (ctl.discovery is not None and ctl.discovery.rows), timeout=30,
                 page=page, what="the search to start")
    page.get_by_text(re.compile(r"^trying ")).first.wait_for(timeout=30_000)  # live progress lines
    cell = page.locator('.tabulator-cell[tabulator-field="formula"]', has_text=re.compile(r"^B\*q\*v\*sin\(theta\)$"))
    cell.first.wait_for(timeout=120_000)
    H.wait_until(lambda: not ctl.discovering, timeout=120, page=page, what="the search to end")
    page.get_by_text(re.compile(r"^Done")).first.wait_for(timeout=30_000)
    state = ctl.discovery
    k = next(r.index for r in state.rows if r.formula == "B*q*v*sin(theta)")
    assert state.pareto[k] and state.best_index == k
    row = page.locator(".tabulator-row", has=cell.first)
    assert "front" in row.inner_text()
    page.screenshot(path=str(shots / "discover_1400.png"))

    # a row opens its network: one history entry, the network view and the formula follow
    n = len(ctl.history)
    cell.first.click()
    H.wait_until(lambda: len(ctl.history) == n + 1 and ctl.history[-1].startswith("open discovery attempt")
                 and ctl.version == ctl.study.version, timeout=60, page=page, what="the attempt to open")
    assert app.network.snapshot.dims == [4, 1]
    H.wait_until(lambda: ctl.formula is not None and ctl.formula_status == "" and ctl._formula_version == ctl.version,
                 timeout=60, page=page, what="the formula")
    assert ctl.formula.sympy_str() == "B*q*v*sin(theta)"
    page.get_by_text(re.compile(r"Opened attempt \d+")).first.wait_for()
    # ... and it is an ordinary edit: Undo takes it back
    page.get_by_role("button", name=re.compile("Undo")).click()
    H.wait_until(lambda: ctl.history_index == n and ctl.version == ctl.study.version, timeout=30, page=page,
                 what="undo")
    assert app.network.snapshot.dims != [4, 1]


def test_discover_uses_units_and_stops_on_request(open_page, tmp_path):
    page, app = open_page(viewport=(1400, 1100))
    ctl = app.controller
    _upload(page, app, _lorentz_csv(tmp_path / "lorentz_units.csv"), "lorentz_units")
    for col, unit in (("q", "C"), ("v", "m/s"), ("B", "T"), ("theta", "rad"), ("F", "N")):
        box = page.get_by_label(col, exact=True)
        box.fill(unit)
        box.press("Enter")
    H.wait_until(lambda: ctl.study.units.get("F") == "N" and len(ctl.study.units) == 5, timeout=30, page=page,
                 what="the units")
    page.get_by_text(re.compile(r"the search uses dimensionless groups")).first.wait_for()
    _discover(page, 30)
    page.get_by_text("Structure found").first.wait_for(timeout=60_000)
    page.get_by_text(re.compile(r"units: F = .*F\(theta\)")).first.wait_for(timeout=60_000)
    H.wait_until(lambda: not ctl.discovering and ctl.discovery is not None, timeout=120, page=page,
                 what="the search to end")
    assert any(r.formula == "B*q*v*sin(theta)" for r in ctl.discovery.rows)

    # Stop: a search that would go on for minutes ends after the shape in progress
    box = page.get_by_label("theta", exact=True)
    box.fill("")  # units incomplete: not used
    box.press("Enter")
    H.wait_until(lambda: "theta" not in ctl.study.units, timeout=30, page=page, what="units cleared")
    _discover(page, 600)
    H.wait_until(lambda: ctl.discovering, timeout=30, page=page, what="the search to start")
    page.get_by_role("button", name=re.compile("Stop search")).click()
    H.wait_until(lambda: not ctl.discovering, timeout=60, page=page, what="the search to stop")
    page.get_by_text(re.compile(r"^Stopped")).first.wait_for(timeout=30_000)
    assert ctl.discovery.status == "stopped" and ctl.discovery.elapsed < 60
