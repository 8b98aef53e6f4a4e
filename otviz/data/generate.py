"""Parallel, reproducible sample generation on Dask distributed.

The requested events are split into chunks of ``chunk_size`` accepted events; chunk k uses
Pythia and detector seeds derived from (seed, k) only (:func:`otviz.data.pythia.chunk_seeds`),
so the result is the same for any number of workers or any scheduler. Chunks run as tasks on
a ``dask.distributed`` cluster (a ``LocalCluster`` with one single-threaded worker process per
``workers`` by default, or the scheduler at ``scheduler``) and are merged in chunk order.
"""
from __future__ import annotations

import datetime as _dt
import json
import sys
import time
from importlib import metadata

import numpy as np

from . import detector as det
from . import pythia as gen

DEFAULT_CHUNK = {"zee": 5000, "ttbar": 1000, "wjets": 500, "qcd": 500}
# Peak memory of the merging process per byte of the stored (float32) arrays: measured 5.0–5.2×
# (zee 10⁶, wjets 10⁵ events) when the chunks arrived as float64; they now arrive as float32
# (:func:`run_chunk`), so this is an upper bound kept with its margin: 8×.
MEMORY_FACTOR = 8.0
DISK_FACTOR = 1.1  # the netCDF file (zlib) is at most about the raw size, plus metadata
BASE_MEMORY = 512 * 2 ** 20  # Python, Dask client and worker overheads


def bytes_per_event(process: str, cfg: det.DetectorConfig | None = None) -> int:
    """float32 bytes one accepted event takes in the dataset layout (z, x and, for wjets/qcd, jet)."""
    cfg = cfg or det.DetectorConfig()
    proc = gen.get_process(process)
    n = len(proc.z_particles) * 4
    n += cfg.n_constituents * 3 + 4 if proc.x_particles is None else len(proc.x_particles) * 4
    return 4 * n


def available_memory() -> int:
    """Bytes of memory available to a new allocation (psutil when installed, else /proc/meminfo)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            info = {ln.split(":")[0]: int(ln.split()[1]) * 1024 for ln in f if ln.split()[1:2]}
        return info.get("MemAvailable", info.get("MemFree", 0))
    except (OSError, ValueError):
        return 2 ** 62  # unknown: do not refuse


def resource_estimate(process: str, n_events: int, cfg: det.DetectorConfig | None = None) -> dict:
    """Estimated peak memory (bytes, the merging process) and disk (bytes, the output file)."""
    b = bytes_per_event(process, cfg) * int(n_events)
    return {"bytes_per_event": bytes_per_event(process, cfg), "memory": int(b * MEMORY_FACTOR) + BASE_MEMORY,
            "disk": int(b * DISK_FACTOR) + 2 ** 20}


def _gb(n: int) -> str:
    for unit, scale in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n / 1e6:.3g} MB"


def check_resources(process: str, n_events: int, cfg: det.DetectorConfig | None = None, out=None) -> dict:
    """Refuse (:class:`otviz.errors.InsufficientResources`, one line) a generation whose estimated
    memory or (with ``out``) disk is not free; returns the estimate."""
    from ..errors import InsufficientResources

    est = resource_estimate(process, n_events, cfg)
    mem = available_memory()
    if est["memory"] > mem:
        raise InsufficientResources(
            f"--events {n_events}: generating {process} needs about {_gb(est['memory'])} of memory "
            f"({est['bytes_per_event']} bytes per event × {MEMORY_FACTOR:g}); {_gb(mem)} available")
    if out is not None:
        import shutil
        from pathlib import Path

        folder = Path(out).resolve().parent
        while not folder.exists():
            folder = folder.parent
        free = shutil.disk_usage(folder).free
        if est["disk"] > free:
            raise InsufficientResources(
                f"--events {n_events}: {out} needs about {_gb(est['disk'])} of disk; {_gb(free)} free in {folder}")
    return est


def package_versions() -> dict[str, str]:
    out = {}
    for pkg in ("otviz", "pythia8mc", "fastjet", "numpy", "awkward", "xarray", "dask", "distributed", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def chunk_sizes(n_events: int, chunk_size: int) -> list[int]:
    if isinstance(n_events, bool) or not isinstance(n_events, (int, np.integer)) or n_events <= 0:
        raise ValueError(f"--events must be a positive integer, got {n_events!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size <= 0:
        raise ValueError(f"--chunk-size must be a positive integer, got {chunk_size!r}")
    sizes = [chunk_size] * (n_events // chunk_size)
    if n_events % chunk_size:
        sizes.append(n_events % chunk_size)
    return sizes


def run_chunk(**kw) -> dict:
    """One chunk as run on a worker: :func:`otviz.data.pythia.generate_chunk` with its arrays as
    float32 (the stored dtype, so the merged sample is unchanged and half the bytes travel back),
    plus ``seconds`` and ``cpu_seconds``, the chunk's wall and CPU time on the worker (CPU well
    below wall: the worker had to share its core)."""
    t, c = time.perf_counter(), time.process_time()
    out = gen.generate_chunk(**kw)
    out = {k: v.astype(np.float32) if isinstance(v, np.ndarray) else v for k, v in out.items()}
    out["seconds"], out["cpu_seconds"] = time.perf_counter() - t, time.process_time() - c
    return out


def _run_chunks(tasks, workers, scheduler, phases):
    """Run :func:`run_chunk` for each kwargs dict in ``tasks``; yield (index, result). Fills
    ``phases`` with the wall seconds of cluster ``startup``, chunk ``work`` and cluster ``close``."""
    from dask.distributed import as_completed

    from ..cluster import dask_client

    t = time.perf_counter()
    with dask_client(workers, scheduler) as client:
        phases["startup"] = time.perf_counter() - t
        t = time.perf_counter()
        futures = {client.submit(run_chunk, pure=False, **kw): i for i, kw in enumerate(tasks)}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()
        phases["work"] = time.perf_counter() - t
        t = time.perf_counter()
    phases["close"] = time.perf_counter() - t


def generate(
    process: str,
    n_events: int,
    seed: int = 1,
    workers: int = 2,
    scheduler: str | None = None,
    chunk_size: int | None = None,
    fast: bool = True,
    centre: bool = False,
    cfg: det.DetectorConfig | None = None,
    progress: bool = True,
    command: str | None = None,
    domain: str = "sim",
):
    """Generate a sample; returns ``(dataset, stats)`` with stats = dict(seconds, events_per_s, ...).
    ``domain`` (:mod:`otviz.data.domains`) adds its Pythia settings and scales ``cfg``'s
    resolutions; ``sim`` (default) changes nothing."""
    from tqdm.auto import tqdm

    from .domains import get_domain

    proc = gen.get_process(process)
    dom = get_domain(domain)
    if centre and process not in gen.FATJET_PROCESSES:
        raise ValueError(f"--centre applies to the {'/'.join(gen.FATJET_PROCESSES)} processes only")
    if not scheduler and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    cfg = dom.detector(cfg)
    chunk_size = chunk_size or DEFAULT_CHUNK[process]
    chunk_sizes(1, chunk_size)  # argument checks before the estimate, the estimate before any work
    if isinstance(n_events, bool) or not isinstance(n_events, (int, np.integer)) or n_events <= 0:
        raise ValueError(f"--events must be a positive integer, got {n_events!r}")
    check_resources(process, n_events, cfg)
    sizes = chunk_sizes(n_events, chunk_size)
    tasks = [
        dict(process=process, n_events=n, seed=seed, chunk=i, cfg=cfg, fast=fast, centre=centre, domain=domain)
        for i, n in enumerate(sizes)
    ]
    from .io import make_dataset

    results = [None] * len(tasks)
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    bar = tqdm(total=n_events, unit="ev", desc=f"otviz generate {process}", disable=not progress, file=sys.stderr)
    for i, res in _run_chunks(tasks, workers, scheduler, phases):
        results[i] = res
        bar.update(sizes[i])
    bar.close()
    seconds = time.perf_counter() - t0
    t_merge = time.perf_counter()
    n_generated = int(sum(r["n_generated"] for r in results))
    merged = {k: np.concatenate([r[k] for r in results]) for k in results[0] if isinstance(results[0][k], np.ndarray)}
    attrs = {
        "process": process,
        "description": proc.description,
        "generator": "Pythia 8 (pythia8mc)",
        "pythia_settings": json.dumps(gen.pythia_settings(process, 0, fast, domain)),
        "pythia_seed_note": "Random:seed = 0 above is replaced per chunk by otviz.data.pythia.chunk_seeds(seed, chunk)",
        "pythia_chunk_seeds": json.dumps([gen.chunk_seeds(seed, i)[0] for i in range(len(sizes))]),
        "fast": int(fast),
        "domain": dom.name,
        "domain_description": dom.description,
        "domain_pythia_settings": json.dumps(list(dom.pythia_settings)),
        "domain_resolution_scale": float(dom.resolution_scale),
        "centred": int(centre),
        "detector_config": cfg.to_json(),
        "seed": int(seed),
        "chunk_size": int(chunk_size),
        "n_chunks": len(sizes),
        "n_generated": n_generated,
        "selection_efficiency": n_events / n_generated,
        "sigma_gen_mb": float(np.mean([r["sigma_gen_mb"] for r in results])),
        "versions": json.dumps(package_versions()),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command or "",
        "units": "GeV",
    }
    if process in gen.FATJET_PROCESSES:
        attrs["wjet_selection"] = json.dumps(gen.WJET_SELECTION)
    ds = make_dataset(
        merged["z"], merged["x"], proc.z_particles, proc.x_particles, jet=merged.get("jet"), attrs=attrs
    )
    phases["merge"] = time.perf_counter() - t_merge
    chunk_seconds = [r["seconds"] for r in results]
    stats = {
        "process": process,
        "domain": dom.name,
        "events": n_events,
        "generated": n_generated,
        "seconds": seconds,
        "events_per_s": n_events / seconds,
        "generated_per_s": n_generated / seconds,
        "workers": workers if not scheduler else scheduler,
        # wall seconds of each phase (startup + work + close = seconds; merge comes after) and the
        # chunks' own wall and CPU seconds on the workers (their sum is the generation work itself)
        "phases": phases,
        "chunk_seconds": chunk_seconds,
        "chunk_cpu_seconds": [r["cpu_seconds"] for r in results],
    }
    return ds, stats


def generate_to_file(path, overwrite: bool = False, **kw):
    """:func:`generate` then :func:`otviz.data.io.save` (atomic)."""
    from pathlib import Path

    path = Path(path)
    if path.exists() and not overwrite:  # fail before spending minutes generating
        raise FileExistsError(f"{path}: exists (pass --force to replace it)")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, not an output file")
    n, process = kw.get("n_events"), kw.get("process")
    if isinstance(n, int) and n > 0 and process in gen.PROCESSES:
        check_resources(process, n, kw.get("cfg"), out=path)
    from .io import save

    ds, stats = generate(**kw)
    t = time.perf_counter()
    save(ds, path, overwrite=overwrite)
    stats["phases"]["write"] = time.perf_counter() - t
    stats["path"] = str(path)
    stats["bytes"] = path.stat().st_size
    return ds, stats
