"""The command line: cheap to start, clear about bad input."""
from __future__ import annotations

import subprocess
import sys


def _run(*args, timeout=120):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout)


def test_help_and_import_do_not_load_torch_or_sympy():
    r = _run("-c", "import sys, kanstudio, kanstudio.cli; kanstudio.cli.build_parser(); "
                   "print(sorted(m for m in ('torch', 'sympy', 'numpy', 'panel') if m in sys.modules))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_help_lists_the_subcommands():
    r = _run("-m", "kanstudio.cli", "--help")
    assert r.returncode == 0
    for cmd in ("fit", "serve", "datasets"):
        assert cmd in r.stdout
    r = _run("-m", "kanstudio.cli", "fit", "--help")
    assert r.returncode == 0 and "--units" in r.stdout and "--time-limit" in r.stdout


def test_lazy_api_names_resolve():
    r = _run("-c", "import kanstudio as k; print(k.KAN.__name__, k.load_csv.__name__, k.Study.__name__, "
                   "k.discover.__name__, sorted(set(k.__all__) - set(dir(k))))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["KAN", "load_csv", "Study", "discover", "[]"]
    r = _run("-c", "import kanstudio; kanstudio.nope")
    assert r.returncode != 0 and "has no attribute 'nope'" in r.stderr


def test_fit_on_a_missing_file_says_so(tmp_path):
    r = _run("-m", "kanstudio.cli", "fit", str(tmp_path / "none.csv"))
    assert r.returncode == 2 and "error" in r.stderr.lower()
