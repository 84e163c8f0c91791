"""A study file downloaded from the studio opens in the studio again (issue #13)."""
from __future__ import annotations

import time

import pytest

from kanstudio.ui import browser_harness as H

pytestmark = pytest.mark.browser


def test_downloaded_study_file_reopens_in_the_studio(browser, tmp_path):
    with H.running_server() as url:
        since = time.monotonic()
        page, external = H.open_app(browser, url)
        try:
            app = H.latest_app(since)
            ctl = app.controller
            H.wait_until(lambda: ctl.dataset is not None and app.network.snapshot is not None, timeout=60,
                         page=page, what="the example")
            ctl.run("Prune edge", lambda: ctl.study.prune_edge(0, 0, 0))  # an edit for the history to carry
            H.wait_until(lambda: len(ctl.history) >= 2 and ctl.version == ctl.study.version, timeout=30,
                         page=page, what="the edit")
            labels, index = list(ctl.history), ctl.history_index
            live_before = [m.copy() for m in ctl.snapshot.edge_live]
            formula_before = ctl.study.formula().sympy_str()
            with page.expect_download() as dl:
                page.get_by_role("button", name="Study file").click()
            path = tmp_path / dl.value.suggested_filename
            dl.value.save_as(str(path))
            assert path.suffix == ".kanstudio" and path.stat().st_size > 0
            ctl.run("Undo", ctl.study.undo, edit=False)  # change the session, so reopening must restore it
            H.wait_until(lambda: ctl.history_index == len(labels) - 1 and ctl.version == ctl.study.version, timeout=30, page=page, what="undo")
            old_study = ctl.study
            page.locator('input[type="file"]').nth(1).set_input_files(str(path))
            H.wait_until(lambda: ctl.study is not old_study, timeout=60, page=page, what="the reopened study")
            assert list(ctl.history) == labels and ctl.study.history_index == len(labels)
            H.wait_until(lambda: ctl.version == ctl.study.version, timeout=30, page=page, what="the network")
            assert all((a == b).all() for a, b in zip(ctl.snapshot.edge_live, live_before))  # the pruned edge too
            assert ctl.study.formula().sympy_str() == formula_before
            assert not any(level == "error" for level, _ in ctl.messages), ctl.messages
            assert page.get_by_text("invalid type").count() == 0
            page.get_by_text(f"Opened study {path.name}").first.wait_for(timeout=30_000)
        finally:
            page.close()
        assert external == [], external[:5]
