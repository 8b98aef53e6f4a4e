"""Process-wide registry of background training runs, keyed by run directory.

Dashboards keep only a run directory per session and look the live run up here, so a reloaded
page — or any other session — can re-attach to a run and cancel it. :func:`submit` is what the
dashboard uses:

* **Resources first.** The run's disk need is estimated (:func:`estimate_disk_bytes`: the
  EMD-VAE's per-β-step weight files, checkpoints, final weights) and refused over
  ``OTVIZ_MAX_RUN_MB`` (default 512), or when the disk would keep less than
  ``OTVIZ_MIN_FREE_MB`` (default 1024) free.
* **A queue.** At most ``OTVIZ_MAX_ACTIVE_RUNS`` (default 1) runs train at once per process;
  later submissions wait in order (:func:`queue_position`) and start when a run ends. A queued
  run has written nothing yet.
* **Shutdown.** At interpreter exit (the server stopping on Ctrl-C/SIGTERM) queued runs are
  dropped and running ones cancelled; their ``status.json`` says so. A killed process cannot
  do that — ``otviz.train.run.run_status`` then reports the run as interrupted.
* **Pruning.** :func:`prune_runs` keeps the newest ``OTVIZ_KEEP_UI_RUNS`` (default 20) finished,
  failed, cancelled or interrupted runs of a folder (the dashboard's ``runs/ui/``) and deletes
  older ones; it never touches a queued or running run.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import kinds
from ..background import exiting, start_thread
from .trainer import BackgroundRun, atomic_write_json

ACTIVE_STATES = ("queued", "starting", "running")


class RunRefused(ValueError):
    """A run was not started: it would need more disk than allowed or free."""


@dataclass
class Entry:
    """One run submitted in this process: ``state`` is queued, starting, running, done, failed
    or cancelled; ``run`` the live :class:`BackgroundRun` once started."""

    rundir: Path
    config: object  # a registered kind's config (otviz.kinds)
    label: str = ""
    state: str = "queued"
    message: str = ""
    run: BackgroundRun | None = None
    submitted: float = field(default_factory=time.time)
    disk_bytes: int = 0

    @property
    def key(self) -> str:
        return _key(self.rundir)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


_RUNS: dict[str, BackgroundRun] = {}
_ENTRIES: dict[str, Entry] = {}
_QUEUE: list[str] = []
_LOCK = threading.RLock()
_ATEXIT = False


def _key(rundir) -> str:
    return str(Path(rundir).resolve())


def _env_int(name: str, default: int) -> int:
    try:
        return int(float(os.environ.get(name, default)))
    except ValueError:
        return default


def max_active_runs() -> int:
    return max(_env_int("OTVIZ_MAX_ACTIVE_RUNS", 1), 1)


# ---------------------------------------------------------------------- resources
def parameter_bytes(config) -> int:
    """Bytes of the model's parameters (float32), counted without allocating them."""
    import torch

    with torch.device("meta"):
        model = kinds.for_config(config).build_model(config)
    return int(sum(p.numel() * p.element_size() for p in model.parameters()))


def estimate_disk_bytes(config) -> int:
    """Disk a run will write: per-β-step weight files (EMD-VAE: one per β step of the schedule),
    the checkpoint (weights + Adam's two moments) and its temporary copy while it is replaced,
    the final weights, and the JSON records."""
    p = parameter_bytes(config)
    n_files, epochs = config.disk_plan()
    return n_files * p + 2 * 3 * p + p + 2000 * epochs + 64 * 1024


def check_resources(rundir, config, disk_bytes: int | None = None):
    """Raise :class:`RunRefused` when the run would write more than ``OTVIZ_MAX_RUN_MB`` or leave
    less than ``OTVIZ_MIN_FREE_MB`` free on the disk of ``rundir``; returns the estimate."""
    need = estimate_disk_bytes(config) if disk_bytes is None else disk_bytes
    cap = _env_int("OTVIZ_MAX_RUN_MB", 512) * 2 ** 20
    if need > cap:
        raise RunRefused(f"this run would write about {need / 2 ** 20:,.0f} MB (weights of every β step and "
                         f"checkpoints); the dashboard allows {cap / 2 ** 20:,.0f} MB per run (OTVIZ_MAX_RUN_MB) — "
                         "use fewer β steps or a smaller model (width, latent)")
    base = Path(rundir)
    while not base.exists() and base != base.parent:
        base = base.parent
    free = shutil.disk_usage(base).free
    reserve = _env_int("OTVIZ_MIN_FREE_MB", 1024) * 2 ** 20
    if free - need < reserve:
        raise RunRefused(f"not enough free disk at {base}: {free / 2 ** 20:,.0f} MB free, the run needs about "
                         f"{need / 2 ** 20:,.0f} MB and {reserve / 2 ** 20:,.0f} MB must stay free (OTVIZ_MIN_FREE_MB)")
    return need


# ---------------------------------------------------------------------- starting and the queue
def _make_run(rundir, config) -> BackgroundRun:
    return kinds.for_config(config).run_class()(rundir, config)


def start_run(rundir, config) -> BackgroundRun:
    """Create and start a background run in ``rundir`` now (no queue, no resource check): the
    background run of the config's kind (:mod:`otviz.kinds`: OTUS TrainingRun, EMD-VAE AnnealingRun, …)."""
    key = _key(rundir)
    with _LOCK:
        old = _RUNS.get(key)
        if old is not None and old.running:
            raise RuntimeError(f"{rundir}: a run is already training there")
        run = _make_run(rundir, config)
        _RUNS[key] = run
    _register_atexit()
    return run.start()


def submit(rundir, config, label: str = "", check: bool = True) -> Entry:
    """Queue a run for ``rundir`` (after the resource check); it starts at once when fewer than
    :func:`max_active_runs` runs are active. Raises :class:`RunRefused` or the config's
    validation error; never starts anything twice in one directory."""
    if hasattr(config, "validate"):
        config.validate()
    disk = check_resources(rundir, config) if check else 0
    key = _key(rundir)
    with _LOCK:
        old = _ENTRIES.get(key)
        if (old is not None and old.active) or (key in _RUNS and _RUNS[key].running):
            raise RuntimeError(f"{rundir}: a run is already queued or training there")
        entry = Entry(Path(rundir), config, label=label, disk_bytes=disk)
        _ENTRIES[key] = entry
        _QUEUE.append(key)
    _register_atexit()
    _start_next()
    return entry


def _start_next():
    """Start queued runs while fewer than ``max_active_runs`` are active."""
    while True:
        with _LOCK:
            active = sum(1 for e in _ENTRIES.values() if e.state in ("starting", "running"))
            if not _QUEUE or active >= max_active_runs():
                return
            entry = _ENTRIES[_QUEUE.pop(0)]
            entry.state = "starting"
        try:
            run = _make_run(entry.rundir, entry.config)
            with _LOCK:
                _RUNS[entry.key] = run
                entry.run = run
                entry.state = "running"
                run.start()
        except Exception as exc:  # reported in the run list, never raised into a poll
            with _LOCK:
                entry.state, entry.message = "failed", f"{type(exc).__name__}: {exc}"
            continue
        start_thread(_supervise, entry, name=f"otviz-registry-{entry.rundir.name}")


def _supervise(entry: Entry):
    entry.run.wait()
    with _LOCK:
        entry.state, entry.message = entry.run.status, entry.run.message
    _start_next()
    if entry.state == "done":
        post_run_metrics(entry.rundir)


def post_run_metrics(rundir) -> str | None:
    """A finished run's products (its kind's ``Kind.products``, e.g. OTUS: ``otviz evaluate``'s
    metrics.nc/metrics.json), computed when a dashboard run ends so its pages are as complete as a
    shipped run's; ``OTVIZ_POST_RUN_METRICS=0`` turns it off. Returns what was computed, or None; a
    failure is logged, never raised."""
    import logging
    import os

    from .run import run_kind

    name = run_kind(rundir)
    if os.environ.get("OTVIZ_POST_RUN_METRICS", "1") == "0" or name not in kinds.KINDS or exiting():
        return None
    products = kinds.get(name).products
    if not products:
        return None
    try:
        for product in products:
            kinds.resolve(product)(rundir, progress=False)
        return "metrics"
    except Exception:
        logging.getLogger(__name__).exception("metrics of %s could not be computed", rundir)
        return None


def get_run(rundir) -> BackgroundRun | None:
    with _LOCK:
        return _RUNS.get(_key(rundir))


def get_entry(rundir) -> Entry | None:
    with _LOCK:
        return _ENTRIES.get(_key(rundir))


def entries(active_only: bool = False) -> list[Entry]:
    """Submitted runs, oldest first (only queued/running ones with ``active_only``)."""
    with _LOCK:
        out = sorted(_ENTRIES.values(), key=lambda e: e.submitted)
    return [e for e in out if e.active] if active_only else out


def queue_position(rundir) -> int | None:
    """1 for the next run to start, … ; ``None`` when the run is not queued."""
    with _LOCK:
        key = _key(rundir)
        return _QUEUE.index(key) + 1 if key in _QUEUE else None


def active_runs() -> list[BackgroundRun]:
    with _LOCK:
        return [r for r in _RUNS.values() if r.running]


def cancel(rundir, message: str = "cancelled by the user") -> bool:
    """Cancel a queued run (it never starts) or a running one; False when there is none."""
    key = _key(rundir)
    with _LOCK:
        entry = _ENTRIES.get(key)
        if key in _QUEUE:
            _QUEUE.remove(key)
            entry.state, entry.message = "cancelled", message
            return True
        run = _RUNS.get(key)
    if run is not None and run.running:
        run.cancel()
        return True
    return False


def shutdown(timeout: float = 30.0):
    """Drop queued runs, cancel running ones and wait up to ``timeout`` s for them to stop; their
    status.json then reads cancelled with the reason (called at interpreter exit)."""
    with _LOCK:
        for key in list(_QUEUE):
            _QUEUE.remove(key)
            _ENTRIES[key].state, _ENTRIES[key].message = "cancelled", "the server stopped before it started"
        running = [r for r in _RUNS.values() if r.running]
    for r in running:
        r.cancel()
    deadline = time.time() + timeout
    for r in running:
        r.wait(max(deadline - time.time(), 0.1))
        f = r.rundir / "status.json"
        try:
            st = json.loads(f.read_text())
            if st.get("status") == "cancelled":
                st["message"] = "cancelled: the server stopped"
                atomic_write_json(f, st)
        except (OSError, ValueError):
            pass


def _register_atexit():
    """Cancel runs when the interpreter exits. ``threading``'s own exit hooks run before
    ``atexit`` and after them thread pools refuse work (a training step using one would fail),
    so register there when possible; ``python -m otviz.ui.serve`` calls :func:`shutdown` itself
    as soon as the server has stopped."""
    global _ATEXIT
    with _LOCK:
        if not _ATEXIT:
            hook = getattr(threading, "_register_atexit", None)
            try:
                (hook or atexit.register)(shutdown)
            except RuntimeError:  # already shutting down
                atexit.register(shutdown)
            _ATEXIT = True


# ---------------------------------------------------------------------- pruning
def _status(path: Path) -> str:
    try:
        from .run import run_status
    except ImportError:  # pragma: no cover - older run module
        run_status = None
    if run_status is not None:
        return run_status(path).get("status", "unknown")
    try:
        return json.loads((path / "status.json").read_text()).get("status", "unknown")
    except (OSError, ValueError):
        return "unknown"


def prune_runs(base, keep: int | None = None) -> list[Path]:
    """Delete all but the newest ``keep`` (``OTVIZ_KEEP_UI_RUNS``, default 20) finished, failed,
    cancelled or interrupted run directories directly under ``base``. Queued, starting and
    running runs (in this process or, by their status, in another) are never deleted nor
    counted. Returns the deleted directories."""
    keep = _env_int("OTVIZ_KEEP_UI_RUNS", 20) if keep is None else keep
    base = Path(base)
    if not base.is_dir():
        return []
    with _LOCK:
        busy = {k for k, e in _ENTRIES.items() if e.active} | {k for k, r in _RUNS.items() if r.running}
    finished = []
    for d in base.iterdir():
        if not d.is_dir() or _key(d) in busy or not (d / "config.json").exists():
            continue
        if _status(d) in ("running", "queued", "starting"):
            continue
        finished.append((d.stat().st_mtime, d))
    finished.sort(reverse=True)
    removed = []
    for _, d in finished[keep:]:
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed
