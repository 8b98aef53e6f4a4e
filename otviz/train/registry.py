"""Process-wide registry of background training runs, keyed by run directory.

Dashboards keep only a run directory per session and look the live :class:`TrainingRun` up
here, so a reloaded page (Panel re-executes the served script per session) finds its run
still training, and several sessions can each train their own run.
"""
from __future__ import annotations

import threading
from pathlib import Path

from .annealing import AnnealConfig, AnnealingRun
from .config import TrainConfig
from .trainer import BackgroundRun, TrainingRun

_RUNS: dict[str, BackgroundRun] = {}
_LOCK = threading.Lock()


def start_run(rundir, config: TrainConfig | AnnealConfig) -> BackgroundRun:
    """Create and start a background run in ``rundir`` (which must not hold a running run): an
    OTUS :class:`TrainingRun` or, for an :class:`AnnealConfig`, an EMD-VAE :class:`AnnealingRun`."""
    key = str(Path(rundir).resolve())
    with _LOCK:
        old = _RUNS.get(key)
        if old is not None and old.running:
            raise RuntimeError(f"{rundir}: a run is already training there")
        run = AnnealingRun(rundir, config) if isinstance(config, AnnealConfig) else TrainingRun(rundir, config)
        _RUNS[key] = run
    return run.start()


def get_run(rundir) -> BackgroundRun | None:
    with _LOCK:
        return _RUNS.get(str(Path(rundir).resolve()))


def active_runs() -> list[BackgroundRun]:
    with _LOCK:
        return [r for r in _RUNS.values() if r.running]
