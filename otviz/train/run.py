"""Loading a finished (or interrupted) run directory: ``otviz.load_run(path)``."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import kinds
from .trainer import clean_temporary_files, run_status  # noqa: F401  (run_status is public here)


def run_kind(path) -> str:
    """The registered kind (:mod:`otviz.kinds`) of a run directory, e.g. ``otus`` or ``emdvae``;
    ``unknown`` when its config.json is missing, unreadable or of no registered kind."""
    try:
        k = kinds.for_config_dict(json.loads((Path(path) / "config.json").read_text()))
    except (OSError, ValueError):
        return "unknown"
    return k.name if k is not None else "unknown"


def read_config(path: Path):
    """The run's config.json as its kind's config class (:mod:`otviz.kinds`); a clear error
    naming the file otherwise."""
    cfg_file = Path(path) / "config.json"
    if not cfg_file.exists():
        raise FileNotFoundError(f"{path}: not an otviz run directory (no config.json)")
    try:
        text = cfg_file.read_text()
        d = json.loads(text)
        k = kinds.for_config_dict(d)
        if k is None:
            raise ValueError(f"kind {d.get('kind') if isinstance(d, dict) else None!r} is not a registered model kind")
        return k.config_class().from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{cfg_file}: invalid run config: {exc}") from exc


@dataclass
class Run:
    path: Path
    config: object  # the kind's config class (TrainConfig, AnnealConfig, …)
    model: torch.nn.Module
    history: list[dict]
    status: dict
    steps: list[dict] = field(default_factory=list)  # EMD-VAE: one record per finished β step

    @property
    def kind(self) -> str:
        return kinds.for_config(self.config).name

    def production_steps(self) -> list[dict]:
        """The β steps of the last pass of the schedule (the production pass), in β order."""
        if not self.steps:
            return []
        last = self.config.schedule[-1].name
        return sorted((s for s in self.steps if s["pass_name"] == last), key=lambda s: s["beta"])

    def step_model(self, step: dict, device: str = "cpu"):
        """The model saved at the end of one step (a record of ``steps``, e.g. an EMD-VAE β step)."""
        f = self.path / step["file"]
        state = _load_state(f, device)
        model = kinds.for_config(self.config).build_model(self.config)
        model.load_state_dict(state["model"])
        return model.to(device).eval()

    @property
    def metrics(self):
        """The stored evaluation (xarray Dataset) or None."""
        from .products import read_metrics

        return read_metrics(self.path)

    @property
    def dimensionality(self):
        """The stored dimension.nc (xarray Dataset) or None."""
        from .products import read_dimension

        return read_dimension(self.path)

    def evaluate(self, **kw):
        """Compute and store this run's fidelity metrics (:func:`otviz.train.products.evaluate`)."""
        from .products import evaluate

        return evaluate(self, **kw)

    def dimension(self, **kw):
        """Compute and store D₁, D₂, D_corr (:func:`otviz.train.products.dimension`)."""
        from .products import dimension

        return dimension(self, **kw)


def load_run(path, device: str = "cpu") -> Run:
    """Open a run directory: the model (final weights, else the latest checkpoint) in eval mode,
    its config and per-epoch history. OTUS: ``run.model.decode(z)`` / ``encode(x)`` take raw GeV
    tensors (events, particles, 4). EMD-VAE: ``run.model.encode(jets)`` / ``decode(latent)`` on
    (B, N, 3) arrays of (pT/H_T, η, φ); ``run.steps`` lists the β steps, ``run.step_model(step)``
    loads the weights saved at one of them."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such run directory")
    config = read_config(path)
    status = run_status(path)
    if status["status"] != "running":  # a killed writer's orphaned temporary files
        clean_temporary_files(path)
    weights = path / "model.pt"
    if not weights.exists():
        weights = path / "checkpoint.pt"
    if not weights.exists():
        raise FileNotFoundError(f"{path}: no model.pt or checkpoint.pt yet")
    state = _load_state(weights, device)
    model = kinds.for_config(config).build_model(config)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as exc:
        raise ValueError(f"{weights}: weights do not match the run's config.json: {exc}") from exc
    model.to(device).eval()
    if weights.name == "checkpoint.pt":
        # an unfinished run: the records that match the checkpoint's weights (history.json and
        # steps.json may be up to one checkpoint interval ahead after a kill)
        history = list(state.get("history", []))
        steps = list(state.get("steps_done", []))
    else:
        history = _read_json(path / "history.json", list(state.get("history", [])))
        steps = _read_json(path / "steps.json", [])
    return Run(path=path, config=config, model=model, history=history, status=status, steps=steps)


def _read_json(f: Path, default):
    if not f.exists():
        return default
    try:
        return json.loads(f.read_text())
    except ValueError as exc:
        raise ValueError(f"{f}: not valid JSON: {exc}") from exc


def _load_state(f: Path, device) -> dict:
    try:
        return torch.load(f, map_location=device, weights_only=True)
    except Exception as exc:
        raise ValueError(f"{f}: cannot be read as an otviz checkpoint: {exc}") from exc
