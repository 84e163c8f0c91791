"""The interactive studio: a Panel + Bokeh app over one :class:`~kanstudio.core.study.Study` per
browser session.

Rooms (one concept per file):

- ``theme``          colours, CSS and widget defaults shared by the views
- ``controller``     the per-session glue: owns the Study, pulls its state on a timer, runs
                     commands and reports their errors in the page (views never call the Study)
- ``network_view``   the clickable KAN graph with a live mini-plot on every edge
- ``inspector``      the selected edge/node: large plot, symbolic candidates, snap/prune
- ``data_panel``, ``train_panel``, ``loss_view``, ``formula_panel``, ``history_panel``
- ``app``            the page shell, ``create_app()`` and ``serve(...)``

Importing this package pins Bokeh to the resources served by our own server
(``BOKEH_RESOURCES=server``), so the page works offline.
"""
import os

os.environ["BOKEH_RESOURCES"] = "server"
