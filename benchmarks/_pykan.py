"""What the side-by-side benchmarks share: a quiet import of pykan (an optional extra)."""
from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys

THREADS = int(os.environ.get("BENCH_THREADS", "2"))  # the comparisons are specified at 2


def quiet() -> contextlib.ExitStack:
    """Swallow pykan's prints and progress bars."""
    sink = io.StringIO()
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(sink))
    stack.enter_context(contextlib.redirect_stderr(sink))
    return stack


def require_pykan(*modules: str):
    """Import pykan modules (e.g. 'kan', 'kan.KANLayer') quietly, or exit with how to install it.
    importlib, not attribute access: pykan's star exports shadow submodules by classes."""
    try:
        with quiet():
            mods = [importlib.import_module(m) for m in modules]
    except ImportError as e:
        sys.exit(f"pykan 0.2.8 is needed for this side-by-side benchmark ({e}).\n"
                 "Install the benchmark extras:  pip install -e .[bench] -c constraints.txt")
    return mods[0] if len(mods) == 1 else mods
