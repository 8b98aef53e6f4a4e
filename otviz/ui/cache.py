"""Process-wide, bounded cache of the immutable data the dashboard shows, shared by all sessions.

Every browser session of a served app used to load the samples, the runs and the model outputs
into its own dictionary; with many sessions that was both slow (each page load recomputed
everything) and the bulk of the server's memory. Here each entry is computed once per process,
keyed by what it depends on — file path *and* modification time, ``max_events``, ``seed`` — and
evicted least-recently-used once the entries together exceed ``OTVIZ_CACHE_MB`` (default 1024).
Arrays handed out are read-only: sessions share them and must not modify them.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..paths import resolve


def _nbytes(obj, _depth: int = 0) -> int:
    """A rough size of a cached value (arrays, datasets, torch modules, containers of them)."""
    if _depth > 4:
        return 64
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if hasattr(obj, "nbytes") and hasattr(obj, "data_vars"):  # xarray Dataset
        return int(obj.nbytes)
    if hasattr(obj, "parameters") and callable(obj.parameters):  # torch module
        return int(sum(p.numel() * p.element_size() for p in obj.parameters()))
    if isinstance(obj, dict):
        return sum(_nbytes(v, _depth + 1) for v in obj.values()) + 64
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v, _depth + 1) for v in obj) + 64
    if hasattr(obj, "model") and hasattr(obj, "config"):  # a loaded Run
        return _nbytes(obj.model, _depth + 1) + 4096
    return 256


class SharedCache:
    """A thread-safe LRU of computed values bounded in (estimated) bytes. ``get(key, factory)``
    computes a missing value once even when several sessions ask at the same time."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict = OrderedDict()
        self._sizes: dict = {}
        self._lock = threading.Lock()
        self._key_locks: dict = {}
        self.hits = self.misses = 0

    def get(self, key, factory):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._data:
                    self.hits += 1
                    return self._data[key]
            value = factory()
            size = _nbytes(value)
            with self._lock:
                self.misses += 1
                self._data[key] = value
                self._sizes[key] = size
                self._key_locks.pop(key, None)
                self._evict()
            return value

    def _evict(self):
        total = sum(self._sizes.values())
        while total > self.max_bytes and len(self._data) > 1:
            old, _ = self._data.popitem(last=False)
            total -= self._sizes.pop(old)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    def __len__(self) -> int:
        return len(self._data)

    def clear(self):
        with self._lock:
            self._data.clear()
            self._sizes.clear()


CACHE = SharedCache(int(float(os.environ.get("OTVIZ_CACHE_MB", 1024)) * 2 ** 20))


def _stamp(path) -> tuple:
    """(path, mtime, size) of a file, or of a run directory's files that define its content."""
    p = Path(path)
    files = [p] if p.is_file() else [p / n for n in ("config.json", "model.pt", "checkpoint.pt", "steps.json")]
    out = [str(p.resolve())]
    for f in files:
        try:
            st = f.stat()
            out.append((f.name, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((f.name, None))
    return tuple(out)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def sample(path, max_events: int | None = None):
    """The validated sample at ``path`` (first ``max_events`` events), shared and read-only."""
    from ..data.io import load

    path = resolve(path)
    full = CACHE.get(("sample", _stamp(path)), lambda: _freeze_dataset(load(path)))
    if max_events is None or max_events >= full.sizes["event"]:
        return full
    return CACHE.get(("sample", _stamp(path), int(max_events)), lambda: full.isel(event=slice(0, int(max_events))))


def _freeze_dataset(ds):
    for v in ds.variables.values():
        if isinstance(v.values, np.ndarray):
            v.values.setflags(write=False)
    return ds


def run(path):
    """``otviz.load_run(path)`` shared between sessions (reloaded when the run's files change)."""
    from ..train.run import load_run

    return CACHE.get(("run", _stamp(path)), lambda: load_run(path))


def otus_outputs(run_path, max_events: int, seed: int, progress=None) -> dict[str, np.ndarray]:
    """z, x of the run's test sample and the model's z̃ = E(x), x̃ = D(z̃), x̃′ = D(z), drawn as
    ``otviz evaluate`` draws them (:func:`otviz.metrics.fidelity.model_outputs`). ``progress``
    (:mod:`otviz.progress`) is told of each batch when they are computed, not when read back."""
    from ..metrics.fidelity import model_outputs

    from ..train.products import stored_arrays

    def compute():
        r = run(run_path)
        ds = sample(r.config.test_data, max_events)
        z, x = np.array(ds["z"].values), np.array(ds["x"].values)
        n = ds.sizes["event"]

        def predict():
            out = model_outputs(r.model, z, x, seed=seed, progress=progress)
            return {k: out[k] for k in ("z_tilde", "x_tilde", "x_tilde_prime")}

        # on the whole test sample (what a page shows by default) computed once per run and kept
        # in its directory, so a fresh server reads it; smaller subsets are quick to recompute
        whole = n == sample(r.config.test_data).sizes["event"]
        stored = stored_arrays(run_path, f"outputs-seed{seed}", predict, depends=[resolve(r.config.test_data)]) \
            if whole else predict()
        out = {"z": z.astype(np.float32), "x": x.astype(np.float32), **stored}
        return {k: _readonly(np.asarray(v)) for k, v in out.items()}

    return CACHE.get(("outputs", _stamp(run_path), int(max_events), int(seed)), compute)


def jets(path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(jets, H_T) of the first ``n`` jets of a wjets sample (:func:`otviz.data.jets.normalised_jets`)."""
    from ..data.jets import normalised_jets

    def compute():
        j, ht = normalised_jets(sample(path), n)
        return _readonly(j), _readonly(ht)

    return CACHE.get(("jets", _stamp(resolve(path)), int(n)), compute)


def step_model(run_path, step: dict):
    """The EMD-VAE weights saved at one β step of a run."""
    return CACHE.get(("step_model", _stamp(run_path), step["file"]), lambda: run(run_path).step_model(step))


def encoded(run_path, step: dict, n_jets: int) -> np.ndarray:
    """Posterior means of the first ``n_jets`` training jets under one β step's model."""
    import torch

    def compute():
        r = run(run_path)
        j, _ = jets(r.config.train_data, n_jets)
        with torch.no_grad():
            return _readonly(step_model(run_path, step).encode(torch.as_tensor(np.array(j))).numpy())

    return CACHE.get(("encoded", _stamp(run_path), step["file"], int(n_jets)), compute)


def sample_attr(path, name: str, default=None):
    return sample(path).attrs.get(name, default)
