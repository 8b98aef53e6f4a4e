"""What a run computes about itself and keeps in its directory.

The metric functions (:mod:`otviz.metrics`) are pure: arrays in, numbers out. Reading the run's
samples and writing the results atomically next to its weights happens here:

    metrics.nc, metrics.json   OTUS fidelity on the test sample   (:func:`evaluate`)
    ks_table.nc                tt̄: the Turbo-Sim slide's KS table (:func:`evaluate`, :func:`read_ks_table`)
    dimension.nc               EMD-VAE D₁, D₂, D_corr            (:func:`dimension`)
    derived-*.npz              arrays the dashboard derives once  (:func:`stored_arrays`)

``Run.evaluate()`` / ``Run.dimension()`` call these; ``read_metrics`` / ``read_dimension`` return
the stored results (or None) without loading the model.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..atomic import atomic_path, write_bytes
from ..data.io import load as load_sample
from ..paths import resolve as resolve_path

METRICS_FILE = "metrics.nc"
SUMMARY_FILE = "metrics.json"
DIMENSION_FILE = "dimension.nc"
KS_TABLE_FILE = "ks_table.nc"


def _write_nc(ds, f: Path):
    with atomic_path(f) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")


def _read_nc(f: Path):
    if not f.exists():
        return None
    import xarray as xr

    with xr.open_dataset(f, engine="h5netcdf") as ds:
        return ds.load()


def evaluate(run, test_path=None, n_projections: int = 1000, seed: int = 0, progress=None):
    """Fidelity of an OTUS run on ``test_path`` (default its config's test_data), stored as
    ``metrics.nc`` and ``metrics.json`` in the run (with a restricted decoder also P_D(S) of D(z)
    on the test z, attribute/key ``p_accept``; on a tt̄ sample also the KS table, ``ks_table.nc``).
    Returns (Dataset, JSON summary).
    ``progress``: see :mod:`otviz.progress`."""
    from ..metrics.fidelity import evaluate_otus, metrics_to_json

    test_path = test_path or run.config.test_data
    if not test_path:
        raise ValueError(f"{run.path}: no test sample configured; pass --test")
    test = load_sample(resolve_path(test_path))
    ds = evaluate_otus(run.model, test, n_projections=n_projections, seed=seed, progress=progress)
    ds.attrs["test_data"] = str(test_path)
    summary = metrics_to_json(ds)
    if getattr(run.model, "acceptance", None) is not None:  # restricted decoder: P_D(S) on the test z (Eq. 19)
        import torch

        p = run.model.p_accept(test["z"].values, torch.Generator(device=run.model.encoder.in_mean.device).manual_seed(seed))
        ds.attrs["p_accept"] = summary["p_accept"] = p
    _write_nc(ds, Path(run.path) / METRICS_FILE)
    write_bytes(Path(run.path) / SUMMARY_FILE, json.dumps(summary, indent=1).encode())
    table_file = Path(run.path) / KS_TABLE_FILE
    if has_ttbar_layout(test):  # the Turbo-Sim KS table on the same outputs (same seeds) as metrics.nc
        from ..metrics.fidelity import model_outputs
        from ..metrics.ks_table import ks_table

        tab = ks_table(model_outputs(run.model, test["z"].values, test["x"].values, seed=seed), seed=seed,
                       **getattr(run.model, "KS_GOAL", {}))  # the model's published row to beat
        tab.attrs["test_data"] = str(test_path)
        _write_nc(tab, table_file)
    else:
        table_file.unlink(missing_ok=True)  # never a table of an earlier, different evaluation
    return ds, summary


def has_ttbar_layout(sample) -> bool:
    """Whether a sample (Dataset) holds the semileptonic tt̄ layout the KS table is defined on:
    z = (e⁻, ν̄_e, b, b̄, u, d̄) and x = (e⁻, MET, jet1 … jet4) (:mod:`otviz.physics.ttbar`)."""
    from ..physics.ttbar import X_PARTICLES, Z_PARTICLES

    try:
        z, x = ([str(p) for p in sample[f"{s}_particle"].values] for s in ("z", "x"))
    except KeyError:
        return False
    return tuple(z) == Z_PARTICLES and tuple(x) == X_PARTICLES


def sample_has_ttbar_layout(path) -> bool:
    """:func:`has_ttbar_layout` of a netCDF sample, reading only its particle names."""
    import xarray as xr

    with xr.open_dataset(resolve_path(path), engine="h5netcdf") as ds:
        return has_ttbar_layout(ds)


def read_ks_table(path):
    """The stored ``ks_table.nc`` of a tt̄ run directory (:func:`otviz.metrics.ks_table.ks_table`), or None."""
    return _read_nc(Path(path) / KS_TABLE_FILE)


def evaluate_run(rundir, test_path=None, n_projections: int = 1000, seed: int = 0, progress=None):
    """:func:`evaluate` on the run directory ``rundir`` (``otviz evaluate RUNDIR``)."""
    from .run import load_run

    return evaluate(load_run(rundir), test_path=test_path, n_projections=n_projections, seed=seed,
                    progress=progress)


def read_metrics(path):
    """The stored ``metrics.nc`` of a run directory (xarray Dataset), or None."""
    return _read_nc(Path(path) / METRICS_FILE)


def training_jets(run, max_jets: int | None = None):
    """(jets, H_T) of an EMD-VAE run's training sample: (B, N, 3) of (pT/H_T, η, φ), H_T in GeV."""
    from ..data.jets import normalised_jets

    return normalised_jets(load_sample(resolve_path(run.config.train_data)), max_jets)


def training_ht_mean(run) -> float:
    """⟨H_T⟩ in GeV of the run's training jets (stored in dimension.nc when it exists): β·⟨H_T⟩
    is the resolution in GeV."""
    from ..metrics.dimension import ht_mean, mean_ht

    stored = read_dimension(run.path)
    if stored is not None:
        return ht_mean(stored)
    return mean_ht(training_jets(run)[1])


def dimension(run, n_jets: int = 1000, n_q: int = 25, workers: int = 2, seed: int = 0, progress=None):
    """D₁, D₂ of an EMD-VAE run and D_corr of its training jets
    (:func:`otviz.metrics.dimension.dimensionality`), stored as ``dimension.nc`` in the run."""
    from ..metrics.dimension import dimensionality

    jets, ht = training_jets(run)
    ds = dimensionality(run.production_steps(), jets, ht, R=run.config.R, n_jets=n_jets, n_q=n_q,
                        workers=workers, seed=seed, progress=progress)
    ds.attrs.update(run=str(run.path), train_data=str(run.config.train_data))
    _write_nc(ds, Path(run.path) / DIMENSION_FILE)
    return ds


def read_dimension(path):
    """The stored ``dimension.nc`` of a run directory (xarray Dataset), or None."""
    return _read_nc(Path(path) / DIMENSION_FILE)



def _stamp(files) -> list:
    out = []
    for f in files:
        st = Path(f).stat()
        out.append(f"{Path(f).name}:{st.st_mtime_ns}:{st.st_size}")
    return out


def stored_arrays(rundir, name: str, compute, depends=()) -> dict:
    """Arrays derived from a run, computed once and kept in the run as ``derived-NAME.npz``
    stamped with the mtime and size of its ``model.pt`` and of the files in ``depends``: read while
    those are unchanged, else ``compute()`` (a dict of arrays) is called and the file rewritten
    atomically. A run directory that cannot be written only skips the write."""
    import numpy as np

    rundir = Path(rundir)
    f = rundir / f"derived-{name}.npz"
    stamp = np.array(_stamp([rundir / "model.pt", *depends]))
    if f.exists():
        try:
            with np.load(f, allow_pickle=False) as z:
                if "_stamp" in z.files and z["_stamp"].tolist() == stamp.tolist():
                    return {k: z[k] for k in z.files if k != "_stamp"}
        except (OSError, ValueError):
            pass  # unreadable: recompute and overwrite
    out = {k: np.asarray(v) for k, v in compute().items()}
    try:
        with atomic_path(f) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, _stamp=stamp, **out)
    except OSError:
        pass
    return out
