"""Independent annealing schedules as parallel Dask jobs (centred vs uncentred, seeds, widths).

Each job is one run directory trained by :class:`otviz.train.annealing.AnnealingRun` in a worker
process (one torch thread each); a job whose directory already holds a run resumes it. The caller
polls the run directories' ``steps.json`` for progress, so nothing but the final status crosses
the cluster.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .annealing import AnnealConfig, AnnealingRun


def run_annealing_job(rundir: str, config_json: str | None) -> dict:
    """Worker task: train (or resume) one annealing run to the end; returns its final status."""
    import torch

    cfg = AnnealConfig.from_json(config_json) if config_json else None
    run = AnnealingRun(rundir, cfg)  # cfg None: resume the run already in rundir
    torch.set_num_threads(run.config.threads or 1)
    status = run.run_blocking()
    return {"rundir": str(rundir), "status": status, "message": run.message, "steps": len(run.steps_done)}


def _steps_done(rundir: Path) -> list[dict]:
    try:
        return json.loads((rundir / "steps.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []


def run_annealing_jobs(jobs: list[tuple[str, AnnealConfig | None]], workers: int = 2, scheduler: str | None = None,
                       report=print, poll_s: float = 5.0) -> list[dict]:
    """Run each (rundir, config) as a Dask task; ``report(line)`` gets one line per finished β step."""
    from ..cluster import dask_client

    seen = {str(d): len(_steps_done(Path(d))) for d, _ in jobs}
    with dask_client(workers, scheduler) as client:
        futures = [client.submit(run_annealing_job, str(d), c.to_json() if c is not None else None, pure=False)
                   for d, c in jobs]
        while True:
            for d, _ in jobs:
                steps = _steps_done(Path(d))
                for s in steps[seen[str(d)]:]:
                    report(f"{d}: β step {s['beta_step'] + 1} ({s['pass_name']}, β = {s['beta']:.4g}) "
                           f"R = {s['rate']:.3f}, D = {s['distortion']:.3g}, {s['epochs']} epochs, {s['stopped']}")
                seen[str(d)] = len(steps)
            if all(f.done() for f in futures):
                break
            time.sleep(poll_s)
        return [f.result() for f in futures]
