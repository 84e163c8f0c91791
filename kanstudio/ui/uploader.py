"""A file drop zone that is ready for the next file as soon as one has arrived.

Panel's FileDropper (FilePond) with ``multiple=False`` keeps the uploaded file as an item: the
Browse prompt is gone until the user removes it, and removing it leaves an "Upload cancelled"
item behind. A scientist uploads one CSV after another (or the same file again after editing
it), so each arrived file is handed on and the drop zone is replaced by a fresh one.
"""
from __future__ import annotations

from typing import Callable

import panel as pn
from panel.viewable import Viewer


class Uploader(Viewer):
    """``on_file(name, raw_bytes)`` runs on the session's event loop for every file dropped."""

    def __init__(self, on_file: Callable[[str, bytes], None], **dropper_kw):
        super().__init__()
        self._on_file = on_file
        self._kw = dict(multiple=False, **dropper_kw)
        self.generation = 0  # how many drop zones were made (one per file, plus the first)
        self.dropper = self._make()
        self._slot = pn.Column(self.dropper, sizing_mode="stretch_width", margin=0)

    def _make(self) -> pn.widgets.FileDropper:
        w = pn.widgets.FileDropper(**self._kw)
        w.param.watch(self._on_value, "value")
        self.generation += 1
        return w

    def _on_value(self, event) -> None:
        if event.obj is not self.dropper or not event.new:
            return
        name, content = list(event.new.items())[-1]
        raw = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        self.dropper = self._make()
        self._slot.objects = [self.dropper]
        self._on_file(name, raw)

    def __panel__(self):
        return self._slot
