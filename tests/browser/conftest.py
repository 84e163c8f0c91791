"""Browser tests: a threaded studio server on a free port and headless Chromium (Playwright's sync
API). Tests marked ``browser`` are skipped when Playwright or a Chromium binary is missing.

Every page opened through the ``open_page`` fixture records requests to hosts other than
127.0.0.1/localhost; the fixture fails the test if there was any (the app must work offline).
Screenshots go to ``shots`` (a tmp folder, path printed)."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _browser_ready() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    from kanstudio.ui.browser_harness import chromium_path

    if chromium_path() is None:
        return "no Chromium binary (apt-get install chromium, or set KANSTUDIO_CHROMIUM)"
    return None


def pytest_collection_modifyitems(config, items):
    why = None
    for item in items:
        if "browser" in item.keywords:
            why = why if why is not None else (_browser_ready() or "")
            if why:
                item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(scope="session")
def studio_url():
    from kanstudio.ui.browser_harness import running_server

    with running_server(max_upload_mb=200, max_trainings=4, threads=1) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    from kanstudio.ui.browser_harness import launch

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory):
    d = tmp_path_factory.mktemp("screenshots")
    print(f"\nscreenshots: {d}")
    if os.environ.get("KANSTUDIO_SHOTS"):
        d = Path(os.environ["KANSTUDIO_SHOTS"])
        d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture
def open_page(browser, studio_url):
    """open_page() -> (page, app): a fresh session; the server-side App comes with it."""
    from kanstudio.ui import browser_harness as H

    opened = []

    def _open(viewport=(1600, 1200)):
        since = time.monotonic()
        page, external = H.open_app(browser, studio_url, viewport=viewport)
        app = H.latest_app(since)
        opened.append((page, external))
        return page, app

    yield _open
    for page, external in opened:
        try:
            page.close()
        except Exception:  # noqa: BLE001
            pass
        assert external == [], f"the page requested other hosts: {external[:5]}"
