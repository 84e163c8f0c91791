#!/usr/bin/env bash
# Sets up everything kanstudio needs in ./.venv. Idempotent; safe to re-run.
#   scripts/setup.sh           the app, the CLI, the Python API, and Dask for `kanstudio sweep`
#   scripts/setup.sh --test    plus the test tools and Debian's chromium for the browser tests
#   scripts/setup.sh --bench   plus pykan 0.2.8 for the side-by-side benchmarks
set -euo pipefail
cd "$(dirname "$0")/.."
extras="sweep"  # dask[distributed]: `kanstudio sweep` and discover(client=...)
want_browser=0
for arg in "$@"; do
  case "$arg" in
    --test) extras="${extras:+$extras,}test"; want_browser=1 ;;
    --bench) extras="${extras:+$extras,}bench"; want_browser=1 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-python3}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
# A C compiler and Python's headers build kanstudio/core/csrc/*.c (the training loops).
# Without them kanstudio still installs and trains, through numpy, ~2x slower.
if ! command -v cc >/dev/null 2>&1 || ! "$PY" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
  echo "== installing a C compiler and Python headers (Debian: gcc, python3-dev)" >&2
  $SUDO apt-get update -q >/dev/null || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q gcc python3-dev >/dev/null || \
    echo "   (not installed: training falls back to numpy)" >&2
fi
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv" >&2
  "$PY" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# torch first and pinned: an unpinned torch resolves to a multi-GB CUDA build.
# Every later pip call is constrained by constraints.txt for the same reason.
if ! .venv/bin/python -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
  echo "== installing torch 2.13.0 (CPU)" >&2
  "${PIP[@]}" -c constraints.txt "torch==2.13.0"
fi
echo "== installing kanstudio${extras:+ [$extras]}" >&2
"${PIP[@]}" -c constraints.txt -e ".${extras:+[$extras]}"

if [ "$want_browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  echo "== installing Debian's chromium (browser tests)" >&2
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium >/dev/null
fi
echo "== ready: .venv/bin/kanstudio" >&2
