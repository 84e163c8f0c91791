"""Where the built-in example datasets live (the repository's assets/ folder)."""
from __future__ import annotations

from pathlib import Path

_CANDIDATES = (
    Path(__file__).resolve().parent / "assets",  # a wheel that bundles them
    Path(__file__).resolve().parents[1] / "assets",  # a source checkout / editable install
)

DEFAULT_DATASET = "kan_paper.csv"


def assets_dir() -> Path:
    for c in _CANDIDATES:
        if (c / "datasets").is_dir():
            return c
    raise FileNotFoundError("kanstudio's assets/ folder was not found; reinstall from a source checkout")


def dataset_paths() -> list[Path]:
    return sorted((assets_dir() / "datasets").glob("*.csv"))


def dataset_path(name: str = DEFAULT_DATASET) -> Path:
    p = assets_dir() / "datasets" / name
    if not p.is_file():
        names = ", ".join(q.name for q in dataset_paths())
        raise FileNotFoundError(f"no built-in dataset {name!r}; available: {names}")
    return p
