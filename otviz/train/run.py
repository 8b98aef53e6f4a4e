"""Loading a finished (or interrupted) run directory: ``otviz.load_run(path)``."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..models.otus import OTUS
from .config import TrainConfig


@dataclass
class Run:
    path: Path
    config: TrainConfig
    model: OTUS
    history: list[dict]
    status: dict

    @property
    def metrics(self):
        """The stored evaluation (xarray Dataset) or None."""
        p = self.path / "metrics.nc"
        if not p.exists():
            return None
        import xarray as xr

        with xr.open_dataset(p, engine="h5netcdf") as f:
            return f.load()


def load_run(path, device: str = "cpu") -> Run:
    """Open a run directory: the model (final weights, else the latest checkpoint) in eval mode,
    its TrainConfig and per-epoch history. ``run.model.decode(z)`` / ``encode(x)`` take raw GeV
    tensors (events, particles, 4)."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.exists():
        raise FileNotFoundError(f"{path}: not an otviz run directory (no config.json)")
    try:
        config = TrainConfig.from_json(cfg_file.read_text())
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{cfg_file}: invalid run config: {exc}") from exc
    weights = path / "model.pt"
    if not weights.exists():
        weights = path / "checkpoint.pt"
    if not weights.exists():
        raise FileNotFoundError(f"{path}: no model.pt or checkpoint.pt yet")
    try:
        state = torch.load(weights, map_location=device, weights_only=True)
    except Exception as exc:
        raise ValueError(f"{weights}: cannot be read as an otviz checkpoint: {exc}") from exc
    model = OTUS(config.model_config)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    hist_file = path / "history.json"
    history = json.loads(hist_file.read_text()) if hist_file.exists() else list(state.get("history", []))
    status_file = path / "status.json"
    status = json.loads(status_file.read_text()) if status_file.exists() else {"status": "unknown"}
    return Run(path=path, config=config, model=model, history=history, status=status)
