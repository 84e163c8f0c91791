"""`kanstudio serve --show`: opens the served URL in the user's browser ($BROWSER), or says that
it could not and prints the URL to open by hand (a headless machine used to get silence)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_show(tmp_path, browser_script: str):
    script = tmp_path / "browser.sh"
    script.write_text("#!/bin/sh\n" + browser_script)
    script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["BROWSER"] = str(script)
    port = _free_port()
    err = open(tmp_path / "stderr.txt", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "kanstudio.cli", "serve", "--show", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=tmp_path)
    return proc, port, err


def _wait_for(pred, timeout=90):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.2)
    return False


def test_show_opens_the_served_url_in_the_browser(tmp_path):
    opened = tmp_path / "opened.txt"
    proc, port, err = _serve_show(tmp_path, f'echo "$1" > {opened}\n')
    try:
        assert _wait_for(lambda: opened.exists() and opened.read_text().strip()), open(err.name).read()
        url = opened.read_text().strip()
        assert url == f"http://localhost:{port}/"
        with urllib.request.urlopen(url, timeout=60) as r:  # it was listening when the browser was asked
            assert r.status == 200
        assert _wait_for(lambda: "opened" in open(err.name).read(), 20)
        assert f"serving on {url}" in open(err.name).read()
    finally:
        proc.terminate()
        proc.wait(30)


def test_show_without_a_browser_says_so_and_gives_the_url(tmp_path):
    proc, port, err = _serve_show(tmp_path, "exit 1\n")
    try:
        assert _wait_for(lambda: "could not start a web browser" in open(err.name).read()), open(err.name).read()
        text = open(err.name).read()
        assert f"open http://localhost:{port}/ in a browser yourself" in text
    finally:
        proc.terminate()
        proc.wait(30)
