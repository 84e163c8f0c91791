"""Browser benchmark of the studio (headless Chromium, a real server on a free port).

Measures, with timestamps taken inside the page (no polling in the measured interval):
- page ready: navigation -> websocket open and the network drawn;
- click round-trip while a [4,8,8,1] network trains: pointer down on an edge -> the inspector
  names that edge, after the next frame (median and p90; targets <= 150 / <= 250 ms);
- edge click -> symbolic candidates shown in the table, after the next frame (idle; target
  <= 300 ms);
- network redraw of a [10,10,10,1] network (210 edges): Python build time, and from the server
  starting the update to the browser having painted it (target <= 200 ms).
The last line is a one-line summary.

    python benchmarks/browser.py [--clicks 20] [--threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kanstudio.ui import browser_harness as H  # noqa: E402

DATA = ROOT / "assets" / "datasets"


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def on_loop(app, fn, page=None, timeout=30.0):
    """Run fn on the session's event loop (where Bokeh models may change) and wait for it."""
    from panel.io.state import set_curdoc

    done, out = threading.Event(), {}

    def cb():
        try:
            with set_curdoc(app.controller.doc):
                out["v"] = fn()
        except BaseException as e:  # noqa: BLE001
            out["e"] = e
        finally:
            done.set()

    app.controller.doc.add_next_tick_callback(cb)
    H.wait_until(done.is_set, timeout=timeout, page=page, interval_ms=5, what="server callback")
    if "e" in out:
        raise out["e"]
    return out.get("v")


def wait_drawn(page, key, n_before, match=lambda v: True, timeout=15.0):
    """The first [t_drawn, value, t_change] recorded for ``key`` after index n_before that matches."""
    def found():
        rec = H.timing(page)["changes"].get(key, {"drawn": []})
        for d in rec["drawn"][n_before:]:
            if match(d[1]):
                return d
        return None
    return H.wait_until(found, timeout=timeout, page=page, interval_ms=15, what=f"{key} drawn")


def n_drawn(page, key):
    return len(H.timing(page)["changes"].get(key, {"drawn": []})["drawn"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clicks", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import numpy as np
    from playwright.sync_api import sync_playwright

    res = {}
    with H.running_server(data=str(DATA / "coulomb.csv"), threads=args.threads) as url, sync_playwright() as p:
        browser = H.launch(p)
        t0 = time.perf_counter()
        page, external = H.open_app(browser, url)
        app = H.latest_app()
        res["ready"] = time.perf_counter() - t0
        print(f"page ready: {res['ready'] * 1000:.0f} ms (navigation -> websocket open, network drawn)")
        ctl, insp, net = app.controller, app.inspector, app.network
        H.install_timing(page, [("title", H.bokeh_model(insp.title).id, "text"),
                                ("cands", H.bokeh_model(insp.table).source.id, "data"),
                                ("net", net.edges.id, "data")])

        # ---- click round-trip while training [4,8,8,1]
        on_loop(app, lambda: (app.train.width.param.update(value="4,8,8,1"),
                              app.train.steps.param.update(value=100000), app.train._on_start()), page)
        H.wait_until(lambda: ctl.training and ctl.snapshot is not None and ctl.snapshot.dims == [4, 8, 8, 1],
                     timeout=60, page=page, what="training [4,8,8,1]")
        page.wait_for_timeout(1500)
        rng = np.random.default_rng(0)
        keys = [(0, int(i), int(j)) for i, j in zip(rng.integers(0, 4, 100), rng.integers(0, 8, 100))]
        keys += [(1, int(i), int(j)) for i, j in zip(rng.integers(0, 8, 100), rng.integers(0, 8, 100))]
        rng.shuffle(keys)
        times, last = [], None
        for key in keys:
            if len(times) >= args.clicks:
                break
            if key == last or net.edge_index(key) is None:
                continue
            name = net.edges.data["name"][net.edge_index(key)]
            x, y = H.edge_point(app, key)
            sx, sy = H.to_screen(page, net.figure, x, y)
            n0, c0 = n_drawn(page, "title"), len(H.timing(page)["clicks"])
            page.mouse.click(sx, sy)
            d = wait_drawn(page, "title", n0, lambda v, name=name: f"Edge {name}<" in v or f"Edge {name}&lt;" in v)
            t_click = H.timing(page)["clicks"][c0]
            times.append((d[0] - t_click) / 1000)
            last = key
            page.wait_for_timeout(400)
        res["click_median"], res["click_p90"] = statistics.median(times), pct(times, 0.9)
        print(f"click round-trip while training [4,8,8,1] ({len(times)} clicks, {len(ctl.events)} training events "
              f"so far): median {res['click_median'] * 1000:.0f} ms, p90 {res['click_p90'] * 1000:.0f} ms "
              "(targets 150 / 250)")
        on_loop(app, app.train._on_stop, page)
        H.wait_until(lambda: not ctl.training, timeout=60, page=page, what="training to stop")
        page.wait_for_timeout(2000)

        # ---- edge click -> candidates shown (idle)
        ctimes = []
        for key in [(0, 0, 0), (0, 1, 2), (0, 2, 4), (0, 3, 6), (1, 1, 1), (1, 4, 0), (0, 0, 5), (1, 7, 3)]:
            if net.edge_index(key) is None:
                continue
            x, y = H.edge_point(app, key)
            sx, sy = H.to_screen(page, net.figure, x, y)
            n0, c0 = n_drawn(page, "cands"), len(H.timing(page)["clicks"])
            page.mouse.click(sx, sy)
            d = wait_drawn(page, "cands", n0, lambda v: v > 0)
            ctimes.append((d[0] - H.timing(page)["clicks"][c0]) / 1000)
            page.wait_for_timeout(500)
        res["cand_median"], res["cand_max"] = statistics.median(ctimes), max(ctimes)
        print(f"edge click -> candidates shown (idle, {len(ctimes)} edges): median {res['cand_median'] * 1000:.0f} ms, "
              f"max {res['cand_max'] * 1000:.0f} ms (target 300)")

        # ---- redraw of a [10,10,10,1] network
        import torch

        from kanstudio.core.model import KAN
        from kanstudio.core.snapshot import snapshot_network
        from kanstudio.ui.network_view import build_edge_data, build_node_data

        X = np.random.default_rng(1).uniform(-1, 1, (500, 10))
        m = KAN([10, 10, 10, 1], seed=0)
        m.set_data(X, X.sum(1))
        snaps = []
        for s in range(9):
            with torch.no_grad():
                for layer in m.net.layers:
                    layer.coef.add_(0.05 * torch.randn_like(layer.coef))
            snaps.append(snapshot_network(m.net, m.X_train_, [f"x{i}" for i in range(10)], ["y"], version=s))
        bt = []
        for s in snaps:
            t = time.perf_counter()
            build_edge_data(s), build_node_data(s)
            bt.append(time.perf_counter() - t)
        res["build"] = statistics.median(bt)
        on_loop(app, lambda: net.update(snaps[0]), page)
        page.wait_for_timeout(1500)
        rt = []
        for s in snaps[1:]:
            n0 = n_drawn(page, "net")
            t = time.time() * 1000
            on_loop(app, lambda s=s: net.update(s), page)
            d = wait_drawn(page, "net", n0, lambda v: v == 210)
            rt.append((d[0] - t) / 1000)
            page.wait_for_timeout(300)
        res["redraw"] = statistics.median(rt)
        print(f"network redraw [10,10,10,1] (210 edges): build {res['build'] * 1000:.1f} ms; server update -> "
              f"painted in the browser: median {res['redraw'] * 1000:.0f} ms, max {max(rt) * 1000:.0f} ms "
              "(target 200)")
        res["external"] = len(external)
        browser.close()

    print(f"SUMMARY ready {res['ready']:.1f} s | click while training median {res['click_median'] * 1000:.0f} ms "
          f"p90 {res['click_p90'] * 1000:.0f} ms | click->candidates {res['cand_median'] * 1000:.0f} ms | "
          f"redraw [10,10,10,1] {res['redraw'] * 1000:.0f} ms (build {res['build'] * 1000:.1f} ms) | "
          f"external requests {res['external']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
