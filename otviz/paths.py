"""Locations of the shipped data and runs, independent of the working directory."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
PRETRAINED = DATA / "pretrained"
RUNS = Path(os.environ.get("OTVIZ_RUNS", REPO / "runs"))  # where dashboards put new runs


def resolve(path) -> Path:
    """A path as given if it exists, else relative to the repository (for shipped configs that
    record ``data/…`` paths)."""
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    alt = REPO / p
    return alt if alt.exists() else p
